"""Candidate default tables from the EXACT solver (no candidate thinning), one function per
invocation, resumable: every step is cached under benchmarks/results/exact_tables/.

For FUNCTION (direct mode, its full default domain), as benchmarks/build_tables.py and
benchmarks/refine_shipped.py made the shipped table, but with stride 1:
1. NAME.raw.json: the paper layout solved exactly with the ``mean`` objective and LUT
   rounding in the objective (LUT = RNE16(f(point))); the solve's wall / CPU seconds go to
   the summary. A finished run of benchmarks/solver_exact.py (solver_exact.json) on the same
   grid stands in for the solve when its cutpoints' objective, summed again here, is its
   recorded cost to the bit (the summary then names it and carries its seconds);
2. NAME.mean_rel.json: hw_sim.refine with objective ``mean_rel`` (build_tables' step 2);
3. NAME.json: then hw_sim.refine ``pareto`` (refine_shipped's defaults: radius 2, 8 sweeps),
   kept only where strictly better on mean relative error and % correctly rounded and not
   worse in max ulp (as refine_shipped), else step 2's table;
   The solve saves its progress every minute (``--checkpoint-dir``, NAME.solve.npz) and a
   rerun resumes it; the summary then sums the seconds of every run and says so;
4. NAME.thinned.json: the same solve with stride-32 thinning (how the shipped tables began),
   for the thinning gap on the objective and through the datapath;
5. NAME.summary.json: hw_sim.report.error_report (the ``nli table report`` numbers: % CR,
   max / mean ulp, mean / max relative error) of the thinned, raw, refined and shipped
   tables, the exact optimum against the thinned one and the shipped table's own ``mean`` +
   LUT-rounding objective value on the same grid, and ``ships``: whether the refined exact
   table beats the shipped one on % CR without a worse max ulp and, where the shipped table
   also works on the fp16-precision unit, still does (``fp16_variant_valid``): the rule for
   shipping it.
6. with ``--ship``, where ``ships`` holds: NAME.json becomes the shipped table
   (nli/tables/NAME.json, written atomically), its meta's ``comparison`` recording the
   published-cutpoint table it beats (as benchmarks/build_tables.py records it) and the
   table it replaced (fingerprint and datapath report). Once shipped, later runs keep the
   comparison that decided it (the summary's ``installed``).
With ``--fp16-widths`` both solves keep every macro interval of B bins at least B / 65504
wide (``solve(precision="fp16")``), so that the table's fp16-precision variant stays valid
(refinement moves only LUT values); every step then goes to NAME.fp16_widths.* instead.
Without ``--ship`` the shipped tables are only read, never written. Every result that used
the replaced table (benchmarks/results/*.json, ``shipped_tables``) is then out of date until
its benchmark is rerun; docs/results.md lists them.

    .venv/bin/python benchmarks/build_exact_tables.py silu [--out DIR] [--ship] [--fp16-widths]
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time

from results_io import SHIPPED_TABLES, read_json, results_path, stamp_tables, write_json

OUT = results_path("exact_tables")
CHECKPOINTS = OUT.parents[2] / "cache" / "solve_checkpoints"  # git-ignored


def _shipped_stride(name: str) -> int | None:
    """The candidate stride the shipped direct table was solved with, as
    benchmarks/build_tables.py recorded it (build_tables.json: its chosen objective's try);
    None if it recorded none."""
    rec = (read_json("build_tables.json") or {}).get(name)
    tried = [t for t in (rec or {}).get("tried", []) if t["objective"] == rec.get("chosen")]
    return int(tried[0]["stride"]) if tried else None


def _fp16_ok(table) -> bool:
    """Whether the table is valid on the fp16-precision unit too (every RNE16(mul) finite)."""
    from nli.table import TableError

    try:
        table.with_precision("fp16")
    except TableError:
        return False
    return True


def _report(table, domain) -> dict:
    from build_tables import report_summary

    from hw_sim.report import error_report

    return report_summary(error_report(table, domain))


def _stored_solve(name: str, domain):
    """(SolveResult, record) from a finished exact mean + LUT-rounding run in
    solver_exact.json on this grid whose cost, summed again, is the recorded one to the bit;
    (None, None) if there is none."""
    import numpy as np

    from nli.functions import get_function
    from nli.grid import f64_to_bits, fp16_grid
    from nli.objective import cost_of_cutpoints, grid_arrays
    from nli.solver import PAPER_BINS, Layout, SolveResult

    x, _ = fp16_grid(*domain)
    for rec in ((read_json("solver_exact.json") or {}).get(name, {}).get("mean+lut", {})).values():
        idx = rec.get("cut_idx")
        if not (rec.get("done") and idx and rec.get("grid_points") == x.size):
            continue
        G = grid_arrays(get_function(name), x)
        cost = cost_of_cutpoints(G, idx, PAPER_BINS, "mean", True)
        if cost.hex() != rec["cost_hex"]:
            continue
        idx = np.array(idx, dtype=np.int64)
        bits = np.array([int(h, 16) for h in rec["cutpoints"]], dtype=np.uint16)
        if not np.array_equal(bits, f64_to_bits(x[idx], "fp16")):
            continue
        r = SolveResult(
            name, "mean", Layout("paper", PAPER_BINS), (float(x[0]), float(x[-1])), idx, bits,
            cost, rec["wall_seconds"], int(x.size), quantized=True,
        )  # fmt: skip
        keep = ("solver_commit", "threads", "wall_seconds", "cpu_seconds", "cost", "cost_hex")
        return r, {k: rec[k] for k in keep if k in rec}
    return None, None


def _ship(name: str, final, shipped, shipped_fp: str, summary: dict) -> None:
    """Install ``final`` as the shipped direct table of ``name``; its meta's ``comparison``
    records the published-cutpoint table (as benchmarks/build_tables.py does) and the table
    it replaces (``shipped``, fingerprint ``shipped_fp``)."""
    from build_tables import beats_published, published_report

    from nli.defaults import default_table_path
    from nli.solver import solver_version
    from nli.table import save_table

    ours, pub = summary["report"]["exact_refined"], published_report(name)
    comparison = {
        "published_nli": pub,
        "ours": ours,
        "beats_published": beats_published(ours, pub),
        "replaced": {
            "fingerprint": shipped_fp,
            "thinning": shipped.meta.get("thinning"),
            "report": summary["report"]["shipped"],
        },
    }
    prov = {**final.meta["provenance"], "method": "nli DP solver (exact) + hw_sim refinement"}
    # steps cached before tables recorded the solver's version: the package that ships them
    version = final.meta.get("solver_version") or solver_version()
    table = final.with_lut(
        final.lut, provenance=prov, comparison=comparison, solver_version=version
    )
    save_table(table, default_table_path(name, "direct"))
    print(f"{name}: shipped the refined exact table ({default_table_path(name, 'direct')})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("function")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument(
        "--ship", action="store_true", help="install the refined exact table where it beats"
    )
    ap.add_argument(
        "--fp16-widths",
        action="store_true",
        help="solve with macro intervals wide enough for the fp16-precision unit",
    )
    ap.add_argument(
        "--checkpoint-dir",
        default=str(CHECKPOINTS),
        help="where the exact solve saves its progress (NAME.solve.npz) and resumes from",
    )
    args = ap.parse_args(argv)
    import numpy as np

    from hw_sim.refine import RefineConfig, refine_table
    from nli.defaults import default_table
    from nli.fingerprint import table_fingerprint
    from nli.formats import FP16_MAX
    from nli.functions import FUNCTIONS, get_function
    from nli.grid import fp16_grid
    from nli.objective import cost_of_cutpoints, grid_arrays
    from nli.solve_checkpoint import SolveCheckpoint
    from nli.solver import solve, table_from_result
    from nli.table import load_table, save_table

    if args.function not in FUNCTIONS:
        ap.error(f"unknown function {args.function!r}")
    name = args.function
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fn = get_function(name)
    domain = fn.domains["direct"]
    stem = f"{name}.fp16_widths" if args.fp16_widths else name
    precision = "fp16" if args.fp16_widths else "fp32"  # of the solves: their minimum widths
    summary_path = out / f"{stem}.summary.json"
    summary = dict(read_json(summary_path) or {"function": name, "domain": list(domain)})
    if args.fp16_widths:
        summary["min_widths"] = "fp16"
    raw_path = out / f"{stem}.raw.json"
    prov = {"method": "nli DP solver (exact)", "script": "benchmarks/build_exact_tables.py"}
    if args.fp16_widths:
        prov["min_widths"] = f"fp16 (B / {FP16_MAX:g} per macro interval of B bins)"

    def as_table(r, prov):  # the solves' tables are fp32-precision, as the shipped ones
        return table_from_result(r, provenance=prov).with_precision("fp32")

    if not raw_path.exists() and not args.fp16_widths:
        r, rec = _stored_solve(name, domain)
        if r is not None:
            summary["solve"] = {"from": "solver_exact.json", **rec}
            prov["solve_record"] = "benchmarks/results/solver_exact.json"
            save_table(as_table(r, prov), raw_path)
            write_json(summary_path, summary)
    if not raw_path.exists():
        import numba
        from tqdm import tqdm

        xs, _ = fp16_grid(*domain)  # compile (or load) the kernels before the clock starts
        warm = (float(xs[0]), float(xs[min(2047, xs.size - 1)]))
        solve(name, "paper", "mean", domain=warm, quantized=True)
        t0, c0 = time.perf_counter(), time.process_time()
        layers, bars = [], []

        def progress(done, total):
            if not bars:  # made at the first report: a resumed solve starts past 0
                bars.append(
                    tqdm(
                        total=total,
                        initial=done,
                        desc=f"{name} exact solve (DP layers)",
                        bar_format="{l_bar}{bar}| {n:.3g}/{total_fmt} layers "
                        "[{elapsed}<{remaining}]",
                    )
                )
            bar = bars[0]
            bar.update(done - bar.n)
            if done == int(done) and done > len(layers):
                layers.append([time.perf_counter() - t0, time.process_time() - c0])

        ck = SolveCheckpoint(Path(args.checkpoint_dir) / f"{stem}.solve.npz")
        try:
            r = solve(
                name, "paper", "mean", domain=domain, quantized=True, progress=progress,
                checkpoint=ck, precision=precision,
            )  # fmt: skip
        # a CheckpointError (saved before the solver's code changed, say), or no feasible
        # cutpoints (under --fp16-widths, say)
        except ValueError as e:
            ap.error(str(e))
        for bar in bars:
            bar.close()
        summary["solve"] = {
            "wall_seconds": ck.elapsed() if ck.resumed else time.perf_counter() - t0,
            "cpu_seconds": ck.cpu_elapsed() if ck.resumed else time.process_time() - c0,
            "threads": numba.get_num_threads(),
            "cost": r.objective_value,
            "cost_hex": float(r.objective_value).hex(),
        }
        if ck.resumed:  # seconds summed over the runs; per-layer times only of an unbroken run
            summary["solve"]["resumed_from_checkpoint"] = True
        else:
            summary["solve"]["layer_wall_cpu"] = [[round(w, 2), round(c, 2)] for w, c in layers]
        save_table(as_table(r, prov), raw_path)
        write_json(summary_path, summary)
        ck.discard()
    raw = load_table(raw_path)
    mr_path = out / f"{stem}.mean_rel.json"
    if not mr_path.exists():
        save_table(refine_table(raw, RefineConfig(objective="mean_rel"), domain=domain)[0], mr_path)
    mean_rel = load_table(mr_path)
    final_path = out / f"{stem}.json"
    if not final_path.exists():
        new, _ = refine_table(mean_rel, RefineConfig("pareto", 2, 8), domain=domain)
        b, a = _report(mean_rel, domain), _report(new, domain)
        better = (
            a["mean_rel_error"] < b["mean_rel_error"]
            and a["pct_correctly_rounded"] > b["pct_correctly_rounded"]
            and a["max_ulp"] <= b["max_ulp"]
        )
        summary["pareto_kept"] = better
        save_table(new if better else mean_rel, final_path)
        write_json(summary_path, summary)
    thin_path = out / f"{stem}.thinned.json"
    if not thin_path.exists():
        thin = _shipped_stride(name)
        if thin is None:
            ap.error(f"build_tables.json records no solve of the shipped {name} table")
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            r = solve(
                name, "paper", "mean", domain=domain, stride=thin, quantized=True,
                precision=precision,
            )  # fmt: skip
        except ValueError as e:  # no feasible cutpoints on the thinned candidates
            ap.error(str(e))
        summary["thinned_solve"] = {
            "stride": thin,
            "wall_seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0,
            "cost": r.objective_value,
        }
        prov = {
            "method": f"nli DP solver (stride-{thin} thinning)",
            "script": prov["script"],
            **({"min_widths": prov["min_widths"]} if args.fp16_widths else {}),
        }
        save_table(as_table(r, prov), thin_path)
        write_json(summary_path, summary)
    shipped, final = default_table(name), load_table(final_path)
    shipped_fp, final_fp = table_fingerprint(shipped), table_fingerprint(final)
    summary["installed"] = shipped_fp == final_fp
    if not summary["installed"]:  # once shipped, the comparison that decided it stays
        x, _ = fp16_grid(*domain)
        G = grid_arrays(fn, x)
        idx = [int(i) for i in np.searchsorted(x, shipped.cutpoint_values())]
        summary["shipped_objective"] = cost_of_cutpoints(G, idx, shipped.bins, "mean", True)
        summary["report"] = {
            "thinned_raw": _report(load_table(thin_path), domain),
            "exact_raw": _report(raw, domain),
            "exact_refined": _report(final, domain),
            "shipped": _report(shipped, domain),
        }
        ref, sh = summary["report"]["exact_refined"], summary["report"]["shipped"]
        cr = "pct_correctly_rounded"
        summary["fp16_variant_valid"] = {
            "exact_refined": _fp16_ok(final),
            "shipped": _fp16_ok(shipped),
        }
        v16 = summary["fp16_variant_valid"]
        keeps_fp16 = v16["exact_refined"] or not v16["shipped"]
        summary["ships"] = bool(ref[cr] > sh[cr] and ref["max_ulp"] <= sh["max_ulp"] and keeps_fp16)
        summary = stamp_tables(summary)
        if args.ship and summary["ships"]:
            _ship(name, final, shipped, shipped_fp, summary)
            # the summary now goes with the table it shipped; "shipped" names the one replaced
            summary["installed"], summary["replaced_fingerprint"] = True, shipped_fp
            summary[SHIPPED_TABLES] = {**summary[SHIPPED_TABLES], name: final_fp}
    write_json(summary_path, summary)
    for k, v in summary.get("report", {}).items():  # none: installed before reports were kept
        print(
            f"{name} {k:14s} CR {v['pct_correctly_rounded']:.3f}%  max ulp {v['max_ulp']}  "
            f"mean rel {v['mean_rel_error']:.5g}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
