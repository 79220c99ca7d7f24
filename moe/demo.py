"""`nli demo` section of the MoE package: an upcycled SmolLM2 (SPRI) on ref and on the NLI unit.

Upcycles the dense SmolLM2 with ``spri`` (8 experts, top-2, last 8 layers,
the defaults of :mod:`moe.spri`, fixed by the fine-tuning sweep), then reports perplexity on the
shipped held-out text with every op on ``ref`` and on ``nli`` (router softmax
included), the routing agreement between the two, and a plot of the expert
load per MoE layer. Writes ``moe_spri.json`` and ``moe_spri_expert_load.png``.
"""

from __future__ import annotations

import json
import time

FULL_TOKENS = 1024
# forward passes per window: MoE ref + nli, dense ref + nli (perplexities), MoE ref + nli (routing)
PASSES = 6


def demo_moe(model=None, tokenizer=None, max_tokens: int = FULL_TOKENS, window: int = 512) -> dict:
    """Pure part: upcycle (spri) and evaluate ref vs nli; returns a JSON-able dict."""
    from engine.demo import demo_model
    from engine.experiments import compare_variants, heldout_text, json_safe, token_ids

    from .eval_report import moe_eval_report
    from .upcycling import upcycle

    if model is None:
        model, tokenizer = demo_model("smollm2")
    t0 = time.perf_counter()
    moe_model = upcycle(model, "spri", num_experts=8, top_k=2, seed=0)
    up_s = time.perf_counter() - t0
    ids = token_ids(tokenizer, heldout_text(), max_tokens)
    ppl = compare_variants(
        moe_model, ids, (("nli", "nli", "reduced"),), window=window, record=False
    )
    dense = compare_variants(model, ids, (("nli", "nli", "reduced"),), window=window, record=False)
    routing = moe_eval_report(moe_model, ids, window=window)
    cfg = moe_model.moe_config
    return json_safe(
        {
            "method": "spri",
            "experts": cfg.num_experts,
            "top_k": cfg.top_k,
            "layers": list(cfg.layers),
            "upcycle_seconds": up_s,
            "tokens": ppl["tokens"],
            "window": window,
            "dense_ppl_ref": dense["ppl_ref"],
            "dense_ppl_nli": dense["modes"]["nli"]["ppl"],
            "moe_ppl_ref": ppl["ppl_ref"],
            "moe_ppl_nli": ppl["modes"]["nli"]["ppl"],
            "moe_top1_agreement": ppl["modes"]["nli"]["top1_agreement"],
            **routing,
        }
    )


def section(ctx) -> None:
    """Print the MoE report and write its JSON and expert-load plot under ``ctx.out``."""
    from engine.demo import demo_tokens
    from nli.table import atomic_write_text

    from .plots import plot_expert_load

    full = getattr(ctx, "full", False)
    res = demo_moe(max_tokens=FULL_TOKENS if full else demo_tokens("smollm2", PASSES, ctx.quick))
    print(
        f"SmolLM2 upcycled with spri: {res['experts']} experts, top-{res['top_k']}, "
        f"layers {res['layers'][0]}-{res['layers'][-1]} ({res['upcycle_seconds']:.0f} s to build)"
    )
    print(
        f"{'model':<12} {'ppl ref':>10} {'ppl nli':>10}   "
        f"({res['tokens']} tokens, windows of {res['window']})"
    )
    print(f"{'dense':<12} {res['dense_ppl_ref']:>10.3f} {res['dense_ppl_nli']:>10.3f}")
    print(f"{'spri MoE':<12} {res['moe_ppl_ref']:>10.3f} {res['moe_ppl_nli']:>10.3f}")
    print(
        "routing agreement ref vs nli (top-k set unchanged): "
        f"{100 * res['routing_agreement']:.2f}% of tokens ({res['routing_rule']})"
    )
    atomic_write_text(ctx.out / "moe_spri.json", json.dumps(res, indent=1) + "\n")
    png = plot_expert_load(
        res["expert_load"],
        ctx.out / "moe_spri_expert_load.png",
        title="SPRI-upcycled SmolLM2 at init: expert load per MoE layer, ref vs nli",
    )
    print(f"wrote {ctx.out / 'moe_spri.json'} and {png}")
