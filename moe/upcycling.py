"""Upcycling a dense LLaMA into an MoE:
``upcycle(model, method=..., num_experts=E, top_k=k, layers=...)``.

Methods (the dense SwiGLU ``down(silu(gate x) * up x)`` of each chosen layer
becomes E SwiGLU experts and a router):

- ``sparse`` (Komatsuzaki et al.): every expert a copy of the dense FFN;
  router N(0, router_std=0.02), bias 0. With renormalized top-k the routing
  weights sum to 1, so the layer equals the dense FFN at init (up to FP32
  rounding of the weighted sum).
- ``drop`` (Drop-Upcycling): copies, then each expert redraws a fraction
  ``ratio`` (default 0.5) of its intermediate neurons: one random index set
  per expert, the same set for gate rows, up rows and down columns, each
  matrix's redrawn entries from N(mean, std) of that dense matrix.
- ``partition`` (MoEfication / LLaMA-MoE): the intermediate neurons are split
  into E disjoint, equal-size experts by balanced k-means on the normalized
  gate rows; summing all experts at weight 1 is the dense FFN. Router row e
  (``router="centroid"``, default) is the mean gate row of expert e, so the
  logit is the mean pre-activation of its neurons; ``router="random"`` is N(0, 0.02).
- ``spri``: see :mod:`moe.spri`. ``cluster``: see :mod:`moe.cluster`.

The dense model is never modified: the result is a new
:class:`moe.model.MoELlama` built from its :class:`MoEConfig`, with the dense
model's other weights and the chosen blocks' ``mlp`` the new MoE layers.
"""

from __future__ import annotations

import torch

from engine.model import GatedFFN, Llama
from nli.formats import SELECT_ON_CHOICES

from .config import MoEConfig, default_layers
from .layer import SELECT_ON, MoEFFN, moe_from_dense
from .model import moe_model

METHODS = ("sparse", "drop", "partition", "spri", "cluster")
ROUTER_STD = 0.02
DROP_RATIO = 0.5
KMEANS_ITERS = 20


def _gen(seed: int, layer: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1000003 + int(layer))


def init_router_normal(layer: MoEFFN, g: torch.Generator, std: float = ROUTER_STD) -> None:
    """Router weight N(0, std) (seeded), bias 0."""
    with torch.no_grad():
        layer.router.weight.copy_(torch.randn(layer.router.weight.shape, generator=g) * std)
        layer.router.bias.zero_()


def sparse_experts(
    ffn: GatedFFN,
    E: int,
    k: int,
    g: torch.Generator,
    renormalize: bool = True,
    router_std: float = ROUTER_STD,
) -> MoEFFN:
    """Sparse Upcycling: E copies of ``ffn`` and a N(0, router_std) router."""
    layer = moe_from_dense(ffn, E, k, renormalize=renormalize)
    with torch.no_grad():
        layer.w_gate.copy_(ffn.gate_proj.weight.unsqueeze(0).expand(E, -1, -1))  # [E, H, D]
        layer.w_up.copy_(ffn.up_proj.weight.unsqueeze(0).expand(E, -1, -1))  # [E, H, D]
        layer.w_down.copy_(ffn.down_proj.weight.unsqueeze(0).expand(E, -1, -1))  # [E, D, H]
    init_router_normal(layer, g, router_std)
    return layer


