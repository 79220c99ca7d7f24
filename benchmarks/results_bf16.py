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
    llm = section_bf16_llm()
    if not built and not vs and not llm:
        return []
    out = ["## BF16 (numerics §13)"]
    if built or vs:
        out.append("### BF16 tables")
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
    return out + llm


_LLM_COLUMNS = (
    ("fp16", "`fp16`"),
    ("bf16", "`bf16`"),
    ("nli", "`nli` (FP16 unit)"),
    ("nli_bf16", "`nli-bf16`"),
)


def _ppl_cell(m: dict | None) -> str:
    if m is None:
        return "—"
    if m.get("nonfinite_logits"):
        return f"collapses ({m['nonfinite_logits']:,} non-finite logits)"
    if m["ppl_rel_change"] > 1:
        return f"{m['ppl']:.4g} ({1 + m['ppl_rel_change']:.3g}x ref)"
    return f"{m['ppl']:.3f} ({100 * m['ppl_rel_change']:+.3f}%)"


def llm_bf16_runs() -> list[tuple[str, dict]]:
    """Every ``llm_bf16*.json`` result, SmolLM2 first, then by model and token count."""
    from results_io import RESULTS

    runs = [(p.name, read_json(p)) for p in sorted(RESULTS.glob("llm_bf16*.json"))]
    return sorted(
        runs, key=lambda r: (r[1].get("model_name", "smollm2") != "smollm2", r[1]["tokens"])
    )


def llm_bf16_md(runs: list[tuple[str, dict]]) -> str:
    """Perplexity per model, token count and mode (one row per result file)."""
    head = "| model | scored tokens | `ref` (FP32) | " + " | ".join(c for _, c in _LLM_COLUMNS)
    lines = [head + " | file |", "|---|---:|---:|" + "---:|" * len(_LLM_COLUMNS) + "---|"]
    for name, d in runs:
        cells = [_ppl_cell(d["modes"].get(k)) for k, _ in _LLM_COLUMNS]
        if all(c == "—" for c in cells):
            continue  # a file of single-op runs only (see ops_split_md)
        lines.append(
            f"| {d['model'].split(' (')[0]} | {d['tokens']:,} | {d['ppl_ref']:.3f} | "
            + " | ".join(cells)
            + f" | `{name}` |"
        )
    return "\n".join(lines)


def direct_md(runs: list[tuple[str, dict]]) -> str:
    """Direct-mode (no range reduction) RMSNorm/Softmax in FP16 and BF16, where measured."""
    rows = [
        (name, d)
        for name, d in runs
        if d["modes"].get("nli_direct") or d["modes"].get("nli_bf16_direct")
    ]
    if not rows:
        return ""
    lines = [
        "| model | scored tokens | `ref` | `nli`, direct (FP16) | `nli-bf16`, direct | file |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, d in rows:
        m = d["modes"]
        lines.append(
            f"| {d['model'].split(' (')[0]} | {d['tokens']:,} | {d['ppl_ref']:.3f} | "
            f"{_ppl_cell(m.get('nli_direct'))} | {_ppl_cell(m.get('nli_bf16_direct'))} | "
            f"`{name}` |"
        )
    return "\n".join(lines)


def ops_split_md(runs: list[tuple[str, dict]]) -> str:
    """One row per single-op label (``LABEL:OP``) of each file: the change that op alone makes."""
    lines = [
        "| model | scored tokens | `ref` | substituted | perplexity (change) | top-1 agreement | "
        "file |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    for name, d in runs:
        for label, m in d["modes"].items():
            if ":" in label:
                base, op = label.split(":", 1)
                lines.append(
                    f"| {d['model'].split(' (')[0]} | {d['tokens']:,} | {d['ppl_ref']:.3f} | "
                    f"`{base}`, {op} only | {_ppl_cell(m)} | {100 * m['top1_agreement']:.2f}% | "
                    f"`{name}` |"
                )
    return "\n".join(lines) if len(lines) > 2 else ""


def speed_md(s: dict) -> str:
    lines = [
        "| op | FP16 unit (CPU s) | BF16 unit (CPU s) | BF16 / FP16 | within 20% |",
        "|---|---:|---:|---:|---|",
    ]
    for op, c in s["cases"].items():
        lines.append(
            f"| {op} | {c['fp16_cpu_s']:.4f} | {c['bf16_cpu_s']:.4f} | {c['ratio']:.2f} | "
            f"{'yes' if c['meets_target'] else 'no'} |"
        )
    return "\n".join(lines)


def section_bf16_llm() -> list[str]:
    runs, speed = llm_bf16_runs(), read_json("unit_bf16_speed.json")
    out = []
    if runs:
        out += [
            "### BF16 in the LLM",
            "`python benchmarks/llm_bf16.py [--model NAME] --tokens N --variants ...` -> "
            "`benchmarks/results/llm_bf16*.json` (each file's command is in it). The ops take "
            "and return BF16 (the model's activations rounded to BF16 at each op's input): "
            "`bf16` is the exact ops with BF16 in and out (the format alone), `nli-bf16` the "
            "BF16 unit with the shipped bf16 tables, reduced reciprocal/rsqrt and plain "
            "RMSNorm input (numerics §13); `fp16` and `nli` are the FP16 counterparts. The "
            "change is against `ref` of the same file (same text, same tokens); a dash is a mode "
            "that file did not run (SmolLM2's `fp16` and `nli` over the same 20,460 tokens are "
            "in the SmolLM2 section's table, `llm.json`).",
            llm_bf16_md(runs),
        ]
        direct = direct_md(runs)
        if direct:
            out += [
                "Direct reciprocal/rsqrt (no range reduction) with the tables named in each "
                "file's `bf16_tables`. In FP16, RMSNorm's mean square exceeds the direct rsqrt "
                "table's range and perplexity collapses; BF16 has FP32's range, so the same mode "
                "stays usable.",
                direct,
            ]
    split = ops_split_md(runs) if runs else ""
    if split:
        out += [
            "Which op makes the change: the same runs with one op substituted at a time "
            "(`--variants nli_bf16:act,nli_bf16:rmsnorm,nli_bf16:softmax`), the others exact "
            "in FP32.",
            split,
        ]
    if speed:
        out += [
            f"Unit throughput, BF16 against FP16 on the same inputs in the same run "
            f"(`{speed['command']}` -> `benchmarks/results/unit_bf16_speed.json`, best of "
            f"{speed['repeats']}, {speed['reciprocal_mode']} reciprocal/rsqrt; a ratio below 1 "
            "means BF16 is faster):",
            speed_md(speed),
        ]
    return out


def readme_side_by_side_md(d: dict) -> str:
    """The README's compact fp16/bf16 comparison: one row per function, same report per cell."""
    lines = [
        "| function | FP16, paper layout (10 comparators, 259 entries) | BF16, same layout | "
        "BF16, shipped binade table |",
        "|---|---|---|---|",
    ]
    for key, rows in d["functions"].items():
        f16, b16, sh = rows["fp16_paper"], rows["bf16_paper"], rows["bf16_shipped"]
        lines.append(
            f"| {key} | {f16['max_ulp']} ulp, {f16['pct_correctly_rounded']:.1f}% CR | "
            f"{b16['max_ulp']} ulp, {b16['pct_correctly_rounded']:.1f}% CR | "
            f"{sh['max_ulp']} ulp, {sh['pct_correctly_rounded']:.1f}% CR "
            f"({sh['comparators']} comparator{'s' * (sh['comparators'] != 1)}, "
            f"{sh['lut_entries']} entries) |"
        )
    return "\n".join(lines)
