"""Datapath-exact DP benchmark (hw_sim.datapath_solve): solve times on a function's full default
domain, and the tables' report (max ulp, % correctly rounded) against the shipped table.

Each solve runs in a subprocess with a wall-clock limit (the machine is shared: wall and CPU
seconds and os.getloadavg() are recorded; per-layer progress of the last pass is streamed,
so a solve stopped at the limit still shows how far it got). A solve is
``objective@stride[:max_ulp]`` (stride 1 = exact; > 1 = cutpoints only at every stride-th grid
point, costs still over every input; max_ulp: only tables within that many ulp everywhere).
The shipped table's cutpoints are the incumbent (an upper bound) unless
``--no-incumbent``. A finished table that beats the shipped one on % correctly rounded
without a worse max ulp is written to benchmarks/results/datapath_tables/.
Writes benchmarks/results/datapath_solver.json (runs appended per function/layout/solve).

    NUMBA_NUM_THREADS=2 .venv/bin/python benchmarks/datapath_solver.py --function silu \\
        --layout paper --solves cr@1,ulp@1,cr@256,cr@1:4 --limit 600
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from results_io import read_json, results_path, stamp_tables, write_json

RESULTS = results_path("datapath_solver.json")
TABLE_DIR = results_path("datapath_tables")


def _child(function, layout, objective, stride: int, cap, incumbent: bool) -> int:
    """One solve: a JSON line per finished layer of the last pass, then the result line."""
    import numba

    from hw_sim.datapath_cost import decode_cost
    from hw_sim.datapath_solve import solve_datapath
    from hw_sim.report import error_report
    from nli.defaults import default_table
    from nli.solver import table_from_result
    from nli.table import save_table

    t0, c0 = time.perf_counter(), time.process_time()

    def progress(done, total):
        line = {"layer": done, "of": total, "wall": time.perf_counter() - t0}
        print(json.dumps(line), flush=True)

    def on_pass(stride, cost):
        line = {"pass_stride": stride, "best": int(cost), "wall": time.perf_counter() - t0}
        print(json.dumps(line), flush=True)

    inc = default_table(function).cutpoints if incumbent else None
    r = solve_datapath(
        function,
        layout,
        objective,
        stride=stride,
        incumbent=inc,
        progress=progress,
        max_ulp=cap,
        on_pass=on_pass,
    )
    extra = {} if cap is None else {"max_ulp_cap": cap}
    table = table_from_result(r, provenance={"script": "benchmarks/datapath_solver.py"}, **extra)
    rep = error_report(table)
    tmp = TABLE_DIR / f".{function}_{layout}_{objective}_{stride}_{cap}.json"
    TABLE_DIR.mkdir(exist_ok=True)
    save_table(table, tmp)
    out = {
        "done": True,
        "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
        "threads": numba.get_num_threads(),
        "solve_seconds": r.solve_seconds,
        "cost": decode_cost(int(r.objective_value), objective),
        "grid_points": r.grid_points,
        "cutpoints": [f"{int(b):04x}" for b in r.cutpoints],
        "report": {k: rep[k] for k in ("max_ulp", "mean_ulp", "pct_correctly_rounded")},
        "table_tmp": str(tmp),
    }
    print(json.dumps(out), flush=True)
    return 0


def _shipped(function: str) -> dict:
    from hw_sim.report import error_report
    from nli.defaults import default_table

    rep = error_report(default_table(function))
    return {k: rep[k] for k in ("max_ulp", "mean_ulp", "pct_correctly_rounded")}


def _run(args, solve: str) -> dict:
    objective, _, rest = solve.partition("@")
    stride, _, cap = rest.partition(":")
    stride = int(stride or 1)
    cmd = [sys.executable, __file__, "--child", args.function, args.layout, objective, str(stride)]
    cmd += [cap or "none"]
    cmd += ["--no-incumbent"] if args.no_incumbent else []
    load0, t0 = os.getloadavg(), time.perf_counter()
    lines, timed_out = [], False
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = proc.communicate(timeout=args.limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        timed_out = True
    for ln in (out or "").splitlines():
        try:
            lines.append(json.loads(ln))
        except json.JSONDecodeError:
            pass
    layers = [ln for ln in lines if "layer" in ln]
    final = next((ln for ln in lines if ln.get("done")), None)
    rec = {
        "function": args.function,
        "layout": args.layout,
        "objective": objective,
        "stride": stride,
        "max_ulp_cap": int(cap) if cap else None,
        "exact": stride == 1,
        "incumbent": None if args.no_incumbent else "shipped table's cutpoints",
        "limit_s": args.limit,
        "timed_out": timed_out,
        "wall_s": round(time.perf_counter() - t0, 1),
        "numba_threads_env": os.environ.get("NUMBA_NUM_THREADS"),
        "loadavg_start": load0,
        "loadavg_end": os.getloadavg(),
        "last_pass_layers_done": layers[-1] if layers else None,
        "passes_done": [ln for ln in lines if "pass_stride" in ln],
        "returncode": proc.returncode,
    }
    if final is not None:
        rec.update({k: v for k, v in final.items() if k not in ("done", "table_tmp")})
    return rec, final


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        f, lay, obj, stride = sys.argv[2:6]
        cap = sys.argv[6] if len(sys.argv) > 6 and sys.argv[6] != "--no-incumbent" else "none"
        cap = None if cap == "none" else int(cap)
        return _child(f, lay, obj, int(stride), cap, "--no-incumbent" not in sys.argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--function", default="silu")
    ap.add_argument("--layout", default="paper")
    ap.add_argument("--solves", default="cr@1,ulp@1", help="objective@stride, comma-separated")
    ap.add_argument("--limit", type=float, default=600.0, help="wall seconds per solve")
    ap.add_argument("--no-incumbent", action="store_true")
    args = ap.parse_args()
    shipped = _shipped(args.function)
    data = read_json(RESULTS) or {"runs": []}
    for solve in args.solves.split(","):
        rec, final = _run(args, solve)
        rec["shipped_report"] = shipped
        rec = stamp_tables(rec, only=[args.function])
        if final is not None:
            rep = final["report"]
            better = (
                rep["pct_correctly_rounded"] > shipped["pct_correctly_rounded"]
                and rep["max_ulp"] <= shipped["max_ulp"]
            )
            rec["beats_shipped"] = better
            tmp = final["table_tmp"]
            if better:
                tag = solve.replace("@", "_s").replace(":", "_cap").replace("+", "_")
                dest = TABLE_DIR / f"{args.function}_{args.layout}_{tag}.json"
                os.replace(tmp, dest)
                rec["table"] = str(dest.relative_to(RESULTS.parent.parent))
            else:
                os.remove(tmp)
        data["runs"].append(rec)
        write_json(RESULTS, data)
        print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
