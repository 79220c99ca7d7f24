"""Diagnostics of an MoE model at initialization (or any time).

- :func:`logit_kl`: mean per-token KL(p_ref || p_model) of next-token distributions, nats.
- :func:`expert_weight_cosine`: mean pairwise cosine of the experts' flattened
  effective weights (gate, up, down concatenated).
- :func:`expert_output_cosine`: mean over expert pairs of the mean per-token
  cosine of the experts' outputs on the same tokens.
- :func:`routing_entropy`: mean entropy (nats) of the full router softmax (torch, FP32).
- :func:`expert_load`: fraction of the N*k assignments each expert receives.
- :func:`routing_agreement`: fraction of tokens whose top-k expert SET is the
  same in two runs. The sets are recomputed with each layer's own ops
  (``layer.ops.softmax`` then the stable top-k of :func:`moe.layer.route_topk`),
  so a run on the NLI ops is judged by the experts it really chose.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from engine.model import Llama

from .cluster import collect_ffn_inputs
from .layer import MoEFFN, moe_layers

BATCH = 4


@torch.no_grad()
def dense_logprobs(ref: Llama, ids: torch.Tensor, batch: int = BATCH) -> list[torch.Tensor]:
    """ids int64[B, T] -> list of float32[b, T, V] log-softmax batches of ``ref``
    (to reuse across models)."""
    return [
        F.log_softmax(ref(ids[b : b + batch]).float(), -1) for b in range(0, ids.shape[0], batch)
    ]


@torch.no_grad()
def logit_kl(
    ref: Llama | None,
    model: Llama,
    ids: torch.Tensor,
    batch: int = BATCH,
    ref_logprobs: list[torch.Tensor] | None = None,
) -> float:
    """ids int64[B, T] -> mean over B*T tokens of KL(softmax(ref) || softmax(model)), nats.

    ``ref_logprobs``: precomputed :func:`dense_logprobs` (same ids and batch) instead of ``ref``.
    """
    total, n = 0.0, 0
    for j, b in enumerate(range(0, ids.shape[0], batch)):
        x = ids[b : b + batch]
        lp = (
            ref_logprobs[j] if ref_logprobs is not None else F.log_softmax(ref(x).float(), -1)
        )  # [b, T, V]
        lq = F.log_softmax(model(x).float(), -1)
        total += float((lp.exp() * (lp - lq)).sum(-1).sum())
        n += x.numel()
    return total / n


@torch.no_grad()
def router_logits(model: Llama, ids: torch.Tensor, batch: int = BATCH) -> dict[int, torch.Tensor]:
    """{MoE layer: router logits float32[B*T, E]} of ``model`` on ids int64[B, T]
    (rows in token order)."""
    idx = [i for i, _ in moe_layers(model)]
    out = {i: [] for i in idx}
    for b in range(0, ids.shape[0], batch):
        _, rl = model(ids[b : b + batch], return_router_logits=True)
        for i, r in zip(idx, rl):
            out[i].append(r)
    return {i: torch.cat(v) for i, v in out.items()}


def chosen_experts(layer: MoEFFN, logits: torch.Tensor) -> torch.Tensor:
    """The experts ``layer`` picks for router logits float32[N, E] -> int64[N, k]
    (with its own ops)."""
    _, _, idx = layer.select(logits)
    return idx


def expert_load(idx: torch.Tensor, num_experts: int) -> torch.Tensor:
    """idx int64[N, k] -> float64[E] fraction of the N*k assignments per expert."""
    return torch.bincount(idx.reshape(-1), minlength=num_experts).double() / idx.numel()


def routing_entropy(logits: torch.Tensor) -> float:
    """logits float[N, E] -> mean entropy (nats) of softmax(logits) (max log E)."""
    p = torch.softmax(logits.double(), -1)
    return float(-(p * p.clamp_min(1e-300).log()).sum(-1).mean())


def routing_agreement(idx_a: torch.Tensor, idx_b: torch.Tensor) -> float:
    """Two int64[N, k] top-k choices -> fraction of tokens whose expert SET is equal."""
    if idx_a.shape != idx_b.shape:
        raise ValueError(f"routing shapes differ: {tuple(idx_a.shape)} vs {tuple(idx_b.shape)}")
    a, _ = idx_a.sort(-1)
    b, _ = idx_b.sort(-1)
    return float((a == b).all(-1).double().mean())


def mapped_routing_agreement(
    idx_pre: torch.Tensor, idx_post: torch.Tensor, source: torch.Tensor
) -> float:
    """Growth check: int64[N, k] choices before and after growth, source int64[mE]
    (grown -> original).

    Fraction of tokens whose top-k set, mapped back to the original experts, is
    the pre-growth set (two copies of one expert count as that expert twice, so
    they do NOT match a set of two distinct experts).
    """
    return routing_agreement(idx_pre, source[idx_post])


def _mean_pairwise_cos(v: torch.Tensor) -> float:
    """v float[E, P] -> mean cosine over the E(E-1)/2 pairs of rows (1.0 for E = 1)."""
    if v.shape[0] < 2:
        return 1.0
    vn = F.normalize(v.double(), dim=1)
    c = vn @ vn.T  # [E, E]
    iu = torch.triu_indices(v.shape[0], v.shape[0], 1)
    return float(c[iu[0], iu[1]].mean())


@torch.no_grad()
def expert_weight_cosine(layer: MoEFFN) -> float:
    """Mean pairwise cosine of the experts' effective weights (gate, up, down flattened)."""
    g, u, d = layer.expert_weights()
    E = layer.num_experts
    return _mean_pairwise_cos(torch.cat([g.reshape(E, -1), u.reshape(E, -1), d.reshape(E, -1)], 1))


