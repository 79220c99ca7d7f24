"""Token-choice top-k Mixture-of-Experts FFN of SwiGLU experts.

Routing (per token): ``logits = router(x)`` (a linear map with bias), then
``probs = ops.softmax(logits)`` over all E experts (through the model's
OpSet, so :func:`engine.substitute` can run it on the NLI unit), then the k
experts with the largest logits (the same set as the k largest exact
probabilities; ``select_on="probs"`` ranks the ops.softmax output instead),
weighted by their probabilities. By default the chosen probabilities are renormalized
to sum 1 (Mixtral: equal to top-k then softmax); ``renormalize=False`` keeps
them as they are (Megatron pre-softmax routing).

Tie-breaking (documented rule): experts are ranked by a *stable* descending
sort of the ranked values, so on an exact tie the lower expert index wins.
With ``select_on="probs"`` this matters when the FP16 outputs of the NLI
softmax round two probabilities to the same value. ONNX TopK uses the same
rule.

Dispatch is dropless: every (token, expert) assignment is computed. The
N*k assignments are sorted by expert (stable) and gathered; each expert runs
one GEMM chain on its rows (a loop over experts, never over tokens), or, with
``DISPATCH = "padded"``, the groups are zero-padded to the largest one and run
as three batched GEMMs over all experts. The outputs are put
back in token order by the inverse permutation and combined with the routing
weights by one batched [1, k] x [k, D] product per token.

Expert weights are stacked: ``w_gate``, ``w_up`` [E, He, D], ``w_down``
[E, D, He]. With ``principal=True`` (SPRI) the effective expert weight is
``p_gate + residual_scale * w_gate[e]`` (likewise up, down), the principal
part being a separate, shared parameter so training can freeze it.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from engine.model import REF_OPS, GatedFFN, OpSet
from nli.formats import ACTIVATIONS, SELECT_ON_CHOICES

# Dispatch: one GEMM chain per expert on its rows ("looped", the default) or three batched GEMMs
# over zero-padded [E, cmax, .] blocks ("padded"). Measured at SmolLM2 sizes (1,024 tokens, E=8,
# k=2, groups 230-279 rows) on the idle 2-core box, throughput against the dense peer of equal
# active FLOPs, in a one-off microbenchmark (not kept): looped 1.10x (1 thread) / 1.04x (2 threads),
# padded 0.84x / 0.85x. The reproducible numbers for the default are benchmarks/moe_init.py ->
# moe_speed.json. On a busy box both drop, 2-thread looped most (many short parallel regions wait on
# descheduled threads), but so does the dense peer.
# Which values the top-k ranks: "logits" (default: the FP32 router logits, whose order is the exact
# softmax's, as softmax is strictly increasing) or "probs" (the ops.softmax output: FP16 on the NLI
# unit, where rounding ties near-equal experts and the tie rule, not the router, picks). Ranking
# the logits keeps the unit's rounding out of the choice, and a hardware router can compare logits
# before the exp. Measured on SmolLM2 at init (benchmarks/moe_init.py, docs/results.md):
# routing agreement ref vs nli rises from 98.78% to 99.66% (drop) and from 99.8% to 99.9%
# (sparse) when ranking logits instead of probs.
SELECT_ON = "logits"
DISPATCH = "looped"  # "looped" | "padded" (tests and benchmarks force one)


def route_topk(
    probs: torch.Tensor, top_k: int, renormalize: bool = True, scores: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """probs float[N, E] -> (weights float32[N, k], experts int64[N, k]).

    Experts in descending ``scores`` (default: the probabilities themselves);
    exact ties go to the lower index (stable sort). The weights are the chosen
    probabilities; ``renormalize`` divides them by their sum.
    """
    if probs.dim() != 2:
        raise ValueError(f"probs must be [tokens, experts], got shape {tuple(probs.shape)}")
    if not 1 <= top_k <= probs.shape[1]:
        raise ValueError(f"top_k must be in 1..{probs.shape[1]}, got {top_k}")
    p = probs.float()
    key = p if scores is None else scores.float()
    order = torch.sort(key, dim=-1, descending=True, stable=True).indices[:, :top_k]  # [N, k]
    w = p.gather(1, order)  # [N, k]
    if renormalize:
        w = w / w.sum(dim=-1, keepdim=True)
    return w, order


def load_balancing_loss(router_logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Switch/Mixtral auxiliary loss ``E * sum_i f_i P_i`` for one layer.

    router_logits float[N, E]. ``f_i`` = fraction of the N*k assignments that
    go to expert i (so sum f = 1; perfect balance gives loss 1), ``P_i`` =
    mean over tokens of the softmax probability of expert i (torch softmax,
    differentiable). Returns a float32 scalar.
    """
    E = router_logits.shape[-1]
    probs = torch.softmax(router_logits.float(), dim=-1)  # [N, E]
    _, idx = route_topk(probs.detach(), top_k)
    f = torch.bincount(idx.reshape(-1), minlength=E).float() / idx.numel()  # [E]
    P = probs.mean(dim=0)  # [E]
    return E * (f * P).sum()


