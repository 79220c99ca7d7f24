"""Solver benchmark: solve times on the full default domains and the error of every table
through the numerics §3 datapath (hw_sim.run_elementwise via hw_sim.report.error_report).

Per function (direct domain unless noted) it records
* timed solves, each in a subprocess with a wall-clock limit (the machine is shared:
  wall and CPU seconds are both reported; per-layer times are streamed so that a solve
  stopped at the limit still shows how far it got): ``single:11`` exact, ``paper`` exact,
  ``paper`` thinned (``--stride``), ``single:259`` exact;
* tables: the solver's optimum for each finished solve (LUT = RNE16), the shipped default
  table (nli/tables, refined), NLI's published cutpoints, and the uniform / curvature /
  NN-LUT-style baselines: grid points, paper cost (``cutpoints_cost``), mean/max relative
  error, mean/max ulp and % correctly rounded through the datapath (fp32).
Writes benchmarks/results/solver.json (merged with earlier runs per function).

    .venv/bin/python benchmarks/solver.py --functions silu,exp \\
        --solves single:11,paper@32 --limit 1800
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from results_io import results_path, stamp_tables, write_json

RESULTS = results_path("solver.json")


def _child(function: str, layout: str, stride: int, domain) -> int:
    """Run one solve, printing one JSON line per finished layer and a final result line."""
    from nli.solver import solve

    t0, c0 = time.perf_counter(), time.process_time()

    def progress(done, total):
        print(
            json.dumps(
                {
                    "layer": done,
                    "of": total,
                    "wall": time.perf_counter() - t0,
                    "cpu": time.process_time() - c0,
                }
            ),
            flush=True,
        )

    r = solve(function, layout, "paper", domain=domain, stride=stride, progress=progress)
    print(
        json.dumps(
            {
                "done": True,
                "cost": r.objective_value,
                "solve_seconds": r.solve_seconds,
                "cpu_seconds": time.process_time() - c0,
                "grid_points": r.grid_points,
                "cutpoints": [f"{int(b):04x}" for b in r.cutpoints],
            }
        ),
        flush=True,
    )
    return 0


def timed_solve(function: str, spec: str, limit: float, domain=None) -> dict:
    """spec = LAYOUT or LAYOUT@STRIDE; runs in a subprocess stopped after ``limit`` seconds."""
    layout, _, stride = spec.partition("@")
    stride = int(stride or 1)
    cmd = [sys.executable, __file__, "--child", function, layout, str(stride)]
    if domain is not None:
        cmd += ["--domain", repr(domain[0]), repr(domain[1])]
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, check=True).stdout
        finished = True
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        finished = False
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    layers = [entry for entry in lines if "layer" in entry and entry["layer"] > 0]
    rec = {
        "layout": layout,
        "stride": stride,
        "exact": stride == 1,
        "finished": finished,
        "limit_seconds": limit,
        "wall_seconds": time.perf_counter() - t0,
        "layers_done": len(layers),
        "layer_wall": [round(layer["wall"], 2) for layer in layers],
    }
    if finished:
        rec.update(lines[-1])
    return rec


def table_errors(table, domain, function) -> dict:
    from hw_sim.report import error_report
    from nli.functions import get_function
    from nli.grid import fp16_grid
    from nli.score import cutpoints_cost

    rep = error_report(table, domain)
    x, _ = fp16_grid(*domain)
    cost = cutpoints_cost(get_function(function), x, table.cutpoint_values(), table.bins, "paper")
    keep = ("mean_rel_error", "max_rel_error", "mean_ulp", "max_ulp", "pct_correctly_rounded")
    return {
        "entries": table.entries,
        "comparators": table.K,
        "paper_cost": cost,
        **{k: rep[k] for k in keep},
    }


def bench_function(name: str, mode: str, solves: list[str], limit: float) -> dict:
    from nli.baselines import BASELINES, baseline_table
    from nli.defaults import default_table
    from nli.functions import get_function
    from nli.grid import fp16_grid
    from nli.published import PUBLISHED_CUTPOINTS, published_table
    from nli.table import table_from_cutpoints

    domain = get_function(name).domains[mode]
    rec = {
        "function": name,
        "mode": mode,
        "domain": list(domain),
        "grid_points": int(fp16_grid(*domain)[0].size),
        "solves": {},
        "tables": {},
    }
    for spec in solves:
        s = timed_solve(name, spec, limit, domain if mode != "direct" else None)
        rec["solves"][spec] = s
        print(
            f"{name}/{mode} {spec}: finished={s['finished']} wall {s['wall_seconds']:.0f}s "
            f"layers {s['layers_done']} cost {s.get('cost')}",
            flush=True,
        )
        if s["finished"]:
            from nli.solver import Layout

            bits = np.array([int(h, 16) for h in s["cutpoints"]], dtype=np.uint16)
            t = table_from_cutpoints(name, bits, list(Layout.parse(s["layout"]).bins))
            rec["tables"][f"optimum {spec}"] = table_errors(t, domain, name)
    try:
        t = default_table(name, mode)
        rec["tables"]["shipped default"] = {
            **table_errors(t, domain, name),
            **{
                k: t.meta.get(k)
                for k in ("objective", "cost", "solve_seconds", "thinning", "refined")
            },
        }
    except Exception as e:  # noqa: BLE001 (record, keep benchmarking)
        rec["tables"]["shipped default"] = {"error": str(e)}
    if mode == "direct" and name in PUBLISHED_CUTPOINTS:
        rec["tables"]["NLI published"] = table_errors(published_table(name), domain, name)
    for kind in BASELINES:
        rec["tables"][f"baseline {kind}"] = table_errors(
            baseline_table(kind, name, domain), domain, name
        )
    return rec


GAP_CASES = (("silu", (-8.0, -0.5)), ("exp", (-16.0, -1.0)), ("tanh", (0.5, 8.0)))


def thinning_gaps(
    stride: int = 32, cases=GAP_CASES, settings=(("mean", True), ("paper", False))
) -> list[dict]:
    """Measured gap of candidate thinning (the shipped tables' solve setting: paper layout,
    objective mean with LUT rounding) to the exact optimum; ``cases`` are (function, domain)
    with domain None for the full default domain."""
    from nli.solver import solve

    out = []
    for name, dom in cases:
        for objective, q in settings:
            r = solve(name, "paper", objective, domain=dom, stride=stride, quantized=q)
            e = solve(name, "paper", objective, domain=dom, stride=1, quantized=q)
            out.append(
                {
                    "function": name,
                    "domain": list(r.domain),
                    "objective": objective,
                    "lut_rounding": q,
                    "grid_points": r.grid_points,
                    "stride": stride,
                    "thinned_cost": r.objective_value,
                    "exact_cost": e.objective_value,
                    "gap": r.objective_value - e.objective_value,
                    "relative_gap": (r.objective_value - e.objective_value) / e.objective_value,
                    "thinned_solve_seconds": r.solve_seconds,
                    "exact_solve_seconds": e.solve_seconds,
                    "same_cutpoints": bool((r.cutpoints == e.cutpoints).all()),
                }
            )
            print(out[-1], flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--functions",
        default="silu,exp,reciprocal,rsqrt,gelu,sigmoid,tanh,softplus,"
        "reciprocal_reduced,rsqrt_reduced",
    )
    ap.add_argument("--solves", default="single:11,paper@32", help="comma list of LAYOUT[@STRIDE]")
    ap.add_argument("--limit", type=float, default=1800.0, help="wall-clock seconds per solve")
    ap.add_argument("--gaps", action="store_true", help="only measure the thinning gap (GAP_CASES)")
    ap.add_argument(
        "--gap-full",
        default=None,
        metavar="F1,F2",
        help="only measure the thinning gap of the shipped setting (mean, LUT rounding) on the "
        "full default domains of these functions",
    )
    ap.add_argument(
        "--child", nargs=3, metavar=("FUNCTION", "LAYOUT", "STRIDE"), help=argparse.SUPPRESS
    )
    ap.add_argument("--domain", nargs=2, type=float, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return _child(args.child[0], args.child[1], int(args.child[2]), args.domain)

    try:
        with open(RESULTS) as fh:
            results = json.load(fh)
    except (FileNotFoundError, json.JSONDecodeError):
        results = {}
    results["machine"] = {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    if args.gap_full:
        from nli.functions import FUNCTIONS

        names = [f for f in args.gap_full.split(",") if f]
        bad = [f for f in names if f not in FUNCTIONS]
        if bad or not names:
            ap.error(
                f"--gap-full: unknown function(s) {', '.join(bad) or '(none given)'}; "
                f"known: {', '.join(sorted(FUNCTIONS))}"
            )
        got = thinning_gaps(cases=[(f, None) for f in names], settings=(("mean", True),))
        old = {g["function"]: g for g in results.get("thinning_gap_full", [])}
        results["thinning_gap_full"] = list({**old, **{g["function"]: g for g in got}}.values())
        write_json(RESULTS, results)
        return 0
    if args.gaps:
        results["thinning_gap"] = thinning_gaps()
        write_json(RESULTS, results)
        return 0
    for key in [k for k in args.functions.split(",") if k]:
        name, _, mode = key.partition("_")
        rec = bench_function(
            name, mode or "direct", [s for s in args.solves.split(",") if s], args.limit
        )
        rec["load_average_after"] = os.getloadavg()
        old = results.get(key, {})
        for part in ("solves", "tables"):  # keep earlier runs' solves of other layouts
            rec[part] = {**old.get(part, {}), **rec[part]}
        results[key] = stamp_tables(rec, only=[key])  # its shipped table (key: the file stem)
        write_json(RESULTS, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
