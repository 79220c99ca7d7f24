"""docs/results.md's solver section and its prose: exact solve times (paper layout and the
shipped objective), the exact tables against the shipped ones, and the datapath-exact
objectives. Tables from results_solver_tables.py; assembled by benchmarks/readme_tables.py.
"""

from __future__ import annotations

from results_solver_tables import (
    EXACT_SOLVE_TARGETS_S,
    EXACT_TARGET_S,
    PAPER_TARGET_S,
    SINGLE_TARGET_S,
    datapath_solves_md,
    exact_label,
    exact_solves_md,
    exact_table_solves_md,
    exact_tables_md,
    solver_md,
    solver_times_md,
    thread_pairs,
    thread_speedup,
)

from nli.formats import FP16_MAX

from results_io import read_json, results_path


def _exact_tables_part() -> list[str]:
    """The exact tables of benchmarks/build_exact_tables.py, for the functions done so far."""
    d = results_path("exact_tables")
    sm = {p.name[: -len(".summary.json")]: read_json(p) for p in sorted(d.glob("*.summary.json"))}
    sm = {k: v for k, v in sm.items() if "report" in v and "thinned_solve" in v}
    if not sm:
        return []
    from nli.defaults import default_table_names

    ships = [exact_label(k, v) for k, v in sm.items() if v["ships"] and not v.get("installed")]
    shipped = [exact_label(k, v) for k, v in sm.items() if v.get("installed")]
    done = list(dict.fromkeys(v.get("function", k) for k, v in sm.items()))  # functions
    direct = sum(mode == "direct" for _, mode in default_table_names())
    se = read_json("solver_exact.json") or {}
    speed = thread_speedup(se)
    return [
        "**Exact tables against the shipped ones.** An exact table ships where, refined, it "
        "beats the shipped table on % correctly rounded without a worse max ulp, and stays "
        "valid on the fp16-precision unit where the shipped table is. "
        + (
            "Where it is not, `build_exact_tables.py FUNCTION --fp16-widths` solves again with "
            f"every macro interval of B bins at least B / {FP16_MAX:g} wide, so that RNE16(mul) "
            "stays "
            'finite (the rows marked "fp16 widths"; refinement moves only LUT values). '
            if any(v.get("min_widths") == "fp16" for v in sm.values())
            else ""
        )
        + "Per function, `python benchmarks/build_exact_tables.py FUNCTION` (resumable, one step "
        "per file under `benchmarks/results/exact_tables/`) solves the paper layout exactly and "
        "with stride-32 thinning (how the shipped tables began), refines the exact table as the "
        "shipped ones were refined, and runs each through the fp32 datapath over every input of "
        f"the full default domain. Done so far: {', '.join(done)} ({len(done)} of the {direct} "
        "direct-mode tables). "
        + (
            f"Shipped now (installed by `--ship`, each in place of the thinned table it beat): "
            f"{', '.join(shipped)}. "
            if shipped
            else ""
        )
        + f"Exact tables that beat the shipped one{' but are not shipped yet' if ships else ''}: "
        + (", ".join(ships) if ships else "none")
        + (
            " (not swapped into `nli/tables/` yet: the results in these docs measured with "
            "today's tables would be rerun with them, the model results among them: the models' "
            "Softmax uses exp, and their direct-mode rows use reciprocal and rsqrt)."
            if ships
            else "."
        ),
        exact_tables_md(sm),
        "The exact solves behind them (on one thread, a wall time far above the CPU time means "
        "the solve waited for the CPU behind other jobs)"
        + (
            f". The 2-thread wall is measured where a 2-thread run exists (the solve itself, or "
            "`solver_exact.py` below); else it is estimated as 1-thread CPU seconds over "
            f"{speed[1]:.2f}, the 1 -> 2 thread speedup measured on {speed[0]} (the smallest "
            "measured, below): those of a 1-thread `solver_exact.py` run where one exists (the "
            "newer solver; the `from` column names it), else the solve's own:"
            if speed
            else ":"
        ),
        exact_table_solves_md(sm, se, EXACT_TARGET_S),
    ]


