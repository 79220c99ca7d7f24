"""Pareto refinement of the shipped default tables (nli/tables/*.json), written back
only where it is strictly better on mean relative error AND % correctly rounded and
not worse in max ulp (hw_sim.refine, objective 'pareto', over each table's domain).

The table's meta gets ``refined`` (with the earlier record under ``previous``); if
it has the solver's ``comparison.ours`` summary, that is updated to the new numbers
and the old one kept as ``comparison.ours_before_pareto``.
Summary: benchmarks/results/refine_shipped.json.

Usage: python benchmarks/refine_shipped.py [--dry-run] [--sweeps 8] [--radius 2]
[--only NAME:MODE ...] (only those tables; the summary's other entries are kept)
"""

from __future__ import annotations

import argparse
import sys

from hw_sim.refine import RefineConfig, refine_table
import nli
from nli.defaults import default_table_path
from nli.table import save_table

from results_io import read_json, results_path, write_json

KEYS = ("mean_rel_error", "max_rel_error", "mean_ulp", "max_ulp", "pct_correctly_rounded")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="report only, write no table")
    ap.add_argument("--sweeps", type=int, default=8)
    ap.add_argument("--radius", type=int, default=2)
    ap.add_argument("--out", default=str(results_path("refine_shipped.json")))
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME:MODE",
        help="refine only this shipped table (repeatable); the summary keeps the other entries",
    )
    args = ap.parse_args(argv)
    names = nli.default_table_names()
    unknown = [o for o in args.only if tuple(o.split(":", 1)) not in names]
    if unknown:
        ap.error(f"--only: not a shipped table: {', '.join(unknown)}")
    summary = {}
    if args.only:
        names = [n for n in names if f"{n[0]}:{n[1]}" in args.only]
        summary = dict(read_json(args.out) or {})
    for name, mode in names:
        path = default_table_path(name, mode)
        if not path.exists():
            summary[f"{name}:{mode}"] = {"skipped": "no shipped table"}
            continue
        table = nli.load_table(path)
        new, s = refine_table(table, RefineConfig("pareto", args.radius, args.sweeps))
        b, a = ({k: s[x][k] for k in KEYS} for x in ("before", "after"))
        better = (
            a["mean_rel_error"] < b["mean_rel_error"]
            and a["pct_correctly_rounded"] > b["pct_correctly_rounded"]
            and a["max_ulp"] <= b["max_ulp"]
        )
        written = better and not args.dry_run
        if written:
            meta = dict(new.meta)
            meta["refined"] = {**meta["refined"], "before": b, "after": a}
            comp = meta.get("comparison")
            if isinstance(comp, dict) and "ours" in comp:
                meta["comparison"] = {**comp, "ours_before_pareto": comp["ours"], "ours": a}
            save_table(new.with_lut(new.lut, **meta), path)
        summary[f"{name}:{mode}"] = {
            "before": b,
            "after": a,
            "changed_entries": s["refined"]["changed_entries"],
            "strictly_better": better,
            "written": written,
            "file": str(path),
        }
        print(
            f"{name}:{mode:8s} mean rel {b['mean_rel_error']:.5g} -> {a['mean_rel_error']:.5g}, "
            f"CR {b['pct_correctly_rounded']:.3f}% -> {a['pct_correctly_rounded']:.3f}%, "
            f"max ulp {b['max_ulp']} -> {a['max_ulp']}: {'WRITTEN' if written else 'kept'}"
        )
    write_json(args.out, summary)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
