"""The shape and features of an :class:`engine.model.Llama` decoder: :class:`LlamaConfig`.

One config class covers every native architecture (``nli.formats.ARCHITECTURES``): the LLaMA
fields keep their meaning and defaults (an old config dict loads unchanged and builds the same
model), and each architectural feature is a field of its own whose default is LLaMA's:

* ``qkv_bias``: Q, K and V projections have biases (Qwen2).
* ``qk_norm``: an RMSNorm over each head's query and key, before RoPE (Qwen3, Gemma 3).
* ``sandwich_norms``: RMSNorms after attention and after the FFN too, before the residual add
  (Gemma 3).
* ``embed_scale``: the token embeddings are multiplied by float32(embed_scale) (Gemma 3:
  sqrt(dim), spelled ``dim ** 0.5`` as transformers does).
* ``query_scale``: the attention scores' scale (default ``1 / sqrt(head_dim)``; Gemma 3:
  ``query_pre_attn_scalar ** -0.5``).
* ``sliding_window``, ``global_every``: with ``sliding_window`` > 0, layer ``i`` is global
  (causal) when ``(i + 1) % global_every == 0`` and local otherwise: a query sees keys at most
  ``sliding_window - 1`` positions back (transformers' ``kv_idx > q_idx - sliding_window``).
* ``rope_theta_local``: the RoPE base of the local layers (default ``rope_theta``).
* ``head_dim_override``: the head size when it is not ``dim // n_heads`` (Gemma 3 270M:
  4 heads of 256 on a hidden size of 640; Qwen3).
* ``rope_freq_factors``: ``head_dim / 2`` divisors of the global RoPE frequencies (Llama 3.1+'s
  ``llama3`` RoPE scaling, stored by llama.cpp as the tensor ``rope_freqs.weight``).

RMSNorm weights are always the *effective* ones, ``rmsnorm(x) = x * rsqrt(ms + eps) * w``:
Gemma's ``(1 + w)`` is folded in by whoever loads the weights (:mod:`engine.gguf_arch`).
``arch`` is the architecture's name, for loaders and reports; the fields above decide the
forward. :meth:`LlamaConfig.for_arch` fills them in for a named architecture.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
import math
import numbers

from nli.formats import ACTIVATIONS, ARCHITECTURES

GEMMA3_GLOBAL_EVERY = 6  # five local layers, then one global (transformers' sliding_window_pattern)
GEMMA3_ROPE_THETA_LOCAL = 10000.0  # RoPE base of Gemma 3's local layers (not in the GGUF)

ARCH_FEATURES = {
    "llama": {},
    "gemma3": {
        "activation": "gelu_tanh",
        "qk_norm": True,
        "sandwich_norms": True,
        "global_every": GEMMA3_GLOBAL_EVERY,
        "rope_theta_local": GEMMA3_ROPE_THETA_LOCAL,
    },
    "qwen2": {"qkv_bias": True},
    "qwen3": {"qk_norm": True},
}
"""Architecture -> the feature fields it sets (beyond its shape); Gemma 3's ``embed_scale`` is
computed from ``dim`` in :meth:`LlamaConfig.for_arch`."""
assert tuple(ARCH_FEATURES) == ARCHITECTURES


def _is_int(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, numbers.Integral)


def _is_pos_real(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, numbers.Real) and v > 0 and math.isfinite(v)


@dataclass(frozen=True)
class LlamaConfig:
    """Shape and features of a decoder. ``tiny()`` is the 2-layer, hidden-64 test config."""

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
    arch: str = "llama"  # one of nli.formats.ARCHITECTURES
    head_dim_override: int | None = None  # None: dim // n_heads
    qkv_bias: bool = False
    qk_norm: bool = False
    sandwich_norms: bool = False
    embed_scale: float = 1.0
    query_scale: float | None = None  # None: 1 / sqrt(head_dim)
    sliding_window: int = 0  # 0: every layer global (causal)
    global_every: int = 1
    rope_theta_local: float | None = None  # None: rope_theta
    rope_freq_factors: tuple[float, ...] | None = None  # None: plain RoPE frequencies

    def __post_init__(self):
        for k in (
            "vocab_size",
            "dim",
            "n_layers",
            "n_heads",
            "n_kv_heads",
            "hidden_dim",
            "max_seq_len",
            "global_every",
        ):
            v = getattr(self, k)
            if not _is_int(v):
                raise ValueError(f"LlamaConfig.{k} must be an integer, got {v!r}")
            if int(getattr(self, k)) < 1:
                raise ValueError(f"LlamaConfig.{k} must be >= 1, got {getattr(self, k)}")
        if not _is_int(self.sliding_window) or self.sliding_window < 0:
            raise ValueError(
                f"LlamaConfig.sliding_window must be an integer >= 0, got {self.sliding_window!r}"
            )
        if self.head_dim_override is not None:
            v = self.head_dim_override
            if not _is_int(v) or v < 1:
                raise ValueError(
                    f"LlamaConfig.head_dim_override must be an integer >= 1, got {v!r}"
                )
        elif self.dim % self.n_heads:
            raise ValueError(
                f"LlamaConfig: dim {self.dim} is not a multiple of n_heads {self.n_heads}"
            )
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"LlamaConfig: n_heads {self.n_heads} is not a multiple of "
                f"n_kv_heads {self.n_kv_heads}"
            )
        if self.head_dim % 2:
            raise ValueError("LlamaConfig: head_dim must be even for RoPE")
        for k in ("norm_eps", "rope_theta", "embed_scale"):
            v = getattr(self, k)
            if not _is_pos_real(v):
                raise ValueError(f"LlamaConfig.{k} must be finite and > 0, got {v!r}")
        for k in ("query_scale", "rope_theta_local"):
            v = getattr(self, k)
            if v is not None and not _is_pos_real(v):
                raise ValueError(f"LlamaConfig.{k} must be finite and > 0 (or null), got {v!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"LlamaConfig.activation must be one of {', '.join(ACTIVATIONS)}, "
                f"got {self.activation!r}"
            )
        if self.arch not in ARCHITECTURES:
            raise ValueError(
                f"LlamaConfig.arch must be one of {', '.join(ARCHITECTURES)}, got {self.arch!r}"
            )
        if self.rope_freq_factors is not None:
            ff = self.rope_freq_factors
            if isinstance(ff, (str, bytes)) or not hasattr(ff, "__len__"):
                raise ValueError(f"LlamaConfig.rope_freq_factors must be a list, got {ff!r}")
            if len(ff) != self.head_dim // 2 or not all(_is_pos_real(v) for v in ff):
                raise ValueError(
                    f"LlamaConfig.rope_freq_factors must hold head_dim / 2 = {self.head_dim // 2} "
                    "finite numbers > 0"
                )
            object.__setattr__(self, "rope_freq_factors", tuple(float(v) for v in ff))
        for k in ("tie_embeddings", "qkv_bias", "qk_norm", "sandwich_norms"):
            if not isinstance(getattr(self, k), bool):
                raise ValueError(f"LlamaConfig.{k} must be true or false, got {getattr(self, k)!r}")

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

    @classmethod
    def for_arch(cls, arch: str, **shape) -> "LlamaConfig":
        """The config of architecture ``arch`` with the given shape fields: its features from
        :data:`ARCH_FEATURES` (a field in ``shape`` overrides them)."""
        if arch not in ARCH_FEATURES:
            raise ValueError(
                f"unsupported architecture {arch!r}: supported are {', '.join(ARCHITECTURES)}"
            )
        kw = dict(ARCH_FEATURES[arch], arch=arch)
        if arch == "gemma3":
            kw["embed_scale"] = shape.get("dim", cls.dim) ** 0.5  # transformers' hidden_size**0.5
        kw.update(shape)
        return cls(**kw)

    # ------------------------------------------------------------------ derived
    @property
    def head_dim(self) -> int:
        if self.head_dim_override is not None:
            return self.head_dim_override
        return self.dim // self.n_heads

    @property
    def attn_scale(self) -> float:
        """The scale of the attention scores ``q @ k^T``."""
        if self.query_scale is not None:
            return self.query_scale
        return 1.0 / math.sqrt(self.head_dim)

    def is_local(self, layer: int) -> bool:
        """Whether block ``layer`` attends within the sliding window (else causal, global)."""
        return self.sliding_window > 0 and (layer + 1) % self.global_every != 0

    @property
    def has_local_rope(self) -> bool:
        """Local layers use RoPE tables of their own (a different base)."""
        return (
            self.sliding_window > 0
            and self.rope_theta_local is not None
            and self.rope_theta_local != self.rope_theta
            and any(self.is_local(i) for i in range(self.n_layers))
        )

    def param_count(self) -> int:
        """Number of parameters of :class:`Llama` for this config (exact, for memory estimates)."""
        d, hd = self.dim, self.head_dim
        qkv_out = (self.n_heads + 2 * self.n_kv_heads) * hd
        attn = d * qkv_out + self.n_heads * hd * d
        attn += qkv_out if self.qkv_bias else 0
        attn += 2 * hd if self.qk_norm else 0
        norms = (4 if self.sandwich_norms else 2) * d
        block = attn + 3 * d * self.hidden_dim + norms
        head = 0 if self.tie_embeddings else self.vocab_size * d
        return self.vocab_size * d + head + self.n_layers * block + d

    def rope_count(self) -> int:
        """Number of values in the RoPE cos/sin tables (float32 buffers built with the model)."""
        return 2 * self.max_seq_len * self.head_dim * (2 if self.has_local_rope else 1)

    def activation_count(self, tokens: int) -> int:
        """Rough peak number of float32 activation values of one forward pass over ``tokens``
        positions (logits, one layer's attention scores and probabilities, FFN hidden states)."""
        t = int(tokens)
        return (
            t * self.vocab_size * 2
            + 3 * self.n_heads * t * t
            + 4 * t * max(self.hidden_dim, self.dim, self.n_heads * self.head_dim)
        )

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
