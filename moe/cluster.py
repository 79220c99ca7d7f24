"""Cluster-aware Upcycling (arXiv 2604.13508), our reading for a SwiGLU LLM.

1. Run the dense model on calibration text; collect each MoE layer's FFN
   inputs X (after ``ffn_norm``), float[n, D].
2. Spherical k-means of the rows of X into E clusters (cosine similarity,
   unit centroids, seeded init from distinct samples).
3. Expert e is the data-aware rank-r truncation of each dense matrix for its
   cluster: for a map ``W`` [out, in] with cluster inputs Z (X for gate/up,
   the dense ``silu(gate x) * up x`` for down), the rank-r ``W_hat``
   minimizing ``||W Z^T - W_hat Z^T||_F`` is ``U_r U_r^T W``, U_r the top-r
   left singular vectors of ``W C^{1/2}``, C = Z^T Z / n + damp * mean(diag) * I
   (the ridge ``damp`` keeps it well posed when a cluster has few tokens).
   r = round(rank_fraction * min(out, in)).
4. Router row e = unit centroid e * temperature / mean ||x|| (bias 0), so the
   logit is about ``temperature * cos(x, centroid)``; the top-1 expert of a
   token is the cluster whose centroid is nearest to it in angle.

:func:`ensemble_distillation_loss` is the expert-ensemble self-distillation
term for training: the mean of all experts' outputs (detached) teaches the
routed output, weighted per token by the router's normalized entropy (the
more uncertain the routing, the stronger the pull).
"""

from __future__ import annotations

import math

import torch

from engine.model import GatedFFN, Llama

from .layer import MoEFFN, moe_from_dense

RANK_FRACTION = 0.5
TEMPERATURE = 10.0
DAMP = 0.05
KMEANS_ITERS = 30
ROW_BATCH = 4


@torch.no_grad()
def collect_ffn_inputs(model: Llama, ids: torch.Tensor, layers) -> dict[int, torch.Tensor]:
    """Run ``model`` on ids int64[B, T]; return {layer: FFN inputs float32[B*T, D]}
    for ``layers``."""
    if ids.dim() != 2:
        raise ValueError(f"calibration ids must be [batch, seq], got shape {tuple(ids.shape)}")
    store: dict[int, list] = {i: [] for i in layers}
    hooks = [
        model.layers[i].mlp.register_forward_pre_hook(
            lambda mod, args, i=i: store[i].append(
                args[0].detach().reshape(-1, args[0].shape[-1]).float()
            )
        )
        for i in layers
    ]
    try:
        for b in range(0, ids.shape[0], ROW_BATCH):
            model(ids[b : b + ROW_BATCH])
    finally:
        for h in hooks:
            h.remove()
    return {i: torch.cat(v) for i, v in store.items()}


def spherical_kmeans(
    x: torch.Tensor, E: int, g: torch.Generator, iters: int = KMEANS_ITERS
) -> tuple[torch.Tensor, torch.Tensor]:
    """x float[n, D] -> (unit centroids float32[E, D], labels int64[n]) by cosine k-means.

    Seeding is k-means++ on the cosine distance (seeded by ``g``). Ties in the assignment go to
    the lower cluster index (argmax). An empty cluster is re-seeded with the point least similar
    to its own centroid.
    """
    n = x.shape[0]
    if n < E:
        raise ValueError(f"spherical k-means needs at least {E} calibration tokens, got {n}")
    xn = torch.nn.functional.normalize(x.double(), dim=1)  # [n, D]
    cent = xn[torch.randint(n, (1,), generator=g)]  # [1, D]
    for _ in range(1, E):  # k-means++: next seed with probability ~ (1 - max cos)^2
        dist = (1 - (xn @ cent.T).max(dim=1).values).clamp_min(0).pow(2)  # [n]
        pick = torch.multinomial(dist + 1e-12, 1, generator=g)
        cent = torch.cat([cent, xn[pick]])  # [e+1, D]
    labels = torch.full((n,), -1, dtype=torch.int64)
    for _ in range(iters):
        sim = xn @ cent.T  # [n, E]
        new = sim.argmax(dim=1)
        for e in range(E):
            if not (new == e).any():
                worst = sim.gather(1, new[:, None]).squeeze(1).argmin()
                new[worst] = e
        if torch.equal(new, labels):
            break
        labels = new
        cent = torch.nn.functional.normalize(
            torch.zeros(E, x.shape[1], dtype=torch.float64).index_add_(0, labels, xn), dim=1
        )  # [E, D]
    return cent.float(), labels


