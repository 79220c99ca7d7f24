"""The solver's window pass (nli.solver._window_pass), on and off, in the same run: the whole
exact solve (coarse passes, window pass, exact pass) of the paper layout on sub-domains, with
``nli.solver.WINDOW_ROUNDS`` at its default and at 0 (the window pass returns its input), one
after the other, on the Numba threads the environment sets. Records wall seconds of each, their
ratio, and whether cost (float.hex) and cutpoints agree -> benchmarks/results/solver_window.json.

    NUMBA_NUM_THREADS=1 python benchmarks/solver_window.py
"""

from __future__ import annotations

import argparse
import sys
import time

from results_io import results_path, write_json

OUT = results_path("solver_window.json")
# (function, domain, objective, LUT rounding in the objective)
CASES = (
    ("silu", (-16.0, -0.25), "mean", True),
    ("gelu", (-8.0, -0.5), "mean", True),
    ("exp", (-16.0, 0.0), "mean", True),
    ("silu", (-16.0, -0.25), "paper", False),
)


def _solve_seconds(G, bins, obj, ok, minw, rounds: int):
    from nli import solver

    solver.WINDOW_ROUNDS, saved = rounds, solver.WINDOW_ROUNDS
    try:
        t0 = time.perf_counter()
        cost, idx = solver._solve_grid(G, bins, obj, 1, ok, minw, None)
        return time.perf_counter() - t0, cost, idx
    finally:
        solver.WINDOW_ROUNDS = saved


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    import numba
    import numpy as np

    from nli import solver
    from nli.formats import DTYPE_FORMATS
    from nli.functions import get_function
    from nli.grid import fp16_grid
    from nli.objective import grid_arrays, objective_code

    bins = solver.PAPER_BINS
    rows = []
    for name, domain, objective, quantized in CASES:
        x, _ = fp16_grid(*domain)
        G = grid_arrays(get_function(name), x)
        ok = np.abs(G.f) < DTYPE_FORMATS["fp16"].overflow  # RNE16(f) finite, as nli.solver.solve
        obj = objective_code(objective, quantized)
        minw = [0.0] * len(bins)
        _solve_seconds(G, bins, obj, ok, minw, solver.WINDOW_ROUNDS)  # compile / warm up
        off = _solve_seconds(G, bins, obj, ok, minw, 0)
        on = _solve_seconds(G, bins, obj, ok, minw, solver.WINDOW_ROUNDS)
        row = {
            "function": name,
            "domain": list(domain),
            "objective": objective + (" + LUT rounding" if quantized else ""),
            "grid_points": int(x.size),
            "seconds_without_window": round(off[0], 2),
            "seconds_with_window": round(on[0], 2),
            "speedup": round(off[0] / on[0], 3),
            "same_cost": float(off[1]).hex() == float(on[1]).hex(),
            "same_cutpoints": bool(np.array_equal(off[2], on[2])),
        }
        rows.append(row)
        print(
            f"{name} {domain} {row['objective']}: {off[0]:.1f} s -> {on[0]:.1f} s "
            f"({row['speedup']:.2f}x), same optimum {row['same_cost'] and row['same_cutpoints']}",
            flush=True,
        )
    write_json(OUT, {"command": "benchmarks/solver_window.py", "threads":
                     numba.get_num_threads(), "cases": rows})  # fmt: skip
    print(f"-> {OUT}")
    return 0 if all(r["same_cost"] and r["same_cutpoints"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
