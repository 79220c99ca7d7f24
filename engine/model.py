"""A LLaMA-family decoder in torch (LLaMA, Gemma 3, Qwen2, Qwen3), with its nonlinear ops pluggable.

RMSNorm, rotate-half RoPE, grouped-query attention with causal (or sliding-window) softmax, a
gated FFN (SwiGLU or GeGLU) and tied output embeddings; the architectures' extras (QKV biases,
QK-norms, sandwich norms, embedding scale, local/global layers) are fields of
:class:`engine.model_config.LlamaConfig`, attention and masks live in :mod:`engine.attention`.
The nonlinear ops (the activation, every RMSNorm including the QK and sandwich norms, Softmax)
are not called directly: every module that needs one calls its ``ops`` attribute (an
:class:`OpSet`), so :func:`engine.substitute` can route them through the simulated unit without
touching the weights.

The FFN of a block is any module returning either a tensor or a
``(hidden, router_logits)`` pair; the MoE package plugs its layer in there.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from nli.formats import ACTIVATIONS

from .attention import Attention, layer_masks, rope_tables, rotate_half  # noqa: F401 (re-exported)
from .model_config import LlamaConfig


# ----------------------------------------------------------------------------- ops
class OpSet:
    """The reference (FP32 torch) implementation of the three nonlinear ops.

    Subclasses (engine.substitution) override any of them. Shapes:
    ``act(x, fn)``: any shape, ``fn`` the model's activation (one of
    nli.formats.ACTIVATIONS); ``rmsnorm(x, w, eps)``: x [..., n], w [n];
    ``softmax(x)``: softmax over the last axis, -inf entries give exact zeros.
    """

    name = "ref"

    def act(self, x: torch.Tensor, fn: str) -> torch.Tensor:
        return TORCH_ACTIVATIONS[fn](x)

    def rmsnorm(self, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        xf = x.float()
        return xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * weight

    def softmax(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x.float(), dim=-1)


TORCH_ACTIVATIONS = {
    "silu": F.silu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
}
"""The FP32 reference of each activation (keys: nli.formats.ACTIVATIONS)."""
assert tuple(TORCH_ACTIVATIONS) == ACTIVATIONS

REF_OPS = OpSet()


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.ops: OpSet = REF_OPS

    def forward(self, x):
        return self.ops.rmsnorm(x, self.weight, self.eps)


class GatedFFN(nn.Module):
    """Dense gated FFN: down(act(gate(x)) * up(x)), act = ``activation`` (SwiGLU for silu, GeGLU
    for gelu_tanh). Weights [hidden, dim] / [dim, hidden]."""

    def __init__(self, dim: int, hidden_dim: int, activation: str = "silu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        self.gate_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.up_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.down_proj = nn.Linear(hidden_dim, dim, bias=False)
        self.ops: OpSet = REF_OPS

    def forward(self, x):
        return self.down_proj(self.ops.act(self.gate_proj(x), self.activation) * self.up_proj(x))


class Block(nn.Module):
    """Pre-norm attention and FFN with residuals; with ``cfg.sandwich_norms`` each branch's
    output is normalized too (``post_attn_norm``, ``post_ffn_norm``) before the residual add."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp: nn.Module = GatedFFN(cfg.dim, cfg.hidden_dim, cfg.activation)
        if cfg.sandwich_norms:
            self.post_attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
            self.post_ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.sandwich = cfg.sandwich_norms

    def forward(self, x, cos, sin, cache=None, mask=None):
        a = self.attn(self.attn_norm(x), cos, sin, cache, mask)
        x = x + (self.post_attn_norm(a) if self.sandwich else a)
        h = self.mlp(self.ffn_norm(x))
        router_logits = None
        if isinstance(h, tuple):  # an MoE FFN returns (hidden, router_logits)
            h, router_logits = h
        if self.sandwich:
            h = self.post_ffn_norm(h)
        return x + h, router_logits


