"""The results' error table (docs/results.md): bit-accurate error of every table, measured by
the simulator.

For each default table (nli/tables/), and beside it the uniform / curvature /
NN-LUT-style baselines (nli.baselines) and the tables made from NLI's
published cutpoints (nli.published) where those modules exist: max ulp, mean
ulp, % correctly rounded and mean relative error over every finite FP16 input
of the table's domain, in fp32 and fp16 unit precision. Then the composite
reciprocal / rsqrt of FP32 inputs (as softmax and RMSNorm use them) in direct
and reduced modes, with the verdict "at most 1 ulp everywhere".

Usage: python benchmarks/tables_report.py [--out benchmarks/results/tables.json] [--stride N]
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import time

from hw_sim.report import (
    composite_inverse_report,
    error_arrays,
    report_of_arrays,
    table_domain,
)
from hw_sim.report_checks import by_interval, provenance
import nli
from nli.defaults import default_table_path
from nli.formats import INVERSE_FUNCTIONS, PRECISIONS
from nli.table import Table, TableError

from results_io import results_path, stamp_tables, write_json

STRIDE = 97  # mantissa stride of the all-binade composite sweep

ALL_FP32_EXPONENTS = list(range(0, 255))  # FP32 biased exponents of finite v (0 = subnormal)
FP16_RANGE_EXPONENTS = list(range(127 - 24, 127 + 16))  # v within FP16's range (direct mode's)


def _row(table: Table, domain=None, fp32_arrays: dict | None = None) -> dict:
    """Report rows per precision; ``fp32_arrays``, if given, receives the fp32 unit's
    error_arrays (the datapath is run once per precision)."""
    out = {}
    for prec in PRECISIONS:
        try:
            t = table.with_precision(prec)
        except TableError as e:
            out[prec] = {"invalid": str(e)}
            continue
        dom = domain if domain is not None else table_domain(t)
        arrays = error_arrays(t, dom)
        if prec == "fp32" and fp32_arrays is not None:
            fp32_arrays.update(arrays)
        r = report_of_arrays(t, arrays, dom)
        out[prec] = {
            k: r[k]
            for k in (
                "inputs",
                "max_ulp",
                "mean_ulp",
                "pct_correctly_rounded",
                "mean_rel_error",
                "max_rel_error",
                "nan_mismatch",
            )
        }
        out["domain"] = r["domain"]
    out["layout"] = {"comparators": table.K, "lut_entries": table.entries}
    return out


def _optional_tables(module: str) -> tuple[dict, str]:
    """{label: Table} from an optional nli module: any public zero-argument-after-function
    callable returning Tables (called per function name), or a dict of Tables."""
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        return {}, f"{module} not present ({e})"
    found = {}
    if hasattr(mod, "published_table") and hasattr(mod, "PUBLISHED_CUTPOINTS"):  # nli.published
        for f in mod.PUBLISHED_CUTPOINTS:
            found[f"{f}:published"] = mod.published_table(f)
    for name, obj in vars(mod).items():
        if name.startswith("_"):
            continue
        if isinstance(obj, Table):
            found[name] = obj
        elif isinstance(obj, dict) and obj and all(isinstance(v, Table) for v in obj.values()):
            found.update({f"{name}:{k}": v for k, v in obj.items()})
    builder = getattr(mod, "all_tables", None) or getattr(mod, "tables", None)
    if callable(builder) and not inspect.isclass(builder):
        try:
            got = builder()
            if isinstance(got, dict):
                found.update(
                    {
                        str(k) if not isinstance(k, tuple) else ":".join(map(str, k)): v
                        for k, v in got.items()
                        if isinstance(v, Table)
                    }
                )
        except Exception as e:  # report, don't hide: the README needs to say what failed
            return found, f"{module}.{builder.__name__}() failed: {e!r}"
    note = (
        f"{module}: {len(found)} tables"
        if found
        else f"{module} present but exposes no tables this script understands"
    )
    return found, note


def run(stride: int) -> dict:
    t0 = time.time()
    report = {"defaults": {}, "baselines": {}, "published": {}, "composite": {}, "notes": []}
    for name, mode in nli.default_table_names():
        if not default_table_path(name, mode).exists():
            report["notes"].append(f"no shipped default table for {name}:{mode}")
            continue
        t = nli.default_table(name, mode)
        fp32 = {}
        row = _row(t, fp32_arrays=fp32)
        report["defaults"][f"{name}:{mode}"] = {
            **row,
            "solve": provenance(t)["solve"],
            "by_interval": by_interval(t.with_precision("fp32"), fp32),  # fp32 unit
        }
        if name in INVERSE_FUNCTIONS:
            comp = {}
            comp["table_domain_binades"] = composite_inverse_report(t, name, mode)
            exps = ALL_FP32_EXPONENTS if mode == "reduced" else FP16_RANGE_EXPONENTS
            comp["all_binades"] = composite_inverse_report(
                t, name, mode, exponents=exps, stride=stride
            )
            report["composite"][f"{name}:{mode}"] = comp
        print(f"default {name}:{mode} done ({time.time() - t0:.0f} s)", flush=True)
    try:
        from nli import baselines
    except ImportError as e:
        report["notes"].append(f"nli.baselines not present ({e})")
    else:
        for name, mode in nli.default_table_names():
            domain = nli.get_function(name).domains[mode]
            for kind in baselines.BASELINES:
                try:
                    t = baselines.baseline_table(kind, name, domain)
                except ValueError as e:  # e.g. a calibration range outside the domain
                    report["baselines"][f"{name}:{mode}:{kind}"] = {"error": str(e)}
                    continue
                row = {"function": name, **_row(t, domain)}
                if name in INVERSE_FUNCTIONS:
                    row["composite_table_binades"] = composite_inverse_report(t, name, mode)
                report["baselines"][f"{name}:{mode}:{kind}"] = row
        print(f"baselines done ({time.time() - t0:.0f} s)", flush=True)
    tables, note = _optional_tables("nli.published")
    report["notes"].append(note)
    for label, t in tables.items():
        report["published"][label] = {"function": t.function, **_row(t)}
    report["verdict"] = {
        k: {
            "at_most_1_ulp_on_table": report["defaults"][k]["fp32"].get("max_ulp", 99) <= 1,
            "at_most_1_ulp_composite_table_binades": v["table_domain_binades"]["at_most_1_ulp"],
            "at_most_1_ulp_composite_all_binades": v["all_binades"]["at_most_1_ulp"],
            "composite_max_ulp": max(
                v["table_domain_binades"]["max_ulp"], v["all_binades"]["max_ulp"]
            ),
        }
        for k, v in report["composite"].items()
    }
    report["seconds"] = time.time() - t0
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(results_path("tables.json")))
    ap.add_argument(
        "--stride", type=int, default=STRIDE, help="mantissa stride of the all-binade sweep"
    )
    args = ap.parse_args(argv)
    rep = run(args.stride)
    rep["command"] = "python benchmarks/tables_report.py" + (
        f" --stride {args.stride}" if args.stride != STRIDE else ""
    )
    write_json(args.out, stamp_tables(rep))

    def cell(r):
        if "invalid" in r:
            return "not a valid fp16 table (RNE16(mul) overflows)"
        return (
            f"max ulp {r['max_ulp']}, {r['pct_correctly_rounded']:.2f}% CR, "
            f"mean rel {r['mean_rel_error']:.3g}"
        )

    for label, row in rep["defaults"].items():
        print(f"{label:20s} fp32: {cell(row['fp32'])} | fp16: {cell(row['fp16'])}")
    for k, v in rep["verdict"].items():
        print(f"{k}: {v}")
    for n in rep["notes"]:
        print("note:", n)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
