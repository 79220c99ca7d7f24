"""A LLaMA-architecture decoder in torch, with its three nonlinear ops pluggable.

RMSNorm, rotate-half RoPE, grouped-query attention with causal softmax, a
SwiGLU FFN and tied output embeddings. The nonlinear ops (SiLU, RMSNorm,
Softmax) are not called directly: every module that needs one calls its
``ops`` attribute (an :class:`OpSet`), so :func:`engine.substitute` can route
them through the simulated unit without touching the weights.

The FFN of a block is any module returning either a tensor or a
``(hidden, router_logits)`` pair; the MoE package plugs its layer in there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
import math
import numbers

import torch
import torch.nn as nn
import torch.nn.functional as F

from nli.formats import ACTIVATIONS


@dataclass(frozen=True)
class LlamaConfig:
    """Shape of a LLaMA model. ``tiny()`` is the 2-layer, hidden-64 test config."""

    vocab_size: int = 49152
    dim: int = 576
    n_layers: int = 30
    n_heads: int = 9
    n_kv_heads: int = 3
    hidden_dim: int = 1536
    norm_eps: float = 1e-5
    rope_theta: float = 100000.0
    max_seq_len: int = 8192
    tie_embeddings: bool = True
    activation: str = "silu"  # the gated FFN's activation: one of nli.formats.ACTIVATIONS

    def __post_init__(self):
        for k in (
            "vocab_size",
            "dim",
            "n_layers",
            "n_heads",
            "n_kv_heads",
            "hidden_dim",
            "max_seq_len",
        ):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise ValueError(f"LlamaConfig.{k} must be an integer, got {v!r}")
            if int(getattr(self, k)) < 1:
                raise ValueError(f"LlamaConfig.{k} must be >= 1, got {getattr(self, k)}")
        if self.dim % self.n_heads:
            raise ValueError(
                f"LlamaConfig: dim {self.dim} is not a multiple of n_heads {self.n_heads}"
            )
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"LlamaConfig: n_heads {self.n_heads} is not a multiple of "
                f"n_kv_heads {self.n_kv_heads}"
            )
        if (self.dim // self.n_heads) % 2:
            raise ValueError("LlamaConfig: head_dim must be even for RoPE")
        for k in ("norm_eps", "rope_theta"):
            v = getattr(self, k)
            if (
                isinstance(v, bool)
                or not isinstance(v, numbers.Real)
                or not (v > 0 and math.isfinite(v))
            ):
                raise ValueError(f"LlamaConfig.{k} must be finite and > 0, got {v!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"LlamaConfig.activation must be one of {', '.join(ACTIVATIONS)}, "
                f"got {self.activation!r}"
            )
        if not isinstance(self.tie_embeddings, bool):
            raise ValueError(
                f"LlamaConfig.tie_embeddings must be true or false, got {self.tie_embeddings!r}"
            )

    @classmethod
    def from_dict(cls, d) -> "LlamaConfig":
        """The config from a JSON object; ValueError naming an unknown key or a bad value."""
        if not isinstance(d, dict):
            raise ValueError(f"LlamaConfig: expected a JSON object, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(map(str, set(d) - names))
        if unknown:
            raise ValueError(f"LlamaConfig has unknown keys {unknown}")
        return cls(**d)

    def param_count(self) -> int:
        """Number of parameters of :class:`Llama` for this config (exact, for memory estimates)."""
        d, hd = self.dim, self.head_dim
        attn = d * self.n_heads * hd * 2 + d * self.n_kv_heads * hd * 2
        block = attn + 3 * d * self.hidden_dim + 2 * d
        head = 0 if self.tie_embeddings else self.vocab_size * d
        return self.vocab_size * d + head + self.n_layers * block + d

    def rope_count(self) -> int:
        """Number of values in the RoPE cos/sin tables (float32 buffers built with the model)."""
        return 2 * self.max_seq_len * self.head_dim

    def activation_count(self, tokens: int) -> int:
        """Rough peak number of float32 activation values of one forward pass over ``tokens``
        positions (logits, one layer's attention scores and probabilities, FFN hidden states)."""
        t = int(tokens)
        return (
            t * self.vocab_size * 2
            + 3 * self.n_heads * t * t
            + 4 * t * max(self.hidden_dim, self.dim)
        )

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @classmethod
    def tiny(cls, vocab_size: int = 256) -> "LlamaConfig":
        return cls(
            vocab_size=vocab_size,
            dim=64,
            n_layers=2,
            n_heads=4,
            n_kv_heads=2,
            hidden_dim=128,
            max_seq_len=512,
        )

    def to_dict(self) -> dict:
        return asdict(self)


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


def rope_tables(head_dim: int, max_seq: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin tables float32[max_seq, head_dim] for rotate-half RoPE."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    t = torch.arange(max_seq, dtype=torch.float64)
    freqs = torch.outer(t, inv)  # [max_seq, head_dim/2]
    emb = torch.cat([freqs, freqs], dim=-1)  # [max_seq, head_dim]
    return emb.cos().float(), emb.sin().float()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.cfg = cfg
        hd = cfg.head_dim
        self.q_proj = nn.Linear(cfg.dim, cfg.n_heads * hd, bias=False)
        self.k_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False)
        self.v_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * hd, cfg.dim, bias=False)
        self.ops: OpSet = REF_OPS

    def forward(self, x, cos, sin, cache=None, mask=None):
        """x [B, T, D]; cos/sin [T, hd] or per row [B, T, hd]; mask bool [T, S] or [B, 1, T, S]
        (True = may attend; default causal)."""
        B, T, _ = x.shape
        c = self.cfg
        if cos.dim() == 3:
            cos, sin = cos[:, None], sin[:, None]  # [B, 1, T, hd], broadcast over heads
        q = self.q_proj(x).view(B, T, c.n_heads, c.head_dim).transpose(1, 2)  # [B, H, T, hd]
        k = self.k_proj(x).view(B, T, c.n_kv_heads, c.head_dim).transpose(1, 2)  # [B, Hkv, T, hd]
        v = self.v_proj(x).view(B, T, c.n_kv_heads, c.head_dim).transpose(1, 2)  # [B, Hkv, T, hd]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            if cache.get("k") is not None:
                k = torch.cat([cache["k"], k], dim=2)  # [B, Hkv, S, hd]
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        S = k.shape[2]
        rep = c.n_heads // c.n_kv_heads
        k = k.repeat_interleave(rep, dim=1)  # [B, H, S, hd]
        v = v.repeat_interleave(rep, dim=1)  # [B, H, S, hd]
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(c.head_dim))  # [B, H, T, S]
        if mask is None:  # causal: query t (absolute position S-T+t) sees keys <= its position
            mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
        scores = scores.masked_fill(~mask, float("-inf"))
        p = self.ops.softmax(scores).to(v.dtype)
        out = (p @ v).transpose(1, 2).reshape(B, T, c.n_heads * c.head_dim)  # [B, T, H*hd]
        return self.o_proj(out)


