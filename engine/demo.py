"""`nli demo` section of the engine: SmolLM2 perplexity for ref, fp16, nli and the baselines.

:func:`demo_perplexities` is the pure part (also callable from elsewhere);
:func:`section` prints the table and writes ``engine_ppl.json`` and
``engine_ppl.png`` under the demo's output folder.
"""
from __future__ import annotations

import json
import math

from .experiments import STANDARD_VARIANTS, compare_variants, heldout_text, json_safe, token_ids
from .substitution import OPS, make_ops

DEMO_TOKENS = 2048
QUICK_TOKENS = 1024


def available_variants(variants=STANDARD_VARIANTS, ops=OPS) -> tuple[list, dict]:
    """Split ``variants`` into those whose tables can be had now and {label: reason} for the rest."""
    ok, missing = [], {}
    for label, variant, rm in variants:
        try:
            make_ops(ops, variant, None, rm)
            ok.append((label, variant, rm))
        except (ImportError, ValueError, OSError) as e:  # a table not shipped / a baseline module missing
            missing[label] = f"{type(e).__name__}: {e}"
    return ok, missing


def demo_perplexities(model=None, tokenizer=None, max_tokens: int = DEMO_TOKENS, variants=STANDARD_VARIANTS,
                      ops=OPS, window: int = 1024, progress: bool = True) -> dict:
    """SmolLM2 (or the given model) perplexity on the shipped held-out text for every available
    variant, against ref: the dict of :func:`engine.experiments.compare_variants` plus ``unavailable``."""
    if model is None:
        from . import load_model

        model, tokenizer = load_model("smollm2")
    ids = token_ids(tokenizer, heldout_text(), max_tokens)
    ok, missing = available_variants(variants, ops)
    res = compare_variants(model, ids, ok, ops, window, progress=progress) if ok else {"modes": {}}
    res["unavailable"] = missing
    res["text"] = "engine/data/heldout_en.txt"
    return res


def plot_perplexities(res: dict, path) -> None:
    """Bar chart of the relative perplexity change vs ref per variant (NaN/inf marked), PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(res["modes"])
    rel = [res["modes"][k]["ppl_rel_change"] * 100 for k in labels]
    finite = [v for v in rel if math.isfinite(v)]
    span = max([abs(v) for v in finite] + [1e-4])
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(labels)), 3.8))
    ticks = []
    for i, (label, v) in enumerate(zip(labels, rel)):
        if math.isfinite(v):
            ax.bar(i, v, color="tab:blue" if abs(v) < 0.1 else "tab:red")
            ticks.append(f"{label}\n{v:+.3g}%")
        else:  # NaN perplexity: a hatched full-height bar
            ax.bar(i, span, color="lightgray", hatch="//")
            ticks.append(f"{label}\nNaN ppl")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(labels)), ticks, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("perplexity change vs ref (%)")
    ax.set_yscale("symlog", linthresh=0.01)
    neg = [v for v in finite if v < 0]
    ax.set_ylim(-2 * max([abs(v) for v in neg] + [0.01]), 2 * span)
    ax.set_title(f"SmolLM2-135M, {res['tokens']} tokens, ref ppl {res['ppl_ref']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def section(ctx) -> None:
    """Print the perplexity table; write engine_ppl.json and engine_ppl.png under ctx.out."""
    from nli.table import atomic_write_text

    res = demo_perplexities(max_tokens=QUICK_TOKENS if ctx.quick else DEMO_TOKENS)
    print(f"SmolLM2-135M-Instruct on {res.get('tokens', 0)} tokens of {res['text']}, "
          f"ops {','.join(OPS)}; ref ppl {res.get('ppl_ref', float('nan')):.4f}")
    print(f"{'variant':<22} {'ppl':>10} {'change':>10} {'top-1':>8} {'KL':>10}")
    for label, r in res["modes"].items():
        print(f"{label:<22} {r['ppl']:>10.4f} {r['ppl_rel_change'] * 100:>+9.4f}% "
              f"{r['top1_agreement'] * 100:>7.2f}% {r['mean_kl']:>10.3g}")
    for label, why in res["unavailable"].items():
        print(f"{label:<22} unavailable ({why})")
    atomic_write_text(ctx.out / "engine_ppl.json", json.dumps(json_safe(res), indent=1) + "\n")
    if res["modes"]:
        plot_perplexities(res, ctx.out / "engine_ppl.png")
        print(f"wrote {ctx.out / 'engine_ppl.json'} and {ctx.out / 'engine_ppl.png'}")