def drop_index_sets(H: int, E: int, ratio: float, g: torch.Generator) -> list[torch.Tensor]:
    """One sorted random set of round(ratio * H) neuron indices per expert (int64)."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"drop ratio must be in [0, 1], got {ratio}")
    n = int(round(ratio * H))
    return [torch.randperm(H, generator=g)[:n].sort().values for _ in range(E)]


def drop_experts(
    ffn: GatedFFN,
    E: int,
    k: int,
    g: torch.Generator,
    renormalize: bool = True,
    ratio: float = DROP_RATIO,
    router_std: float = ROUTER_STD,
) -> MoEFFN:
    """Drop-Upcycling: copies with a fraction ``ratio`` of neurons per expert
    redrawn from N(mean, std)."""
    layer = sparse_experts(ffn, E, k, g, renormalize, router_std)
    H = layer.expert_hidden_dim
    sets = drop_index_sets(H, E, ratio, g)
    with torch.no_grad():
        stats = {
            name: (w.mean().item(), w.std().item())
            for name, w in (
                ("gate", ffn.gate_proj.weight),
                ("up", ffn.up_proj.weight),
                ("down", ffn.down_proj.weight),
            )
        }
        for e, idx in enumerate(sets):
            n = idx.numel()
            for name, param in (("gate", layer.w_gate), ("up", layer.w_up)):
                m, s = stats[name]
                param[e, idx, :] = torch.randn(n, layer.dim, generator=g) * s + m  # rows [n, D]
            m, s = stats["down"]
            layer.w_down[e][:, idx] = (
                torch.randn(layer.dim, n, generator=g) * s + m
            )  # columns [D, n]
    layer.drop_sets = sets  # kept for inspection/tests, not saved
    return layer


def balanced_kmeans(
    x: torch.Tensor, E: int, g: torch.Generator, iters: int = KMEANS_ITERS
) -> torch.Tensor:
    """Balanced k-means of the rows of x float[H, D] into E equal clusters (H % E == 0)
    -> int64[H] labels.

    Each round: centroids from the labels, then a greedy balanced assignment
    (all (row, cluster) pairs by increasing distance, each cluster capped at H/E).
    """
    H = x.shape[0]
    if H % E:
        raise ValueError(
            f"partition needs the intermediate size {H} to be a multiple of num_experts {E}"
        )
    cap = H // E
    x = x.double()
    cent = x[torch.randperm(H, generator=g)[:E]]  # [E, D]
    labels = None
    for _ in range(iters):
        dist = torch.cdist(x, cent)  # [H, E]
        order = torch.argsort(dist.reshape(-1), stable=True).tolist()  # pairs by distance
        new = [-1] * H
        fill = [0] * E
        left = H
        for p in order:
            i, e = divmod(p, E)
            if new[i] < 0 and fill[e] < cap:
                new[i] = e
                fill[e] += 1
                left -= 1
                if not left:
                    break
        new_t = torch.tensor(new, dtype=torch.int64)
        if labels is not None and torch.equal(new_t, labels):
            break
        labels = new_t
        cent = torch.stack([x[labels == e].mean(0) for e in range(E)])  # [E, D]
    return labels


def partition_experts(
    ffn: GatedFFN,
    E: int,
    k: int,
    g: torch.Generator,
    renormalize: bool = True,
    router: str = "centroid",
    iters: int = KMEANS_ITERS,
    router_std: float = ROUTER_STD,
) -> MoEFFN:
    """MoEfication: disjoint equal neuron groups by balanced k-means of normalized gate rows."""
    gate = ffn.gate_proj.weight.detach()
    H = gate.shape[0]
    feats = gate / gate.norm(dim=1, keepdim=True).clamp_min(1e-12)  # [H, D]
    labels = balanced_kmeans(feats, E, g, iters)
    layer = moe_from_dense(ffn, E, k, expert_hidden_dim=H // E, renormalize=renormalize)
    with torch.no_grad():
        for e in range(E):
            idx = torch.nonzero(labels == e).squeeze(1)  # [H/E]
            layer.w_gate[e] = gate[idx]
            layer.w_up[e] = ffn.up_proj.weight[idx]
            layer.w_down[e] = ffn.down_proj.weight[:, idx]
        if router == "centroid":
            layer.router.weight.copy_(layer.w_gate.mean(dim=1))  # [E, D]
            layer.router.bias.zero_()
        elif router == "random":
            init_router_normal(layer, g, router_std)
        else:
            raise ValueError(f"partition router must be 'centroid' or 'random', got {router!r}")
    layer.partition_labels = labels
    return layer


def _ranking(layer: MoEFFN, select_on: str) -> MoEFFN:
    """``layer``, or (if it ranks other values) a new MoEFFN with its weights and ops whose top-k
    ranks ``select_on``."""
    if layer.select_on == select_on:
        return layer
    new = MoEFFN(
        layer.dim,
        layer.expert_hidden_dim,
        layer.num_experts,
        layer.top_k,
        layer.renormalize,
        layer.principal,
        layer.residual_scale,
        select_on,
        activation=layer.activation,
    ).to(layer.w_gate.dtype)
    new.load_state_dict(layer.state_dict(), strict=True)
    new.ops = layer.ops
    return new


def upcycle(
    model: Llama,
    method: str = "sparse",
    num_experts: int = 8,
    top_k: int = 2,
    layers=None,
    seed: int = 0,
    renormalize: bool = True,
    calib_ids: torch.Tensor | None = None,
    select_on: str = SELECT_ON,
    **opts,
) -> Llama:
    """A NEW model whose ``layers`` (default: last 8) have MoE FFNs built by ``method``.

    model: a dense Llama (not modified). calib_ids int64[B, T]: calibration
    text, required by ``cluster``. ``select_on``: what the top-k ranks,
    "logits" (default; the exact softmax order) or "probs" (the ops.softmax
    output). ``opts`` go to the method (ratio, router, rho, scale,
    rank_fraction, temperature, ...). Returns the MoE Llama.
    """
    if method not in METHODS:
        raise ValueError(f"unknown upcycling method {method!r}; choose from {', '.join(METHODS)}")
    layers = default_layers(model.cfg) if layers is None else tuple(sorted(int(i) for i in layers))
    for i in layers:
        if not 0 <= i < model.cfg.n_layers:
            raise ValueError(f"layer {i} does not exist in a model of {model.cfg.n_layers} layers")
        if not isinstance(model.layers[i].mlp, GatedFFN):
            raise ValueError(f"layer {i} is not a dense SwiGLU FFN (already MoE?)")
    if select_on not in SELECT_ON_CHOICES:
        raise ValueError(f"select_on must be 'probs' or 'logits', got {select_on!r}")
    E, k = int(num_experts), int(top_k)
    if not 1 <= k <= E:
        raise ValueError(f"top_k must be in 1..{E}, got {k}")
    ffns: dict[int, MoEFFN] = {}
    extra: dict = {}
    if method == "cluster":
        from .cluster import cluster_experts, collect_ffn_inputs

        if calib_ids is None:
            raise ValueError("method 'cluster' needs calibration text (calib_ids)")
        inputs = collect_ffn_inputs(model, calib_ids, layers)
    for i in layers:
        ffn = model.layers[i].mlp
        g = _gen(seed, i)
        if method == "sparse":
            layer = sparse_experts(ffn, E, k, g, renormalize, **opts)
        elif method == "drop":
            layer = drop_experts(ffn, E, k, g, renormalize, **opts)
        elif method == "partition":
            layer = partition_experts(ffn, E, k, g, renormalize, **opts)
        elif method == "spri":
            from .spri import spri_experts

            layer = spri_experts(ffn, E, k, g, renormalize, **opts)
        else:
            layer = cluster_experts(ffn, inputs[i], E, k, g, renormalize, **opts)
        ffns[i] = _ranking(layer, select_on)
        extra = {"principal": layer.principal, "residual_scale": layer.residual_scale}
    moe_cfg = MoEConfig(
        layers=layers,
        num_experts=E,
        top_k=k,
        expert_hidden_dim=ffns[layers[0]].expert_hidden_dim,
        renormalize=renormalize,
        select_on=select_on,
        method=method,
        options={"seed": seed, **{k2: v for k2, v in opts.items()}},
        **extra,
    )
    return moe_model(model, moe_cfg, ffns)