class Llama(nn.Module):
    """LLaMA decoder. ``model(input_ids)`` -> logits float32[B, T, vocab]."""

    def __init__(self, cfg: LlamaConfig):
        from nli.inputs import check_alloc

        check_alloc(4 * (cfg.param_count() + cfg.rope_count()), "a model of this config")
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self.build_rope()
        self.ops: OpSet = REF_OPS

    def build_rope(self) -> None:
        """(Re)build the RoPE tables (non-persistent float32 buffers): ``rope_cos``/``rope_sin``,
        and ``rope_cos_local``/``rope_sin_local`` when the local layers have a base of their
        own."""
        cfg = self.cfg
        cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta, cfg.rope_freq_factors)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        if cfg.has_local_rope:
            cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta_local)
            self.register_buffer("rope_cos_local", cos, persistent=False)
            self.register_buffer("rope_sin_local", sin, persistent=False)

    def set_ops(self, ops: OpSet) -> "Llama":
        """Route every module's nonlinear ops through ``ops`` (in place); returns self."""
        for m in self.modules():
            if hasattr(m, "ops"):
                m.ops = ops
        return self

    def forward(
        self,
        input_ids: torch.Tensor,
        return_router_logits: bool = False,
        cache: list | None = None,
        start_pos: int = 0,
        logits_at: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ):
        """input_ids int64[B, T] -> logits float32[B, T, vocab].

        With ``return_router_logits`` also returns the list of router logits
        float32[B*T, E] of the MoE layers (empty for a dense model). ``cache``
        is a list of per-layer dicts for incremental decoding (see generate).
        ``logits_at`` bool[B, T]: compute the output head only at these
        positions and return logits float32[n, vocab] in row-major order (a
        training loss over a few target positions skips most of the head).
        ``valid`` bool[B, start_pos + T]: which tokens (cached and new) are
        real in a LEFT-padded batch; each row then gets its own RoPE positions
        (counting its real tokens) and no query attends to a pad key, so a row
        computes what it would alone. A pad query attends to itself only.
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, seq], got shape {tuple(input_ids.shape)}")
        B, T = input_ids.shape
        if start_pos + T > self.cfg.max_seq_len:
            raise ValueError(
                f"sequence of {start_pos + T} tokens exceeds max_seq_len {self.cfg.max_seq_len}"
            )
        x = self.embed(input_ids)
        if self.cfg.embed_scale != 1.0:  # float32(embed_scale), as transformers' Gemma 3 does
            x = x * torch.tensor(self.cfg.embed_scale, dtype=x.dtype)
        if valid is not None:
            S = start_pos + T
            if valid.shape != (B, S) or valid.dtype != torch.bool:
                raise ValueError(
                    f"valid must be bool[{B}, {S}], got {valid.dtype}{list(valid.shape)}"
                )
            pos = (valid.long().cumsum(1) - 1).clamp(min=0)[
                :, start_pos:
            ]  # [B, T] position among real tokens
        else:
            pos = slice(start_pos, start_pos + T)
        rope = {False: (self.rope_cos[pos], self.rope_sin[pos])}  # [T, hd] or [B, T, hd]
        rope[True] = (
            (self.rope_cos_local[pos], self.rope_sin_local[pos])
            if self.cfg.has_local_rope
            else rope[False]
        )
        masks = dict(zip((False, True), layer_masks(self.cfg, T, start_pos, valid, x.device)))
        routers = []
        for i, layer in enumerate(self.layers):
            local = self.cfg.is_local(i)
            cos, sin = rope[local]
            x, rl = layer(x, cos, sin, None if cache is None else cache[i], masks[local])
            if rl is not None:
                routers.append(rl)
        if logits_at is not None:
            if logits_at.shape != (B, T) or logits_at.dtype != torch.bool:
                raise ValueError(
                    f"logits_at must be bool[{B}, {T}], "
                    f"got {logits_at.dtype}{list(logits_at.shape)}"
                )
            x = x[logits_at]  # [n, D]
        logits = self.lm_head(self.norm(x))
        return (logits, routers) if return_router_logits else logits


@torch.no_grad()
def generate(
    model: Llama, input_ids: torch.Tensor, max_new_tokens: int, eos_id: int | None = None
) -> torch.Tensor:
    """Greedy decoding with a KV cache. input_ids int64[1, T] -> int64[1, T + n]
    (n <= max_new_tokens)."""
    if input_ids.shape[0] != 1:
        raise ValueError("generate decodes one sequence at a time (batch 1)")
    cache = [dict() for _ in model.layers]
    logits = model(input_ids, cache=cache)
    out = [input_ids]
    pos = input_ids.shape[1]
    for _ in range(max_new_tokens):
        nxt = logits[:, -1].argmax(-1, keepdim=True)  # [1, 1]
        out.append(nxt)
        if eos_id is not None and int(nxt) == eos_id:
            break
        logits = model(nxt, cache=cache, start_pos=pos)
        pos += 1
    return torch.cat(out, dim=1)


@torch.no_grad()
def generate_batch(
    model: Llama,
    prompts: list[list[int]],
    max_new_tokens: int,
    eos_id: int | None = None,
    pad_id: int = 0,
) -> list[list[int]]:
    """Greedy decoding of several prompts at once (left-padded, KV cache) -> the new tokens of each
    (up to and including ``eos_id``, at most ``max_new_tokens``).

    Each row sees only its own tokens at its own positions (see ``valid`` in
    :meth:`Llama.forward`), so it decodes what :func:`generate` decodes alone,
    except where the batched GEMMs' different rounding flips a near-tie argmax.
    """
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("generate_batch needs at least one prompt and no empty prompt")
    B, P = len(prompts), max(len(p) for p in prompts)
    ids = torch.full((B, P), pad_id, dtype=torch.long)  # [B, P] left-padded
    valid = torch.zeros(B, P, dtype=torch.bool)
    for b, p in enumerate(prompts):
        ids[b, P - len(p) :] = torch.tensor(p, dtype=torch.long)
        valid[b, P - len(p) :] = True
    dev = model.embed.weight.device  # prompts go where the model is
    ids, valid = ids.to(dev), valid.to(dev)
    cache = [dict() for _ in model.layers]
    logits = model(ids, cache=cache, valid=valid)  # [B, P, V]
    out = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    pos = P
    for step in range(max_new_tokens):
        nxt = logits[:, -1].argmax(-1)  # [B]
        for b, (t, d) in enumerate(zip(nxt.tolist(), done.tolist())):  # one device sync per step
            if not d:
                out[b].append(t)
        if eos_id is not None:
            done |= nxt == eos_id
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        valid = torch.cat([valid, ~done[:, None]], dim=1)  # [B, pos + 1]: finished rows feed pads
        logits = model(nxt[:, None], cache=cache, start_pos=pos, valid=valid)  # [B, 1, V]
        pos += 1
    return out


def init_weights(model: Llama, seed: int = 0, std: float = 0.02) -> Llama:
    """Seeded N(0, std) init of every matrix, ones for norm weights (the tiny test model)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return model
