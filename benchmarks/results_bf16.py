"""docs/results.md's section on bf16 tables (numerics §13), from build_tables_bf16.json and
bf16_vs_fp16.json (nothing if neither exists)."""

from __future__ import annotations

from results_io import read_json


def _fmt(v, spec):
    return "—" if v is None else format(v, spec)


def _row(label: str, r: dict) -> str:
    return (
        f"| {label} | {r['dtype']} | {r['comparators']} | {r['lut_entries']} | {r['max_ulp']} | "
        f"{r['pct_correctly_rounded']:.2f} | {_fmt(r['mean_rel_error'], '.3g')} | "
        f"{_fmt(r['max_abs_error'], '.3g')} |"
    )


def side_by_side_md(d: dict) -> str:
    head = (
        "| function | table | dtype | K | entries | max ulp | % CR | mean rel | max abs |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for key, rows in d["functions"].items():
        for label, r in rows.items():
            lines.append(f"| {key} " + _row(label, r))
    return "\n".join(lines)


def shipped_md(d: dict) -> str:
    lines = [
        "| table | domain | K | entries | max ulp | % CR | mean rel | exact construction: "
        "entries |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, r in d["tables"].items():
        lo, hi = r["domain"]
        lines.append(
            f"| {key} | [{lo:g}, {hi:.3g}] | {r['comparators']} | {r['lut_entries']} | "
            f"{r['max_ulp']} | {r['pct_correctly_rounded']:.2f} | {r['mean_rel_error']:.3g} | "
            f"{r['exact_construction']['lut_entries']} |"
        )
    return "\n".join(lines)


def section_bf16() -> list[str]:
    built, vs = read_json("build_tables_bf16.json"), read_json("bf16_vs_fp16.json")
    if not built and not vs:
        return []
    out = ["## BF16 tables (numerics §13)"]
    if built:
        out += [
            f"`{built['command']}` -> `benchmarks/results/build_tables_bf16.json`: the shipped "
            "bf16 tables (`nli/tables/*_bf16.json`), binade layouts (`nli.binade`), measured over "
            "every finite BF16 input of the default BF16 domain against RNE_bf16(f(x)). The last "
            "column is the size of the exact construction (128 bins per binade).",
            shipped_md(built),
        ]
    if vs:
        out += [
            f"`{vs['command']}` -> `benchmarks/results/bf16_vs_fp16.json`: the same paper "
            "layout (10 macro intervals, 259 entries) in FP16 (the shipped table) and BF16 "
            f"(solved on the BF16 grid, objective `{vs['bf16_paper_solver']['objective']}`, "
            "no refinement), and the shipped bf16 table. Each row is measured in its own "
            "format: ulps are FP16 or BF16 ulps (a BF16 ulp is 8 FP16 ulps at the same "
            "magnitude); mean relative error (floor 2^-14 for FP16, 2^-126 for BF16) and max "
            "absolute error compare directly. The paper layout's BF16 rows are poor where the "
            "domain holds tiny inputs far from a cutpoint (numerics §13, step 4).",
            side_by_side_md(vs),
        ]
    return out