def router_z_loss(router_logits: torch.Tensor) -> torch.Tensor:
    """ST-MoE router z-loss: mean over tokens of logsumexp(logits)^2. float32 scalar."""
    return torch.logsumexp(router_logits.float(), dim=-1).pow(2).mean()


class MoEFFN(nn.Module):
    """Top-k MoE of gated-FFN experts (SwiGLU or GeGLU: ``activation``).
    ``forward(x [..., D]) -> (y [..., D], router_logits float32[N, E])``."""

    def __init__(
        self,
        dim: int,
        expert_hidden_dim: int,
        num_experts: int,
        top_k: int,
        renormalize: bool = True,
        principal: bool = False,
        residual_scale: float = 1.0,
        select_on: str = SELECT_ON,
        activation: str = "silu",
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k must be in 1..{num_experts}, got {top_k}")
        if select_on not in SELECT_ON_CHOICES:
            raise ValueError(f"select_on must be one of {SELECT_ON_CHOICES}, got {select_on!r}")
        self.select_on = select_on
        E, H, D = num_experts, expert_hidden_dim, dim
        self.dim, self.expert_hidden_dim, self.num_experts, self.top_k = D, H, E, top_k
        self.renormalize = renormalize
        self.principal = principal
        self.residual_scale = float(residual_scale)
        self.router = nn.Linear(D, E, bias=True)
        self.w_gate = nn.Parameter(torch.zeros(E, H, D))
        self.w_up = nn.Parameter(torch.zeros(E, H, D))
        self.w_down = nn.Parameter(torch.zeros(E, D, H))
        if principal:
            self.p_gate = nn.Parameter(torch.zeros(H, D))
            self.p_up = nn.Parameter(torch.zeros(H, D))
            self.p_down = nn.Parameter(torch.zeros(D, H))
        nn.init.zeros_(self.router.bias)
        self.ops: OpSet = REF_OPS

    # ------------------------------------------------------------------ weights
    def expert_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Effective stacked weights (gate [E, He, D], up [E, He, D], down [E, D, He])."""
        if not self.principal:
            return self.w_gate, self.w_up, self.w_down
        s = self.residual_scale
        if torch.is_grad_enabled():
            return (
                self.p_gate + s * self.w_gate,
                self.p_up + s * self.w_up,
                self.p_down + s * self.w_down,
            )
        # inference: reuse the merged weights while no parameter has changed
        # (in-place edits bump _version)
        params = (self.p_gate, self.w_gate, self.p_up, self.w_up, self.p_down, self.w_down)
        key = (s,) + tuple((id(p), p._version, p.device) for p in params)
        if getattr(self, "_merged_key", None) != key:
            self._merged = (
                self.p_gate + s * self.w_gate,
                self.p_up + s * self.w_up,
                self.p_down + s * self.w_down,
            )
            self._merged_key = key
        return self._merged

    def expert_forward(self, x: torch.Tensor, e: int, weights=None) -> torch.Tensor:
        """Output of expert ``e`` alone on x float[N, D] -> float[N, D] (weight 1)."""
        g, u, d = weights if weights is not None else self.expert_weights()
        return (self.ops.act(x @ g[e].T, self.activation) * (x @ u[e].T)) @ d[e].T

    # ------------------------------------------------------------------ routing
    def route(self, x: torch.Tensor):
        """x float[N, D] ->
        (router_logits f32[N, E], probs [N, E], weights f32[N, k], experts i64[N, k])."""
        logits = self.router(x).float()  # [N, E]
        probs, w, idx = self.select(logits)
        return logits, probs, w, idx

    def select(self, logits: torch.Tensor):
        """router logits f32[N, E] ->
        (probs [N, E] from ops.softmax, weights f32[N, k], experts i64[N, k])."""
        probs = self.ops.softmax(logits)  # [N, E]
        w, idx = route_topk(
            probs,
            self.top_k,
            self.renormalize,
            scores=logits if self.select_on == "logits" else None,
        )
        return probs, w, idx

    def forward(self, x: torch.Tensor):
        shape = x.shape
        xf = x.reshape(-1, self.dim)  # [N, D]
        logits, _, w, idx = self.route(xf)
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            y = self._dense_dispatch(xf, w, idx)
        else:
            y = self._sorted_dispatch(xf, w, idx)
        return y.reshape(shape), logits

    def _sorted_dispatch(self, x: torch.Tensor, w: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Dropless grouped dispatch: sort assignments by expert, one GEMM chain per expert."""
        N, k = idx.shape
        g, u, d = self.expert_weights()
        flat = idx.reshape(-1)  # [N*k], assignment a = token * k + slot
        order = torch.sort(flat, stable=True).indices  # [N*k] assignments grouped by expert
        counts = torch.bincount(flat, minlength=self.num_experts).tolist()
        xs = x.index_select(0, order // k)  # [N*k, D] token rows in expert order
        cmax = max(counts)
        if DISPATCH == "padded":
            ys = self._padded_bmm(xs, flat[order], counts, cmax, g, u, d)
        else:
            ys = self._looped_mm(xs, counts, g, u, d)
        inv = torch.empty_like(order)
        inv[order] = torch.arange(order.numel(), device=order.device)  # inverse permutation
        y = ys.index_select(0, inv).view(N, k, self.dim)  # [N, k, D] back in (token, slot) order
        return torch.bmm(w.to(y.dtype).unsqueeze(1), y).squeeze(
            1
        )  # [N, 1, k] @ [N, k, D] -> [N, D]

    def _padded_bmm(self, xs, experts, counts, cmax, g, u, d):
        """xs [A, D] sorted by expert (experts int64[A]) -> ys [A, D]: three batched GEMMs over
        [E, cmax, .] blocks, the rows past each expert's count zero-padded (never read back)."""
        A = xs.shape[0]
        starts = torch.tensor([0] + counts[:-1], device=xs.device).cumsum(
            0
        )  # [E] first row of each expert
        pos = (
            torch.arange(A, device=xs.device) - starts[experts]
        )  # [A] row within its expert's block
        blocks = xs.new_zeros(self.num_experts, cmax, self.dim)  # [E, cmax, D]
        blocks[experts, pos] = xs
        h = self.ops.act(torch.bmm(blocks, g.transpose(1, 2)), self.activation)  # [E, cmax, He]
        up = torch.bmm(blocks, u.transpose(1, 2))  # [E, cmax, He]
        h = h * up if torch.is_grad_enabled() else h.mul_(up)
        return torch.bmm(h, d.transpose(1, 2))[experts, pos]  # [E, cmax, D] -> [A, D]

    def _looped_mm(self, xs, counts, g, u, d):
        """xs [A, D] sorted by expert -> ys [A, D]: one GEMM chain per expert on its rows."""
        ys = torch.empty_like(xs)  # [A, D]
        grad = torch.is_grad_enabled()
        start = 0
        for e, c in enumerate(counts):
            if c:
                xe = xs[start : start + c]  # [c, D]
                h = self.ops.act(xe @ g[e].T, self.activation)  # [c, He]
                h = h * (xe @ u[e].T) if grad else h.mul_(xe @ u[e].T)
                if grad:
                    ys[start : start + c] = h @ d[e].T  # [c, D]
                else:
                    torch.mm(h, d[e].T, out=ys[start : start + c])
            start += c
        return ys

    def _dense_dispatch(self, x: torch.Tensor, w: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Every expert on every token, combined by a scattered [N, E] weight
        (export path, no data-dependent flow)."""
        comb = torch.zeros(x.shape[0], self.num_experts, dtype=x.dtype, device=x.device).scatter(
            1, idx, w.to(x.dtype)
        )  # [N, E]
        weights = self.expert_weights()
        y = torch.zeros_like(x)
        for e in range(self.num_experts):
            y = y + comb[:, e : e + 1] * self.expert_forward(x, e, weights)
        return y

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, expert_hidden={self.expert_hidden_dim}, experts={self.num_experts}, "
            f"top_k={self.top_k}, renormalize={self.renormalize}, principal={self.principal}, "
            f"select_on={self.select_on}"
        )


def moe_layers(model) -> list[tuple[int, MoEFFN]]:
    """(block index, layer) of every MoE FFN of an :class:`engine.model.Llama`, in depth order."""
    return [(i, b.mlp) for i, b in enumerate(model.layers) if isinstance(b.mlp, MoEFFN)]


def moe_from_dense(
    ffn: GatedFFN,
    num_experts: int,
    top_k: int,
    expert_hidden_dim: int | None = None,
    renormalize: bool = True,
    principal: bool = False,
    residual_scale: float = 1.0,
) -> MoEFFN:
    """An empty MoEFFN shaped like ``ffn`` (weights zero, ops shared);
    the upcycling methods fill it."""
    D = ffn.gate_proj.in_features
    H = expert_hidden_dim or ffn.gate_proj.out_features
    layer = MoEFFN(
        D, H, num_experts, top_k, renormalize, principal, residual_scale, activation=ffn.activation
    )
    layer.ops = ffn.ops
    return layer.to(ffn.gate_proj.weight.dtype)


def dense_equivalent_ffn(layer: MoEFFN) -> GatedFFN:
    """A dense SwiGLU with the active FLOPs of ``layer`` (hidden = k * He),
    random weights (benchmark peer)."""
    ffn = GatedFFN(layer.dim, layer.top_k * layer.expert_hidden_dim, layer.activation)
    ffn.ops = layer.ops
    return ffn


__all__ = [
    "MoEFFN",
    "moe_layers",
    "route_topk",
    "load_balancing_loss",
    "router_z_loss",
    "moe_from_dense",
    "dense_equivalent_ffn",
]
