"""Per-model results: the README's models table and docs/results.md's sections on Gemma 3, the
torch backend and the Hugging Face adapter.

Inputs (benchmarks/results/): llm.json / llm_speed.json (SmolLM2), llm_gemma3.json (Gemma 3,
``benchmarks/llm.py --model gemma3``), gemma3.json (Gemma 3's activation ranges,
``benchmarks/gemma3.py``), torch_backend.json and hf_adapter.json. A missing file leaves its
column or section out; nothing is invented.
"""

from __future__ import annotations

from results_io import read_json

# (model name, full results JSON, speed-only JSON or None, column title)
MODELS = (
    ("smollm2", "llm.json", "llm_speed.json", "SmolLM2-135M (SiLU)"),
    ("gemma3", "llm_gemma3.json", None, "Gemma 3 270M (GELU-tanh)"),
)
# (mode label in the JSON, row title)
ROWS = (
    ("fp16", "`fp16`: the ops correctly rounded to FP16"),
    ("nli", "`nli`: the unit, shipped tables, reduced reciprocal/rsqrt"),
    ("nli_direct", "`nli`, direct reciprocal/rsqrt"),
    ("nli_plain_rmsnorm_input", "`nli` with plain FP16 RMSNorm input (no §4.1 prescale)"),
    ("published", "NLI's published cutpoints on the same unit"),
    ("baseline:nnlut", "NN-LUT-style tables, same size"),
    ("baseline:curvature", "curvature-placed tables, same size"),
    ("baseline:uniform", "uniform cutpoints, same size"),
)


def _cell(mode: dict | None) -> str:
    if mode is None:
        return "—"
    ppl, rel = mode.get("ppl"), mode.get("ppl_rel_change")
    if ppl is None or rel is None:
        n = mode.get("nonfinite_logits")
        return "collapses (NaN" + (f", {n:,} non-finite logits)" if n else ")")
    if abs(rel) >= 1:  # destroyed: a ratio reads better than a percentage
        return f"{ppl:.4g} ({1 + rel:,.3g}x ref)"
    return f"{ppl:.3f} ({100 * rel:+.4f}%)"


def _loaded():
    """[(name, results, speed-only results or None, title)] of the models whose JSON exists."""
    out = []
    for name, full, sp, title in MODELS:
        d = read_json(full)
        if d:
            out.append((name, d, read_json(sp) if sp else None, title))
    return out


def models_md() -> str:
    """The README's table: perplexity per model and mode, and the forward-time ratio."""
    cols = _loaded()
    if not cols:
        return ""
    head = "| perplexity on held-out English | " + " | ".join(t for *_, t in cols) + " |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    lines.append(
        "| `ref` (FP32 torch) | "
        + " | ".join(f"{d['ppl_ref']:.3f} ({d['tokens']:,} tokens)" for _, d, _, _ in cols)
        + " |"
    )
    for label, title in ROWS:
        if not any(label in d["modes"] for _, d, _, _ in cols):
            continue
        lines.append(
            f"| {title} | " + " | ".join(_cell(d["modes"].get(label)) for _, d, _, _ in cols) + " |"
        )
    speeds = []
    for _, d, sp, _ in cols:
        s = (sp or d).get("speed")
        speeds.append("—" if not s else f"{s['ratio']:.2f}x ({s['tokens']:,} tokens)")
    lines.append("| forward time, all ops on `nli` / `ref` | " + " | ".join(speeds) + " |")
    return "\n".join(lines)


def _gemma_ranges(g: dict) -> str:
    rows = g["per_layer"]
    above = sum(
        v["inputs_above_fp16_max"]
        for r in rows
        for k, v in r.items()
        if isinstance(v, dict) and "inputs_above_fp16_max" in v
    )
    ms = max(
        v["mean_square_max"]
        for r in rows
        for v in r.values()
        if isinstance(v, dict) and "mean_square_max" in v
    )
    peak = max(g["residual_absmax"])
    act = g["activation"]["act"]
    return (
        f"Gemma 3's ranges over {g['tokens']:,} tokens of `{g['text']}` (`{g['command']}` -> "
        f"`benchmarks/results/gemma3.json`): the residual stream's largest |x| after each block "
        f"grows to **{peak:,.0f}** ({', '.join(f'{v:,.0f}' for v in g['residual_absmax'])}); "
        f"**{above}** RMSNorm inputs exceed FP16's 65,504 and RMSNorm's mean square reaches "
        f"**{ms:.3g}**; the GELU-tanh inputs stay within [{act['min']:.1f}, {act['max']:.1f}]. "
        "An FP16-input RMSNorm turns those rows into inf; numerics §4.1's row prescale (an "
        "exact power-of-two scaling of the rows whose largest finite |x| reaches 65,520, with "
        "eps scaled by its square) keeps them finite and leaves every other row's bits as they "
        "were."
    )


