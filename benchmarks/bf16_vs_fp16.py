"""FP16 against BF16 tables, side by side, with the same report columns (numerics §9, §13).

For each function of ``nli.defaults.BF16_DEFAULT_TABLES``, three rows, each measured by
``hw_sim.report.error_report`` over every finite input of the table's own format in its default
domain (-0 excluded), against the correctly rounded result in that format:

* ``fp16_paper``: the shipped fp16 table (paper layout, 10 macro intervals, 259 entries);
* ``bf16_paper``: the same layout solved on the BF16 grid of the function's default BF16 domain
  (``nli.solver.solve(..., dtype="bf16")``, objective ``max`` without LUT rounding: the sum
  objectives' prefix sums lose accuracy where a BF16 domain reaches f's underflow, see
  nli/objective.py; candidate stride STRIDE where the grid exceeds EXACT_MAX_POINTS, as the
  fp16 build), LUT = RNE_bf16(f), no refinement;
* ``bf16_shipped``: the shipped bf16 table (``benchmarks/build_tables.py --dtype bf16``, binade
  layout: more comparators and entries, given in the row).

ulp distances count representable values of the row's own format: a BF16 ulp is 2^-7 relative
at the bottom of a binade, an FP16 one 2^-10, so equal ulp counts are not equal errors; mean
relative error and max absolute error compare across formats directly.

    .venv/bin/python benchmarks/bf16_vs_fp16.py   ->  benchmarks/results/bf16_vs_fp16.json
"""

from __future__ import annotations

import sys
import time

from hw_sim.report import error_report
from nli.defaults import BF16_DEFAULT_TABLES, default_table
from nli.functions import get_function
from nli.grid import bf16_grid
from nli.solver import solve, table_from_result

from results_io import results_path, stamp_tables, write_json

RESULTS = results_path("bf16_vs_fp16.json")
EXACT_MAX_POINTS = 4096
STRIDE = 32
OBJECTIVE = "max"
COLUMNS = ("max_ulp", "pct_correctly_rounded", "mean_rel_error", "max_abs_error")


def _row(table, **extra) -> dict:
    rep = error_report(table)
    return {
        "dtype": table.dtype,
        "layout": table.meta.get("layout"),
        "comparators": table.K,
        "lut_entries": table.entries,
        "inputs": rep["inputs"],
        "domain": rep["domain"],
        **{k: rep[k] for k in COLUMNS},
        "nan_mismatch": rep["nan_mismatch"],
        **extra,
    }


def main() -> int:
    out = {
        "command": "benchmarks/bf16_vs_fp16.py",
        "columns": list(COLUMNS),
        "bf16_paper_solver": {"objective": OBJECTIVE, "lut_rounding_in_objective": False},
        "functions": {},
    }
    for name, mode in BF16_DEFAULT_TABLES:
        key = name if mode == "direct" else f"{name}_{mode}"
        domain = get_function(name).bf16_domains[mode]
        n = bf16_grid(*domain)[0].size
        stride = 1 if n <= EXACT_MAX_POINTS else STRIDE
        t0 = time.perf_counter()
        r = solve(name, "paper", OBJECTIVE, domain=domain, stride=stride, dtype="bf16")
        bf16_paper = table_from_result(r)
        seconds = time.perf_counter() - t0
        out["functions"][key] = {
            "fp16_paper": _row(default_table(name, mode)),
            "bf16_paper": _row(bf16_paper, stride=stride, solve_seconds=round(seconds, 1)),
            "bf16_shipped": _row(default_table(name, mode, "bf16")),
        }
        rows = out["functions"][key]
        print(
            key,
            "  ".join(
                f"{k}: {v['max_ulp']} ulp, {v['pct_correctly_rounded']:.2f}% CR, "
                f"rel {v['mean_rel_error']:.3g}"
                for k, v in rows.items()
            ),
            flush=True,
        )
        write_json(RESULTS, stamp_tables(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
