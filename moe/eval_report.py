"""What `nli eval ppl` adds for an MoE model: routing agreement and expert load.

``import moe`` registers :func:`moe_eval_report` for :class:`moe.model.MoELlama`
with :func:`engine.register_eval_report`; engine's ``nli eval ppl`` finds it
with :func:`engine.eval_report_for` (so engine never imports moe). It runs
the model on ref and on the substituted ops over the same windows (engine's
window convention) and compares the experts each picks.
"""

from __future__ import annotations

import torch

from nli.formats import OPS

from .diagnostics import chosen_experts, expert_load, routing_agreement
from .layer import moe_layers


@torch.no_grad()
def moe_eval_report(
    model,
    ids,
    ops=OPS,
    variant="nli",
    reciprocal_mode="reduced",
    window=1024,
    tables=None,
    rmsnorm_input="scaled",
    dtype=None,
) -> dict:
    """``(model, ids int64[N], ops, variant, reciprocal_mode, window, tables, rmsnorm_input,
    dtype) -> dict`` (dtype: the unit format, numerics §13; None: the variant's own)."""
    from engine.evaluate import windows
    from engine.substitution import substitute

    sub = substitute(
        model,
        ops=ops,
        variant=variant,
        tables=tables,
        reciprocal_mode=reciprocal_mode,
        rmsnorm_input=rmsnorm_input,
        dtype=dtype,
    )
    layers_ref, layers_sub = moe_layers(model), moe_layers(sub)
    got = {"ref": {i: [] for i, _ in layers_ref}, "sub": {i: [] for i, _ in layers_ref}}
    for w in windows(ids, window):
        for key, m, layers in (("ref", model, layers_ref), ("sub", sub, layers_sub)):
            _, rl = m(w[None], return_router_logits=True)
            for (i, layer), r in zip(layers, rl):
                got[key][i].append(chosen_experts(layer, r))
    agree, load_ref, load_sub, n_tok = {}, {}, {}, {}
    for i, layer in layers_ref:
        a, b = torch.cat(got["ref"][i]), torch.cat(got["sub"][i])
        agree[str(i)] = routing_agreement(a, b)
        n_tok[i] = a.shape[0]
        load_ref[str(i)] = expert_load(a, layer.num_experts).tolist()
        load_sub[str(i)] = expert_load(b, layer.num_experts).tolist()
    total = sum(n_tok.values())
    return {
        "routing_agreement": sum(agree[str(i)] * n for i, n in n_tok.items()) / max(1, total),
        "routing_agreement_per_layer": agree,
        "expert_load": {"ref": load_ref, variant: load_sub},
        "routing_rule": "top-k set equality; experts ranked by a stable descending sort of each "
        "layer's router logits (select_on='logits') or of its own softmax output "
        f"(select_on='probs'; here: {sorted({layer.select_on for _, layer in layers_ref})}), "
        "lower expert index wins exact ties",
    }