class Block(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp: nn.Module = GatedFFN(cfg.dim, cfg.hidden_dim, cfg.activation)

    def forward(self, x, cos, sin, cache=None, mask=None):
        x = x + self.attn(self.attn_norm(x), cos, sin, cache, mask)
        h = self.mlp(self.ffn_norm(x))
        router_logits = None
        if isinstance(h, tuple):  # an MoE FFN returns (hidden, router_logits)
            h, router_logits = h
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
        cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.ops: OpSet = REF_OPS

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
        mask = None
        if valid is None:
            cos = self.rope_cos[start_pos : start_pos + T]  # [T, hd]
            sin = self.rope_sin[start_pos : start_pos + T]
        else:
            S = start_pos + T
            if valid.shape != (B, S) or valid.dtype != torch.bool:
                raise ValueError(
                    f"valid must be bool[{B}, {S}], got {valid.dtype}{list(valid.shape)}"
                )
            pos = (valid.long().cumsum(1) - 1).clamp(min=0)[
                :, start_pos:
            ]  # [B, T] position among real tokens
            cos, sin = self.rope_cos[pos], self.rope_sin[pos]  # [B, T, hd]
            dev = input_ids.device
            causal = torch.ones(T, S, dtype=torch.bool, device=dev).tril(diagonal=S - T)  # [T, S]
            own = torch.zeros(T, S, dtype=torch.bool, device=dev)
            own[:, start_pos:] = torch.eye(
                T, dtype=torch.bool, device=dev
            )  # [T, S] each query's own key
            mask = (causal & valid[:, None, :]) | own  # [B, T, S]
            mask = mask[:, None]  # [B, 1, T, S], broadcast over heads
        routers = []
        for i, layer in enumerate(self.layers):
            x, rl = layer(x, cos, sin, None if cache is None else cache[i], mask)
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