def section_models() -> list[str]:
    """docs/results.md: the models table, Gemma 3, the torch backend, the HF adapter."""
    out = []
    table = models_md()
    if table:
        g3 = read_json("llm_gemma3.json")
        out += [
            "## The engine on each model",
            "All three ops (the model's own activation, RMSNorm, Softmax) substituted; "
            "reciprocal/rsqrt in `reduced` mode unless marked direct; RMSNorm inputs prescaled "
            "(numerics §4.1) unless marked plain. SmolLM2: `benchmarks/llm.py` (see the SmolLM2 "
            "section below; its RMSNorm inputs stay below 65,520, so the prescale never acts "
            "and plain equals scaled bit for bit)."
            + (
                f" Gemma 3: `{g3['command']}` -> `benchmarks/results/llm_gemma3.json`."
                if g3
                else ""
            ),
            table,
        ]
    long = read_json("gemma3_nli_10k.json")
    if long:
        out.append(
            f"A longer Gemma 3 run, `nli eval ppl --model gemma3 --max-tokens 10240 --window 1024 "
            f"--variant nli --json benchmarks/results/gemma3_nli_10k.json`: {long['tokens']:,} "
            f"scored tokens, ppl {long['ppl_ref']:.4f} -> {long['ppl']:.4f} "
            f"(**{100 * long['ppl_rel_change']:+.4f}%**, target within 0.1%), top-1 agreement "
            f"{100 * long['top1_agreement']:.2f}%, mean KL {long['mean_kl']:.3g} nats "
            f"({long['reciprocal_mode']} mode, {long['rmsnorm_input']} RMSNorm input)."
        )
    g = read_json("gemma3.json")
    if g:
        out.append(_gemma_ranges(g))
    tb = read_json("torch_backend.json")
    if tb:
        lines = [
            "| case | numba (s, CPU) | torch (s, CPU) | torch / numba throughput | bit-identical |",
            "|---|---|---|---|---|",
        ]
        for r in tb["results"]:
            lines.append(
                f"| {r['case']} {r['size']} | {r['numba_cpu_s']:.4g} | {r['torch_cpu_s']:.4g} | "
                f"{r['ratio']:.2f} | {'yes' if r['bit_identical'] else '**no**'} |"
            )
        out += [
            "## The pure-torch datapath (`--backend torch`)",
            f"`{tb['command']}` -> `benchmarks/results/torch_backend.json`: the unit built from "
            "integer and float32 tensor ops (`engine/torch_unit.py`, `engine/torch_ops.py`), so "
            "a model on a GPU keeps its ops there; bit-identical to hw_sim over all 65,536 "
            "inputs of every shipped table and on the composite ops' rows "
            "(`tests/test_torch_unit.py`). Best process CPU time of "
            f"{tb['repeats']} interleaved rounds, {tb['threads']} thread; the issue's target is "
            f"torch >= {tb['target_ratio']}x numba.",
            "\n".join(lines),
        ]
    hf = read_json("hf_adapter.json")
    if hf:
        lines = [
            "| model | path | ppl_ref | ppl (nli) | top-1 |",
            "|---|---|---|---|---|",
        ]
        notes = []
        for name, m in hf["models"].items():
            for path in ("native", "adapter"):
                r = m.get(path)
                if r:
                    lines.append(
                        f"| {name} | {path} | {r['ppl_ref']:.5f} | {r['ppl']:.5f} | "
                        f"{100 * r['top1_agreement']:.2f}% |"
                    )
            rd = m.get("rel_diff")
            if rd:
                notes.append(
                    f"{name}: relative difference ppl_ref {rd['ppl_ref']:.2g}, ppl "
                    f"{rd['ppl']:.2g} (target {m['target_rel']:g})"
                    + (
                        "; with transformers' RoPE tables in the native model: "
                        f"{m['rel_diff_native_with_transformers_rope']['ppl']:.2g}"
                        if m.get("rel_diff_native_with_transformers_rope")
                        else ""
                    )
                )
        out += [
            "## Hugging Face models (`--model hf:PATH`)",
            f"`{hf['command']}` -> `benchmarks/results/hf_adapter.json`: the same GGUF loaded "
            "by transformers and substituted through its own extension points (a registered "
            "attention function, the activation module, each RMSNorm class's formula) against "
            "the native engine model, on the same token ids.",
            "\n".join(lines),
            "; ".join(notes) + ".",
        ]
    return out
