"""Exact-solver benchmark: the EXACT cutpoint DP (every grid point a candidate) on each
function's full default domain, at 1 and 2 Numba threads, for
* ``mean+lut``: the paper layout with the ``mean`` objective and LUT rounding in the
  objective (what benchmarks/build_tables.py solves for the shipped tables), and
* ``paper``: the paper layout with the ``paper`` objective.

Each solve runs in a subprocess (NUMBA_NUM_THREADS set, stopped after ``--limit`` seconds)
that compiles the kernels on a tiny domain first, so the times exclude compilation. It
records wall and CPU seconds, the objective value (also as float.hex, to compare bit for
bit across solver versions), the cutpoints, and os.getloadavg() before and after (the
machine may be shared). Results merge into benchmarks/results/solver_exact.json per
function / solve / threads.

    .venv/bin/python benchmarks/solver_exact.py --functions silu,tanh --solves paper \\
        --threads 1,2 --limit 1800
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from results_io import read_json, results_path, write_json

RESULTS = results_path("solver_exact.json")
SOLVES = {"mean+lut": ("paper", "mean", True), "paper": ("paper", "paper", False)}


def _child(function: str, solve_name: str) -> int:
    import numba

    from nli.functions import get_function
    from nli.grid import fp16_grid
    from nli.solver import solve

    layout, objective, quantized = SOLVES[solve_name]
    lo, hi = get_function(function).default_domain
    xs, _ = fp16_grid(lo, hi)  # compile only, on the domain's first 2,048 grid points
    warm = (float(xs[0]), float(xs[min(2047, xs.size - 1)]))
    solve(function, layout, objective, domain=warm, quantized=quantized)
    t0, c0 = time.perf_counter(), time.process_time()

    def progress(done, total):
        if done == int(done) and done > 0:
            rec = {"layer": done, "wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}
            print(json.dumps(rec), flush=True)

    r = solve(function, layout, objective, quantized=quantized, progress=progress)
    print(
        json.dumps(
            {
                "done": True,
                "threads": numba.get_num_threads(),
                "wall_seconds": time.perf_counter() - t0,
                "cpu_seconds": time.process_time() - c0,
                "cost": r.objective_value,
                "cost_hex": float(r.objective_value).hex(),
                "grid_points": r.grid_points,
                "cut_idx": [int(i) for i in r.cut_idx],
                "cutpoints": [f"{int(b):04x}" for b in r.cutpoints],
            }
        ),
        flush=True,
    )
    return 0


def _busy_cpu_seconds() -> float | None:
    """CPU seconds all processes of the machine have spent busy so far (/proc/stat: every
    state but idle and iowait), or None where there is no /proc/stat. Its change over a run,
    less the solve's own CPU seconds, is what else ran beside the solve."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def _solver_commit() -> str | None:
    """HEAD's short hash, with "-dirty" when the solver's sources (nli/) differ from it (not
    when only results do: this very file's JSON changes between runs)."""
    run = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True)  # noqa: E731
    head = run("rev-parse", "--short", "HEAD").stdout.strip()
    if not head:
        return None
    return head + ("-dirty" if run("diff", "--quiet", "HEAD", "--", "nli").returncode else "")


def timed(function: str, solve_name: str, threads: int, limit: float) -> dict:
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--child", function, solve_name]
    load0, busy0 = os.getloadavg(), _busy_cpu_seconds()
    t0 = time.perf_counter()
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=limit, check=True, env=env
        ).stdout
        finished = True
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        finished = False
    lines = [json.loads(s) for s in out.splitlines() if s.startswith("{")]
    layers = [x for x in lines if "layer" in x]
    rec = {
        "solver_commit": _solver_commit(),  # which solver version took this time
        "threads": threads,
        "finished": finished,
        "limit_seconds": limit,
        "subprocess_wall_seconds": time.perf_counter() - t0,
        "loadavg_before": list(load0),
        "loadavg_after": list(os.getloadavg()),
        "machine_busy_cpu_seconds": None if busy0 is None else _busy_cpu_seconds() - busy0,
        "layer_wall": [round(x["wall"], 2) for x in layers],
        "layer_cpu": [round(x["cpu"], 2) for x in layers],
    }
    if finished:
        rec.update(lines[-1])
    return rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--functions", default="silu,tanh,exp,gelu")
    ap.add_argument("--solves", default="paper,mean+lut")
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--limit", type=float, default=3600.0)
    ap.add_argument("--child", nargs=2, metavar=("FUNCTION", "SOLVE"))
    args = ap.parse_args(argv)
    if args.child:
        return _child(*args.child)
    from nli.functions import FUNCTIONS

    fns = [f for f in args.functions.split(",") if f]
    solves = [s for s in args.solves.split(",") if s]
    bad = [f for f in fns if f not in FUNCTIONS] + [s for s in solves if s not in SOLVES]
    if bad:
        ap.error(f"unknown function or solve: {', '.join(bad)}")
    threads = [int(t) for t in args.threads.split(",")]
    for fn in fns:
        for s in solves:
            for t in threads:
                rec = timed(fn, s, t, args.limit)
                results = dict(read_json(RESULTS) or {})
                results.setdefault(fn, {}).setdefault(s, {})[f"threads_{t}"] = rec
                write_json(RESULTS, results)
                print(
                    f"{fn} {s} threads={t}: finished={rec['finished']} "
                    f"wall={rec.get('wall_seconds', rec['subprocess_wall_seconds']):.1f}s "
                    f"cpu={rec.get('cpu_seconds', float('nan')):.1f}s cost={rec.get('cost')} "
                    f"load={rec['loadavg_before'][0]:.2f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
