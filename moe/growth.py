"""Expert growth (Expert Upcycling, arXiv 2604.19835): E -> m*E experts by duplication, top-k fixed.

``grow(model, factor=m, select=...)`` returns a NEW model. Per MoE layer:

1. Utility scores per expert (``select``), from a few calibration batches of
   next-token loss gradients where needed:
   ``uniform`` (every expert m copies), ``weight_norm`` ||w||,
   ``saliency`` ||w||*||g||, ``grad`` ||g||^2, ``fisher``
   sum(g^2 / (sqrt(v) + eps)) with g the mean gradient over the batches and v
   the mean squared per-batch gradient (an empirical stand-in for Adam's v:
   a freshly upcycled model has no optimizer state). w and g are the
   expert's own (residual, for SPRI) gate/up/down tensors, concatenated.
2. Copies per expert: uniform = m each; otherwise greedy, one extra copy at a
   time to the highest-scoring expert still under ``cap`` (3) copies, until
   the layer has m*E experts.
3. Experts are duplicated (originals keep indices 0..E-1, duplicates are
   appended in order). Router rows are copied.

Function preservation. Copying router rows as they are (``router_init="copy"``,
the paper's: noise only on the duplicates' bias, std ``noise * std(bias)``)
gives each copy the original's full logit, so under top-k > 1 the tied copies
of the first choice fill the top-k and displace the second choice.
``router_init="split"`` (default) adds ``log(share)`` to the bias of every
copy: each duplicate gets the share ``dup_share`` of the original expert's
softmax mass, the original keeps ``1 - (c - 1) * dup_share``; the shares sum
to 1, so the grown softmax summed over the copies of an expert equals the
original distribution exactly. Top-k then changes only where a duplicate's
share of the first choice beats the runner-up. With the symmetric split
(``dup_share = 1/c``) that still happens for most tokens of a peaked router
(measured on the tiny model: routing agreement ~0-40%, KL about as large as
``copy``); a small share keeps the originals in the top-k far more often
(``dup_share = 0.1``: KL 5-50x lower, agreement 44-100%). The default is
``DUP_SHARE = 0.1``: near function-preserving while the duplicates keep a
non-negligible softmax probability (share -> 0 would be exact but leave them
dormant). On SmolLM2 (drop-upcycled, 8 -> 16, 2,048 held-out tokens,
``benchmarks/moe_init.py``) it was exactly function-preserving at init: KL ~1e-10,
no token routed to a duplicate; the duplicates enter the top-k as training
moves the router (the load-balancing loss sees every expert's probability).
The duplicates' router weights get N(0, noise * std(router weight)) so copies
can diverge in training. Measure the change with
:func:`moe.diagnostics.logit_kl` and
:func:`moe.diagnostics.mapped_routing_agreement`.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from engine.model import Llama

from .layer import MoEFFN, moe_layers
from .model import moe_config_of, moe_model

SELECTORS = ("uniform", "weight_norm", "saliency", "grad", "fisher")
ROUTER_INITS = ("split", "copy")
MAX_COPIES = 3
NOISE = 0.01
FISHER_EPS = 1e-8
DUP_SHARE = 0.1
CALIB_BATCH = 4


def _expert_tensors(layer: MoEFFN, grad: bool = False) -> torch.Tensor:
    """Expert-owned tensors (or their .grad) flattened per expert -> float[E, P]."""
    ts = (layer.w_gate, layer.w_up, layer.w_down)
    if grad:
        ts = tuple(torch.zeros_like(t) if t.grad is None else t.grad for t in ts)
    return torch.cat([t.detach().reshape(layer.num_experts, -1) for t in ts], dim=1)  # [E, P]


def expert_gradients(
    model: Llama, calib_ids: torch.Tensor, batch: int = CALIB_BATCH
) -> dict[int, tuple]:
    """Next-token-loss gradients per MoE layer:
    {layer: (mean grad float[E, P], mean sq grad float[E, P])}."""
    if calib_ids is None or calib_ids.dim() != 2 or calib_ids.shape[1] < 2:
        raise ValueError("gradient-based selection needs calibration ids int64[B, T] with T >= 2")
    work = copy.deepcopy(model).train()
    layers = moe_layers(work)
    sums = {i: [0.0, 0.0] for i, _ in layers}
    nb = 0
    for b in range(0, calib_ids.shape[0], batch):
        ids = calib_ids[b : b + batch]
        work.zero_grad(set_to_none=True)
        logits = work(ids)  # [b, T, V]
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        loss.backward()
        for i, layer in layers:
            g = _expert_tensors(layer, grad=True).double()
            sums[i][0] = sums[i][0] + g
            sums[i][1] = sums[i][1] + g * g
        nb += 1
    return {i: (s[0] / nb, s[1] / nb) for i, s in sums.items()}


def utility_scores(
    model: Llama, select: str, calib_ids: torch.Tensor | None = None
) -> dict[int, torch.Tensor]:
    """{MoE layer index: float64[E] utility of each expert} for selector ``select``."""
    if select not in SELECTORS:
        raise ValueError(f"unknown selector {select!r}; choose from {', '.join(SELECTORS)}")
    layers = moe_layers(model)
    if not layers:
        raise ValueError("grow needs an MoE model (no MoE layers found)")
    if select == "uniform":
        return {i: torch.ones(layer.num_experts, dtype=torch.float64) for i, layer in layers}
    wnorm = {i: _expert_tensors(layer).double().norm(dim=1) for i, layer in layers}
    if select == "weight_norm":
        return wnorm
    grads = expert_gradients(model, calib_ids)
    out = {}
    for i, _ in layers:
        g, v = grads[i]
        if select == "saliency":
            out[i] = wnorm[i] * g.norm(dim=1)
        elif select == "grad":
            out[i] = g.pow(2).sum(dim=1)
        else:
            out[i] = (g.pow(2) / (v.sqrt() + FISHER_EPS)).sum(dim=1)
    return out


def allocate_copies(
    scores: torch.Tensor, factor: int, uniform: bool, cap: int = MAX_COPIES
) -> torch.Tensor:
    """scores float[E] -> copies int64[E] (>= 1 each, sum = factor * E, each <= cap unless uniform).

    Greedy (as in Expert Upcycling): each extra copy goes to the highest-scoring
    expert still under the cap; exact ties to the lower index.
    """
    E = scores.numel()
    if factor < 1:
        raise ValueError(f"growth factor must be >= 1, got {factor}")
    if uniform:
        return torch.full((E,), factor, dtype=torch.int64)
    if factor > cap:
        raise ValueError(
            f"non-uniform growth by {factor} needs more than cap={cap} copies per expert"
        )
    copies = torch.ones(E, dtype=torch.int64)
    s = scores.double()
    for _ in range((factor - 1) * E):
        prio = torch.where(copies < cap, s, torch.tensor(-math.inf, dtype=torch.float64))
        copies[int(torch.argmax(prio))] += 1  # argmax returns the first maximum
    return copies


def grow_sources(copies: torch.Tensor) -> torch.Tensor:
    """copies int64[E] -> int64[sum(copies)]: the original expert of each grown expert
    (originals first)."""
    E = copies.numel()
    return torch.cat(
        [torch.arange(E)]
        + [torch.full((int(c) - 1,), e) for e, c in enumerate(copies.tolist()) if c > 1]
    )


def grown_sources(model: Llama, layer: int) -> torch.Tensor:
    """int64[E]: the pre-growth expert of each expert of MoE block ``layer`` after ``model``'s last
    growth, from the growth record in its MoE config (so it survives a checkpoint round trip)."""
    cfg = moe_config_of(model)
    record = cfg.options.get("grow") if cfg is not None else None
    if not record:
        raise ValueError("the model has not been grown (its MoE config has no growth record)")
    copies = record[-1]["copies"]
    if str(layer) not in copies:
        raise ValueError(
            f"block {layer} is not a grown MoE layer (grown: {sorted(copies, key=int)})"
        )
    return grow_sources(torch.tensor(copies[str(layer)]))


def grow_layer(
    layer: MoEFFN,
    copies: torch.Tensor,
    g: torch.Generator,
    router_init: str = "split",
    noise: float = NOISE,
    dup_share: float | None = DUP_SHARE,
) -> MoEFFN:
    """A new MoEFFN with ``copies.sum()`` experts: originals first, then duplicates in expert order.

    ``split``: each duplicate of an expert with c copies gets the share
    ``dup_share`` (None: 1/c) of its softmax mass, the original keeps
    ``1 - (c-1) * dup_share``: bias += log(share). Shares sum to 1.
    """
    if router_init not in ROUTER_INITS:
        raise ValueError(f"router_init must be one of {ROUTER_INITS}, got {router_init!r}")
    E = layer.num_experts
    src = grow_sources(copies)  # [mE]
    new = MoEFFN(
        layer.dim,
        layer.expert_hidden_dim,
        int(src.numel()),
        layer.top_k,
        layer.renormalize,
        layer.principal,
        layer.residual_scale,
        layer.select_on,
        activation=layer.activation,
    ).to(layer.w_gate.dtype)
    new.ops = layer.ops
    with torch.no_grad():
        for name in ("w_gate", "w_up", "w_down"):
            getattr(new, name).copy_(getattr(layer, name)[src])
        if layer.principal:
            for name in ("p_gate", "p_up", "p_down"):
                getattr(new, name).copy_(getattr(layer, name))
        w = layer.router.weight[src].clone()  # [mE, D]
        b = layer.router.bias[src].clone()  # [mE]
        dup = torch.arange(src.numel()) >= E
        if router_init == "split":
            c = copies[src].double()  # [mE] copies of each row's source
            share = 1.0 / c if dup_share is None else torch.full_like(c, float(dup_share))
            if bool(((c - 1) * share >= 1).any()) or bool((share <= 0).any()):
                raise ValueError(
                    f"dup_share {dup_share} leaves no mass for an original with "
                    f"{int(c.max())} copies"
                )
            share = torch.where(dup, share, 1 - (c - 1) * share)  # [mE]
            b += share.log().to(b.dtype)
            wstd = layer.router.weight.std().item() if layer.router.weight.numel() > 1 else 0.0
            w[dup] += torch.randn(int(dup.sum()), layer.dim, generator=g).to(w.dtype) * (
                noise * wstd
            )
        else:  # the paper's: noise on the duplicates' bias only
            bstd = layer.router.bias.std().item() if E > 1 else 0.0
            b[dup] += torch.randn(int(dup.sum()), generator=g).to(b.dtype) * (noise * bstd)
        new.router.weight.copy_(w)
        new.router.bias.copy_(b)
    return new


def grow(
    model: Llama,
    factor: int = 2,
    select: str = "uniform",
    calib_ids: torch.Tensor | None = None,
    router_init: str = "split",
    noise: float = NOISE,
    cap: int = MAX_COPIES,
    seed: int = 0,
    dup_share: float | None = DUP_SHARE,
) -> Llama:
    """A NEW model with every MoE layer grown from E to factor*E experts; top-k unchanged.

    calib_ids int64[B, T] (needed by saliency/grad/fisher). The input model is not modified.
    """
    moe_cfg = moe_config_of(model)
    if moe_cfg is None or not moe_layers(model):
        raise ValueError("grow needs an MoE model (no MoE layers found)")
    factor = int(factor)
    scores = utility_scores(model, select, calib_ids)
    plan, ffns = {}, {}
    for i, layer in moe_layers(model):
        copies = allocate_copies(scores[i], factor, select == "uniform", cap)
        g = torch.Generator().manual_seed(seed * 1000003 + i)
        ffns[i] = grow_layer(layer, copies, g, router_init, noise, dup_share)
        plan[str(i)] = copies.tolist()
    opts = dict(moe_cfg.options)
    opts["grow"] = opts.get("grow", []) + [
        {
            "factor": factor,
            "select": select,
            "router_init": router_init,
            "noise": noise,
            "dup_share": dup_share,
            "copies": plan,
        }
    ]
    d = moe_cfg.to_dict()
    d.update(num_experts=moe_cfg.num_experts * factor, options=opts)
    return moe_model(model, type(moe_cfg).from_dict(d), ffns)
