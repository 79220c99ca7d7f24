"""What each native architecture's GGUF holds: metadata keys -> :class:`LlamaConfig`, tensor names.

Data, read by :mod:`engine.gguf_loader`:

* :data:`SPECS`: per ``general.architecture``: whether llama.cpp's converter permuted the Q/K
  rows for interleaved RoPE (only ``llama``: its ``LlamaModel.modify_tensors``; Gemma 3 and
  Qwen2/3 keep Hugging Face's rotate-half order), and the offset its converter added to the
  RMSNorm weights (Gemma: ``w + 1``, every tensor named ``*norm.weight``).
* :data:`BLOCK_TENSORS`: GGUF tensor suffix -> model parameter, shape, and the config feature
  that decides whether the tensor exists.

Gemma's RMSNorm computes ``x_hat * (1 + w)``. llama.cpp stores ``g = w + 1`` (float32), and
transformers' GGUF loader takes ``w = g - 1`` back and computes ``1.0 + w`` in float32, so the
effective weight a model must use to compute what transformers computes is
``float32(1 + float32(g - 1))`` (:func:`effective_norm_weight`; equal to ``g`` except where the
subtraction rounds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nli.formats import ARCHITECTURES

from .model_config import GEMMA3_GLOBAL_EVERY, GEMMA3_ROPE_THETA_LOCAL, LlamaConfig


class GGUFError(ValueError):
    """A GGUF file that cannot be loaded: corrupt, truncated, wrong architecture or missing."""


@dataclass(frozen=True)
class ArchSpec:
    permute_qk: bool = False  # llama.cpp permuted attn_q/attn_k rows for interleaved RoPE
    norm_offset: float = 0.0  # the GGUF's RMSNorm weights are w + norm_offset


SPECS = {
    "llama": ArchSpec(permute_qk=True),
    "gemma3": ArchSpec(norm_offset=1.0),
    "qwen2": ArchSpec(),
    "qwen3": ArchSpec(),
}
assert tuple(SPECS) == ARCHITECTURES

# (GGUF suffix after "blk.N.", model suffix after "layers.N.", shape, config feature or None)
# Shape symbols: d = dim, q = n_heads * head_dim, kv = n_kv_heads * head_dim, hd = head_dim,
# f = hidden_dim.
BLOCK_TENSORS = (
    ("attn_norm.weight", "attn_norm.weight", ("d",), None),
    ("attn_q.weight", "attn.q_proj.weight", ("q", "d"), None),
    ("attn_k.weight", "attn.k_proj.weight", ("kv", "d"), None),
    ("attn_v.weight", "attn.v_proj.weight", ("kv", "d"), None),
    ("attn_q.bias", "attn.q_proj.bias", ("q",), "qkv_bias"),
    ("attn_k.bias", "attn.k_proj.bias", ("kv",), "qkv_bias"),
    ("attn_v.bias", "attn.v_proj.bias", ("kv",), "qkv_bias"),
    ("attn_q_norm.weight", "attn.q_norm.weight", ("hd",), "qk_norm"),
    ("attn_k_norm.weight", "attn.k_norm.weight", ("hd",), "qk_norm"),
    ("attn_output.weight", "attn.o_proj.weight", ("d", "q"), None),
    ("post_attention_norm.weight", "post_attn_norm.weight", ("d",), "sandwich_norms"),
    ("ffn_norm.weight", "ffn_norm.weight", ("d",), None),
    ("ffn_gate.weight", "mlp.gate_proj.weight", ("f", "d"), None),
    ("ffn_up.weight", "mlp.up_proj.weight", ("f", "d"), None),
    ("ffn_down.weight", "mlp.down_proj.weight", ("d", "f"), None),
    ("post_ffw_norm.weight", "post_ffn_norm.weight", ("d",), "sandwich_norms"),
)

# metadata that changes the forward in a way the model does not implement -> the feature's name
UNSUPPORTED_KEYS = {
    "final_logit_softcapping": "final logit softcapping",
    "attn_logit_softcapping": "attention logit softcapping",
    "rope.scaling.type": "RoPE scaling",
}


def spec(arch) -> ArchSpec:
    """The spec of ``arch``; GGUFError naming it and the supported list when there is none."""
    if arch not in SPECS:
        raise GGUFError(
            f"GGUF architecture {arch!r} is not supported; supported: {', '.join(ARCHITECTURES)}"
        )
    return SPECS[arch]


def tensor_shape(cfg: LlamaConfig, symbols: tuple[str, ...]) -> tuple[int, ...]:
    sizes = {
        "d": cfg.dim,
        "q": cfg.n_heads * cfg.head_dim,
        "kv": cfg.n_kv_heads * cfg.head_dim,
        "hd": cfg.head_dim,
        "f": cfg.hidden_dim,
    }
    return tuple(sizes[s] for s in symbols)


def block_tensors(cfg: LlamaConfig):
    """[(GGUF suffix, model suffix, shape)] of one block of a model of ``cfg``."""
    return [
        (g, m, tensor_shape(cfg, shape))
        for g, m, shape, feature in BLOCK_TENSORS
        if feature is None or getattr(cfg, feature)
    ]


def effective_norm_weight(w: np.ndarray, arch: str) -> np.ndarray:
    """float32 RMSNorm weight as stored in the GGUF -> the weight the model multiplies by (see the
    module docstring)."""
    off = spec(arch).norm_offset
    if not off:
        return w
    one = np.float32(off)
    return np.float32(one + (w.astype(np.float32) - one))


def read_config(reader, field_value, dequantized) -> LlamaConfig:
    """The :class:`LlamaConfig` of an open GGUF reader (``field_value(reader, key, default=None,
    required=True)`` reads one metadata value, ``dequantized(reader, name, shape)`` one tensor).
    GGUFError for an unsupported architecture or feature, or metadata that makes no valid
    config."""
    arch = field_value(reader, "general.architecture")
    spec(arch)
    p = arch + "."

    def get(key, default=None, required=True):
        return field_value(reader, p + key, default=default, required=required)

    for key, feature in UNSUPPORTED_KEYS.items():
        v = get(key, required=False)
        if v is not None and v not in ("none", "", 0, 0.0):
            raise GGUFError(f"GGUF {arch} model uses {feature} ({p}{key} = {v!r}): not supported")
    names = {t.name for t in reader.tensors}
    n_heads = int(get("attention.head_count"))
    dim = int(get("embedding_length"))
    head_dim = int(get("attention.key_length", default=dim // n_heads))
    value_dim = int(get("attention.value_length", default=head_dim))
    if value_dim != head_dim:
        raise GGUFError(f"key_length {head_dim} != value_length {value_dim} is not supported")
    rope_dim = int(get("rope.dimension_count", default=head_dim))
    if rope_dim != head_dim:
        raise GGUFError(
            f"partial RoPE (rope.dimension_count {rope_dim} != head_dim {head_dim}) "
            "is not supported"
        )
    tokens = field_value(reader, "tokenizer.ggml.tokens", default=None, required=False)
    vocab = int(get("vocab_size", default=len(tokens) if tokens is not None else None))
    shape = dict(
        vocab_size=vocab,
        dim=dim,
        n_layers=int(get("block_count")),
        n_heads=n_heads,
        n_kv_heads=int(get("attention.head_count_kv", default=n_heads)),
        hidden_dim=int(get("feed_forward_length")),
        norm_eps=float(np.float32(get("attention.layer_norm_rms_epsilon"))),
        rope_theta=float(get("rope.freq_base", default=10000.0)),
        max_seq_len=int(get("context_length")),
        tie_embeddings="output.weight" not in names,
    )
    if head_dim != dim // n_heads or dim % n_heads:
        shape["head_dim_override"] = head_dim
    if "rope_freqs.weight" in names:  # Llama 3.1+: llama3 RoPE scaling as frequency divisors
        shape["rope_freq_factors"] = tuple(
            dequantized(reader, "rope_freqs.weight", (rope_dim // 2,))
        )
    if arch == "gemma3":
        pattern = get("attention.sliding_window_pattern", default=GEMMA3_GLOBAL_EVERY)
        if isinstance(pattern, (list, tuple)):
            raise GGUFError("a per-layer sliding_window_pattern list is not supported")
        shape.update(
            sliding_window=int(get("attention.sliding_window")),
            global_every=int(pattern),
            rope_theta_local=float(get("rope.freq_base_swa", default=GEMMA3_ROPE_THETA_LOCAL)),
            # llama.cpp's f_attention_scale (all sizes but 27B) and transformers'
            # query_pre_attn_scalar ** -0.5 (256 for every released size but 27B)
            query_scale=float(head_dim) ** -0.5,
        )
    elif get("attention.sliding_window", required=False) not in (None, 0):
        raise GGUFError(f"GGUF {arch} model uses a sliding window: not supported for {arch}")
    return LlamaConfig.for_arch(arch, **shape)