def _datapath_part() -> list[str]:
    """The datapath-exact objectives (`ulp`, `cr`, `cr+maxulp`, optionally a max-ulp cap)."""
    d = read_json("datapath_solver.json")
    if not d or not d.get("runs"):
        return []
    exact = [r for r in d["runs"] if r["stride"] == 1]
    stopped = sum(bool(r.get("timed_out")) for r in exact)
    beats = {f"{r['function']} {r['objective']}" for r in d["runs"] if r.get("beats_shipped")}
    beats = sorted(beats)
    return [
        "**Datapath-exact objectives.** `ulp` (sum of ulp errors against RNE16(f)), `cr` "
        "(count of inputs not correctly rounded) and `cr+maxulp` (then the max ulp) score a "
        "macro interval by what the fp32 unit outputs over its inputs, bit for bit "
        "(`hw_sim/datapath_solve.py`; exact against brute force in the tests). A max-ulp cap "
        "admits only tables within that many ulp everywhere. The shipped table's cutpoints "
        "start as the incumbent bound. `NUMBA_NUM_THREADS=2 python benchmarks/datapath_solver.py "
        "--function silu --layout paper --solves cr@1,ulp@1,cr@256,cr@1:4 --limit 600` (and "
        "other `--solves`) -> `benchmarks/results/datapath_solver.json`; stride 1 is the exact "
        "solve, a larger stride puts cutpoints only on every stride-th grid point (costs still "
        f"over every input). Of {len(exact)} exact solves, {stopped} stopped at their time "
        "limit (their full-domain time is above it). Tables that beat the shipped one on % "
        f"correctly rounded without a worse max ulp: {', '.join(beats) if beats else 'none'}.",
        datapath_solves_md(d),
    ]


def _window_part() -> str:
    """' The window pass ...': benchmarks/solver_window.py's speedups, if it ran."""
    w = read_json("solver_window.json")
    if not w:
        return ""
    cases = "; ".join(
        f"{c['function']} on [{c['domain'][0]:g}, {c['domain'][1]:g}], {c['objective']}: "
        f"{c['seconds_without_window']:.1f} -> {c['seconds_with_window']:.1f} s "
        f"({c['speedup']:.2f}x"
        + ("" if c["same_cost"] and c["same_cutpoints"] else ", a DIFFERENT optimum")
        + ")"
        for c in w["cases"]
    )
    return (
        " Before the exact pass a window pass (`nli/solver.py::_window_pass`) tightens its bound; "
        f"whole exact solves without and with it, {w['threads']} thread(s), same run "
        f"(`NUMBA_NUM_THREADS=1 python benchmarks/solver_window.py` -> "
        "`benchmarks/results/solver_window.json`): "
        f"{cases}."
    )


def _thread_scaling(runs: dict) -> str:
    """' Thread scaling: ...' for each function with finished 1- and 2-thread runs, else ''."""
    out = []
    for fn, (one, two) in thread_pairs(runs).items():
        w1, w2 = one["wall_seconds"], two["wall_seconds"]
        out.append(
            f"{fn} {w1:.0f} s on 1 thread, {w2:.0f} s on 2 ({w1 / w2:.2f}x; the 2 threads "
            f"spent {two['cpu_seconds'] / one['cpu_seconds']:.2f}x the CPU seconds)"
        )
    return " Thread scaling, same machine and commit: " + "; ".join(out) + "." if out else ""