def data_aware_lowrank(
    w: torch.Tensor, z: torch.Tensor, rank: int, damp: float = DAMP
) -> torch.Tensor:
    """w float[out, in], inputs z float[n, in] -> rank-``rank`` W_hat float64[out, in]
    minimizing output error on z."""
    W = w.detach().double()
    Z = z.double()
    C = Z.T @ Z / max(1, Z.shape[0])  # [in, in]
    C = C + damp * C.diagonal().mean().clamp_min(1e-12) * torch.eye(C.shape[0], dtype=torch.float64)
    if W.shape[0] <= W.shape[1]:
        lam, V = torch.linalg.eigh(W @ C @ W.T)  # (W C^{1/2})(W C^{1/2})^T  [out, out]
        Ur = V[:, lam.argsort(descending=True)[:rank]]  # [out, r]
    else:
        ev, Q = torch.linalg.eigh(C)  # C = Q diag(ev) Q^T
        Y = W @ (Q * ev.clamp_min(0).sqrt()) @ Q.T  # W C^{1/2}  [out, in]
        lam, V = torch.linalg.eigh(Y.T @ Y)  # [in, in]
        top = lam.argsort(descending=True)[:rank]
        Ur = (Y @ V[:, top]) / lam[top].clamp_min(1e-30).sqrt()  # [out, r], orthonormal columns
    return Ur @ (Ur.T @ W)  # [out, in]


def cluster_experts(
    ffn: GatedFFN,
    x: torch.Tensor,
    E: int,
    k: int,
    g: torch.Generator,
    renormalize: bool = True,
    rank_fraction: float = RANK_FRACTION,
    temperature: float = TEMPERATURE,
    damp: float = DAMP,
    iters: int = KMEANS_ITERS,
) -> MoEFFN:
    """Cluster-aware experts for ``ffn`` from its calibration inputs x float[n, D]."""
    if not 0.0 < rank_fraction <= 1.0:
        raise ValueError(f"cluster rank_fraction must be in (0, 1], got {rank_fraction}")
    cent, labels = spherical_kmeans(x, E, g, iters)
    layer = moe_from_dense(ffn, E, k, renormalize=renormalize)
    Wg, Wu, Wd = ffn.gate_proj.weight, ffn.up_proj.weight, ffn.down_proj.weight
    dt = layer.w_gate.dtype
    with torch.no_grad():
        for e in range(E):
            xe = x[labels == e]  # [n_e, D]
            he = ffn.ops.act(xe @ Wg.T, ffn.activation) * (
                xe @ Wu.T
            )  # [n_e, H] dense intermediate activations
            for w, z, dst in ((Wg, xe, layer.w_gate), (Wu, xe, layer.w_up), (Wd, he, layer.w_down)):
                r = max(1, int(round(rank_fraction * min(w.shape))))
                dst[e] = data_aware_lowrank(w, z, r, damp).to(dt)
        scale = temperature / x.norm(dim=1).mean().clamp_min(1e-12)
        layer.router.weight.copy_(cent * scale)  # [E, D]
        layer.router.bias.zero_()
    layer.cluster_labels = labels
    layer.cluster_centroids = cent
    return layer


def ensemble_distillation_loss(layer: MoEFFN, x: torch.Tensor) -> torch.Tensor:
    """Expert-ensemble self-distillation for one MoE layer, float32 scalar.

    x float[..., D] (the layer's input). Teacher: the mean of all E experts'
    outputs, detached. Student: the routed output. Per-token weight: router
    entropy / log E in [0, 1]. Loss: mean over tokens of weight * mean-square error.
    """
    xf = x.reshape(-1, layer.dim)  # [N, D]
    y, logits = layer(xf)
    probs = torch.softmax(logits.float(), dim=-1)  # [N, E]
    ent = -(probs * probs.clamp_min(1e-30).log()).sum(-1) / math.log(
        max(2, layer.num_experts)
    )  # [N]
    with torch.no_grad():
        weights = layer.expert_weights()
        teacher = torch.stack(
            [layer.expert_forward(xf, e, weights) for e in range(layer.num_experts)]
        ).mean(0)
    return (ent.detach() * (y - teacher).pow(2).mean(-1)).mean()