@torch.no_grad()
def expert_output_cosine(layer: MoEFFN, x: torch.Tensor) -> float:
    """x float[N, D] -> mean over expert pairs of mean per-token cosine of expert outputs."""
    w = layer.expert_weights()
    ys = F.normalize(
        torch.stack([layer.expert_forward(x, e, w) for e in range(layer.num_experts)]).double(),
        dim=-1,
    )  # [E, N, D]
    pairs = list(itertools.combinations(range(layer.num_experts), 2))
    if not pairs:
        return 1.0
    return float(torch.stack([(ys[a] * ys[b]).sum(-1).mean() for a, b in pairs]).mean())


@torch.no_grad()
def init_report(
    dense: Llama | None,
    model: Llama,
    ids: torch.Tensor,
    max_tokens_out_cos: int = 512,
    ref_logprobs: list[torch.Tensor] | None = None,
) -> dict:
    """Everything above for ``model`` against ``dense`` on held-out ids int64[B, T] -> JSON-able
    dict.

    ``ref_logprobs``: the dense model's :func:`dense_logprobs` on ids, if already computed.
    """
    layers = moe_layers(model)
    rl = router_logits(model, ids)
    xs = collect_ffn_inputs(
        model, ids[: max(1, max_tokens_out_cos // ids.shape[1])], [i for i, _ in layers]
    )
    per_layer = {}
    for i, layer in layers:
        idx = chosen_experts(layer, rl[i])
        per_layer[str(i)] = {
            "weight_cosine": expert_weight_cosine(layer),
            "output_cosine": expert_output_cosine(layer, xs[i][:max_tokens_out_cos]),
            "routing_entropy": routing_entropy(rl[i]),
            "expert_load": expert_load(idx, layer.num_experts).tolist(),
        }

    def mean(key):
        return sum(v[key] for v in per_layer.values()) / max(1, len(per_layer))

    return {
        "kl_to_dense": logit_kl(dense, model, ids, ref_logprobs=ref_logprobs),
        "weight_cosine": mean("weight_cosine"),
        "output_cosine": mean("output_cosine"),
        "routing_entropy": mean("routing_entropy"),
        "tokens": int(ids.numel()),
        "layers": per_layer,
    }