def section_solver(s) -> list[str]:
    silu = s["silu"]
    p259, t259, tp = (
        silu["solves"]["single:259"],
        silu["tables"]["optimum single:259"],
        silu["tables"]["optimum paper"],
    )
    sh, pub = silu["tables"]["shipped default"], silu["tables"]["NLI published"]
    red = {k: s[k]["solves"] for k in ("reciprocal_reduced", "rsqrt_reduced")}
    return [
        "## Solver time",
        "Exact optimum (no thinning), full default domain, 2 CPU cores: `python "
        "benchmarks/solver.py --functions silu,gelu,tanh,sigmoid,softplus,exp,reciprocal,rsqrt "
        "--solves single:11 --limit 600` -> `benchmarks/results/solver.json`. Single-bin DP layers "
        "under the sum objectives use a vectorized block kernel (`nli/dp_layer.py`); "
        "`tests/test_solver_fast.py` checks it against the plain DP on every objective and layout.",
        solver_times_md(s, "single:11", SINGLE_TARGET_S, False),
        "**Paper layout, exact** (K = 10, bins [1, 32 x 8, 1], every grid point a candidate): "
        "`python benchmarks/solver.py --functions "
        "silu,gelu,tanh,sigmoid,softplus,exp,reciprocal,rsqrt,reciprocal_reduced,rsqrt_reduced "
        "--solves paper --limit 1200` (`solves.paper` in the JSON: wall and CPU seconds, per-layer "
        "wall times, cost, cutpoints). Later 2-thread reruns by `benchmarks/solver_exact.py "
        "--solves paper` (a newer solver) are in the table of its runs below; the README takes the "
        "newest time per function.",
        solver_times_md(s, "paper", PAPER_TARGET_S, True),
        "**The shipped objective, exact** (paper layout, `mean` with LUT rounding in the "
        "objective, every grid point a candidate, full default domain), one row per run of "
        "`python benchmarks/solver_exact.py --functions FUNCTION --solves SOLVE --threads THREADS "
        "--limit SECONDS` (the row's function, solve and threads; the JSON also records the limit "
        "and how busy the machine was) -> "
        "`benchmarks/results/solver_exact.json` (kernels compiled before the clock "
        "starts; `solver` is the commit that ran). The DP runs from both ends and meets in the "
        "middle (`nli/dp.py`: the last layer is computed only where a suffix below the bound "
        "exists)." + _thread_scaling(read_json("solver_exact.json") or {}) + _window_part(),
        exact_solves_md(read_json("solver_exact.json") or {}, EXACT_SOLVE_TARGETS_S),
        *_exact_tables_part(),
        *_datapath_part(),
        "Each 32-bin DP layer (`nli/dp_layer.py::_layer`) skips pairs by three exact lower-bound "
        "cuts, each checked against the brute-force DP of `tests/naive.py` and bit for bit in "
        "`tests/test_solver_fast.py`:\n"
        "1. skip j when `Dp[j]` alone reaches the best value for k, and stop a segment sum once it "
        "reaches what it must beat;\n"
        "2. the rightmost-bin bound: a wider macro interval's rightmost bin is a chord over a "
        "superset of points in one convexity run, so its error bounds every j further left;\n"
        "3. the hot-bin bound: before the full 32-bin sum, compute the one bin of j that holds the "
        "spot where the last fully evaluated pair had its largest bin error.\n\n"
        "Under `mean` with LUT rounding a fourth step takes the pairs no bound can cut: in a "
        "saturation zone (`nli/dp_zones.py`: a tail where the LUT holds one value c, f monotone "
        "and f - c of one sign) every bin's line is the constant c, so a macro interval's cost is "
        "a difference of the zone's prefix sums, nearly every pair ties the best one, and a "
        "running minimum finds the best partner in O(1) per k. The chosen pair is then costed "
        "like any other, so a layer value is always a real pair's computed cost; it is the "
        "pair-by-pair minimum up to the rounding of the zone's sums (`tests/test_dp_zones.py`, "
        "with the brute-force DP on grids that hold a zone).",
        "**Exact paper optimum vs the shipped tables.** The exact optimum of the `paper` objective "
        f"has the lowest paper cost of all tables (silu {tp['paper_cost']:.3g} vs shipped "
        f"{sh['paper_cost']:.3g} vs NLI published {pub['paper_cost']:.3g}), but through the "
        f"datapath it is not the best table: silu mean relative error {tp['mean_rel_error']:.2g} "
        f"and {tp['pct_correctly_rounded']:.1f}% correctly rounded, against "
        f"{sh['mean_rel_error']:.2g} / {sh['pct_correctly_rounded']:.1f}% for the shipped table "
        f"and {pub['mean_rel_error']:.2g} / {pub['pct_correctly_rounded']:.1f}% for NLI's "
        "published cutpoints. The paper cost weighs every macro interval's mean equally, so it "
        "spends breakpoints on short intervals over few points. The shipped tables (objective "
        "`mean` with LUT rounding, stride-32 thinning, then datapath-aware LUT refinement) stay "
        "the default. All three through the spec datapath (fp32 unit, every input of the full "
        "default domain; same JSON, `tables`):",
        solver_md(s),
        f"**`single:259`** (the pure 259-point DP, silu): {p259['wall_seconds']:.0f} s wall, "
        f"{p259['cpu_seconds']:.0f} CPU-s (`--functions silu --solves single:259 --limit 2700`; "
        "NLI reports 17,000 s on an RTX 4090 for its pure 259-point DP). Its table "
        f"({t259['comparators']} comparators) reaches paper cost {t259['paper_cost']:.2g}, mean "
        f"relative error {t259['mean_rel_error']:.2g}, {t259['pct_correctly_rounded']:.1f}% "
        "correctly rounded. On the reduced domains `paper` takes "
        f"{red['reciprocal_reduced']['paper']['wall_seconds']:.1f} s (reciprocal, 1,025 points) "
        f"and {red['rsqrt_reduced']['paper']['wall_seconds']:.1f} s (rsqrt, 2,049 points); "
        f"`single:259` {red['reciprocal_reduced']['single:259']['wall_seconds']:.1f} s and "
        f"{red['rsqrt_reduced']['single:259']['wall_seconds']:.1f} s.",
    ]
