"""docs/results.md's exact-solve table (benchmarks/results_solver_tables.py): 2-thread walls are
measured where a 2-thread run exists, else estimated from 1-thread CPU seconds at the smallest
measured speedup, and each says which."""

from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from results_solver_tables import (  # noqa: E402
    exact_label,
    exact_table_solves_md,
    paper_walls,
    thread_pairs,
    thread_speedup,
)


def _run(wall, cpu):
    return {"finished": True, "wall_seconds": wall, "cpu_seconds": cpu}


SE = {  # solver_exact.json: a 1.5x and a 2.0x speedup, and a function with a 2-thread run only
    "a": {"mean+lut": {"threads_1": _run(900.0, 900.0), "threads_2": _run(600.0, 1000.0)}},
    "b": {"mean+lut": {"threads_1": _run(800.0, 800.0), "threads_2": _run(400.0, 800.0)}},
    "c": {"mean+lut": {"threads_2": _run(700.0, 1300.0)}},
    "d": {"mean+lut": {"threads_1": {"finished": False}}},
}


def _summary(threads, wall, cpu):
    return {"report": {}, "solve": {"threads": threads, "wall_seconds": wall, "cpu_seconds": cpu}}


def test_the_smallest_measured_speedup_is_used():
    assert thread_speedup(SE) == ("a", 1.5)
    assert thread_speedup({"c": SE["c"]}) is None


def test_measured_where_a_two_thread_run_exists_else_estimated():
    sm = {
        "a": _summary(1, 5000.0, 910.0),  # solver_exact has its 2-thread run: 600 s measured
        "c": _summary(1, 3000.0, 1000.0),  # ditto: 700, over the target
        "e": _summary(1, 2000.0, 870.0),  # none: 870 / 1.5 = 580, estimated
        "f": _summary(2, 650.0, 1290.0),  # solved on 2 threads itself
        "g": _summary(1, 1200.0, 960.0),  # 960 / 1.5 = 640, estimated, over
    }
    rows = {r.split(" | ")[0][2:]: r for r in exact_table_solves_md(sm, SE, 600).splitlines()[2:]}
    assert "| 600 (measured) | 600: met |" in rows["a"]
    assert "| 700 (measured) | 600: missed |" in rows["c"]
    assert "| ~580 (estimated) | 600: met |" in rows["e"]
    assert "| 650 (measured) | 600: missed |" in rows["f"]
    assert "| ~640 (estimated) | 600: missed |" in rows["g"]
    none = exact_table_solves_md({"e": sm["e"]}, {}, 600).splitlines()[2]
    assert "| - | - |" in none  # no speedup measured anywhere: no estimate


def test_a_one_thread_solver_exact_run_is_preferred_for_the_estimate():
    """A newer solver's 1-thread run in solver_exact.json, not the table's own older solve,
    gives the estimate, and the row names it."""
    se = {**SE, "h": {"mean+lut": {"threads_1": _run(870.0, 840.0)}}}
    sm = {"h": _summary(1, 1400.0, 1300.0)}  # the solve's own: 1300 / 1.5 = 867, missed
    (row,) = exact_table_solves_md(sm, se, 600).splitlines()[2:]
    assert "| ~560 (estimated) | 600: met |" in row  # 840 / 1.5
    assert "estimate: solver_exact.json, 1 thread, 840 CPU-s |" in row
    assert "| 1400 | 1300 |" in row  # the table's own solve is still shown


def test_thread_scaling_pairs_runs_of_one_solver_commit_only():
    """A 1-thread and a 2-thread run by different solvers are no speedup measurement."""
    one = {**_run(900.0, 900.0), "solver_commit": "old"}
    two = {**_run(300.0, 590.0), "solver_commit": "new"}
    se = {"x": {"mean+lut": {"threads_1": one, "threads_2": two}}}
    assert thread_pairs(se) == {} and thread_speedup(se) is None
    se["x"]["mean+lut"]["threads_1"] = {**one, "solver_commit": "new"}
    assert thread_speedup(se) == ("x", 3.0)


def test_paper_walls_take_the_newest_run_per_function():
    """solver_exact.py's finished 2-thread paper run replaces solver.py's time; unfinished runs
    and reduced-domain solves do not count."""
    s = {
        "silu": {"mode": "direct", "solves": {"paper": {"finished": True, "wall_seconds": 349.0}}},
        "exp": {"mode": "direct", "solves": {"paper": {"finished": True, "wall_seconds": 69.0}}},
        "exp_reduced": {
            "mode": "reduced",
            "solves": {"paper": {"finished": True, "wall_seconds": 1}},
        },
        "thinning_gap": [],
    }
    se = {
        "silu": {"paper": {"threads_2": _run(266.0, 527.0)}},
        "exp": {"paper": {"threads_2": {"finished": False}}},
        "tanh": {"paper": {"threads_2": _run(454.0, 899.0)}},
    }
    assert paper_walls(s, se) == {"silu": 266.0, "exp": 69.0, "tanh": 454.0}


def test_an_fp16_widths_solve_is_labelled_and_not_timed_by_the_plain_solves_runs():
    """A --fp16-widths summary (another problem: minimum widths) shows as "F (fp16 widths)" and
    takes its time from its own solve, never from F's runs in solver_exact.json."""
    s = {**_summary(1, 1000.0, 750.0), "function": "a", "min_widths": "fp16"}
    (row,) = exact_table_solves_md({"a.fp16_widths": s}, SE, 600).splitlines()[2:]
    assert row.startswith("| a (fp16 widths) | 1 | 1000 | 750 | ~500 (estimated) | 600: met |")
    assert exact_label("a", _summary(1, 1.0, 1.0)) == "a"
