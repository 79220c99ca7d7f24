"""SPRI: SVD-Partitioned Residual Initialization (arXiv 2606.16456) -- OUR READING of it.

The paper's exact recipe is not public; this is the project's documented
reading (issue 5). For each dense matrix W of the FFN (gate [H, D], up
[H, D], down [D, H]):

1. ``W = U S V^T`` (float64 SVD), singular values descending, rank R = min(shape).
2. The principal part ``W_r`` keeps the top ``n_p = round(rho * R)`` components.
3. The residual components ``j = n_p .. R-1`` are dealt to the E experts
   round-robin by singular index (component j -> expert (j - n_p) mod E), so
   each expert gets a balanced share of the residual spectral energy:
   ``R_e = sum_{j in J_e} s_j u_j v_j^T`` and ``sum_e R_e = W - W_r``.
4. Expert e is ``W_r + s * R_e``. With ``s = E`` the experts' average is exactly
   ``W_r + (W - W_r) = W``.

``W_r`` and ``R_e`` are stored as separate parameters (``p_*`` and ``w_*`` of
:class:`moe.layer.MoEFFN` with ``principal=True``), so two-stage training
can freeze the principal part (stage 1: residuals only). The router is
N(0, 0.02).

Defaults ``rho = 0.95`` and ``s = 2`` come from the trained sweep of the
fine-tuning benchmark (`benchmarks/train.py`, issue 6): SPRI on SmolLM2, 8 experts
top-2, 50 steps x 8 pairs per point, dev target loss on 200 dev pairs over
rho in {0.5, 0.75, 0.9, 0.95} x s in {1, 2, 4}: lowest at (0.95, 2) with 2.895
((0.9, 2) 2.944, (0.95, 1) 2.943, (0.95, 4) 2.922; rho 0.5 from 3.84 up;
`benchmarks/results/train/sweep_*.json`). Loss falls as rho rises: rho = 1
leaves no residual and is sparse upcycling (every expert W), which the
benchmark measures as its own method. At initialization (no training) the
grid point (0.9, 2) was lowest, and ``s = E = 8`` is far worse (logit KL to
dense 4.89, ppl 3374 at rho 0.9; docs/results.md, MoE section) because top-2 routing
averages 2 experts, not 8.
``s = E`` (pass ``scale=E``) is the setting whose all-expert average is W.
"""

from __future__ import annotations

import torch

from engine.model import GatedFFN

from .layer import MoEFFN, moe_from_dense

SPRI_RHO = 0.95
SPRI_SCALE = 2.0
ROUTER_STD = 0.02


def spri_split(w: torch.Tensor, num_experts: int, rho: float) -> tuple[torch.Tensor, torch.Tensor]:
    """w float[out, in] -> (principal float64[out, in], residuals float64[E, out, in]).

    principal + residuals.sum(0) == w up to float64 rounding.
    """
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"spri rho must be in [0, 1], got {rho}")
    U, S, Vh = torch.linalg.svd(w.detach().double(), full_matrices=False)  # [out, R], [R], [R, in]
    R = S.numel()
    n_p = int(round(rho * R))
    principal = (U[:, :n_p] * S[:n_p]) @ Vh[:n_p]  # [out, in]
    res = torch.zeros((num_experts,) + tuple(w.shape), dtype=torch.float64)  # [E, out, in]
    for e in range(num_experts):
        if n_p + e >= R:  # fewer residual components than experts: this expert gets none
            continue
        J = torch.arange(n_p + e, R, num_experts)  # round-robin share of expert e
        if J.numel():
            res[e] = (U[:, J] * S[J]) @ Vh[J]  # [out, in]
    return principal, res


def spri_experts(
    ffn: GatedFFN,
    E: int,
    k: int,
    g: torch.Generator,
    renormalize: bool = True,
    rho: float = SPRI_RHO,
    scale: float | None = SPRI_SCALE,
    router_std: float = ROUTER_STD,
) -> MoEFFN:
    """SPRI-initialised MoEFFN from a dense SwiGLU. ``scale=None`` means E (expert average = W)."""
    s = float(E if scale is None else scale)
    layer = moe_from_dense(ffn, E, k, renormalize=renormalize, principal=True, residual_scale=s)
    dt = layer.w_gate.dtype
    with torch.no_grad():
        for proj, p, w in (
            (ffn.gate_proj, layer.p_gate, layer.w_gate),
            (ffn.up_proj, layer.p_up, layer.w_up),
            (ffn.down_proj, layer.p_down, layer.w_down),
        ):
            principal, res = spri_split(proj.weight, E, rho)
            p.copy_(principal.to(dt))
            w.copy_(res.to(dt))
        layer.router.weight.copy_(torch.randn(layer.router.weight.shape, generator=g) * router_std)
        layer.router.bias.zero_()
    return layer
