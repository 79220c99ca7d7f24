"""Test helpers: tiny transformers models of the native architectures and their GGUF files.

:func:`hf_tiny` builds a seeded, tiny ``LlamaForCausalLM`` (Llama 3.1's RoPE scaling) /
``Gemma3ForCausalLM`` / ``Qwen2ForCausalLM`` / ``Qwen3ForCausalLM`` (random norm weights and
biases, so a swapped or offset tensor shows); :func:`write_gguf` writes it as an F32 GGUF the way
llama.cpp's converter does (its tensor names, Gemma's norm weights stored as ``w + 1``, Q/K rows
permuted for llama only, llama3 RoPE factors as ``rope_freqs.weight``).
"""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch

transformers = pytest.importorskip(
    "transformers", reason="needs transformers: pip install 'transformers>=5'"
)

VOCAB = 96
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 10000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}
SLIDING_WINDOW = 5  # tiny, so a 16-token sequence crosses it
GLOBAL_EVERY = 2  # layers 0 and 2 local, layer 1 global

# Hugging Face module suffix (after "model.layers.N.") -> GGUF suffix (after "blk.N."), per arch
_COMMON = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
BLOCK_NAMES = {
    "gemma3": {
        **_COMMON,
        "post_attention_layernorm.weight": "post_attention_norm.weight",
        "pre_feedforward_layernorm.weight": "ffn_norm.weight",
        "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
    },
    "llama": {**_COMMON, "post_attention_layernorm.weight": "ffn_norm.weight"},
    "qwen2": {**_COMMON, "post_attention_layernorm.weight": "ffn_norm.weight"},
    "qwen3": {**_COMMON, "post_attention_layernorm.weight": "ffn_norm.weight"},
}


def hf_config(arch: str):
    """A tiny transformers config of ``arch`` (3 layers, hidden 64)."""
    common = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
    )
    if arch == "gemma3":
        return transformers.Gemma3TextConfig(
            **common,
            head_dim=32,  # heads * head_dim = 128 != hidden 64
            query_pre_attn_scalar=32,
            sliding_window=SLIDING_WINDOW,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            rope_parameters={
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
            },
            tie_word_embeddings=True,
        )
    if arch == "llama":  # Llama 3.1's RoPE scaling, short original context so it matters here
        return transformers.LlamaConfig(
            **common,
            rope_parameters=dict(LLAMA3_ROPE),
            tie_word_embeddings=True,
        )
    if arch == "qwen2":  # untied output head
        return transformers.Qwen2Config(
            **common,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            tie_word_embeddings=False,
        )
    if arch == "qwen3":
        return transformers.Qwen3Config(
            **common,
            head_dim=32,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            tie_word_embeddings=True,
        )
    raise ValueError(arch)


def hf_tiny(arch: str, seed: int = 0):
    """The seeded tiny transformers causal LM of ``arch`` (eager attention, eval mode)."""
    cls = {
        "llama": transformers.LlamaForCausalLM,
        "gemma3": transformers.Gemma3ForCausalLM,
        "qwen2": transformers.Qwen2ForCausalLM,
        "qwen3": transformers.Qwen3ForCausalLM,
    }[arch]
    cfg = hf_config(arch)
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = cls(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):  # Gemma: the offset from 1; Qwen: the weight
                lo = -0.5 if arch == "gemma3" else 0.5
                p.copy_(torch.rand(p.shape, generator=g) + lo)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def llama3_rope_factors(hd: int, rope: dict) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf (LlamaModel.generate_extra_tensors): float32[hd / 2]
    divisors of the RoPE frequencies for ``rope_type`` "llama3"."""
    import math

    base, factor = rope["rope_theta"], rope["factor"]
    lo, hi, old = (
        rope["low_freq_factor"],
        rope["high_freq_factor"],
        rope["original_max_position_embeddings"],
    )
    freqs = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    out = []
    for freq in freqs.tolist():
        wavelen = 2 * math.pi / freq
        if wavelen < old / hi:
            out.append(1.0)
        elif wavelen > old / lo:
            out.append(factor)
        else:
            smooth = (old / wavelen - lo) / (hi - lo)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def write_gguf(path, hf_model, arch: str, drop: tuple[str, ...] = ()) -> str:
    """Write ``hf_model`` as an F32 GGUF of ``arch`` like llama.cpp's converter (leaving out the
    GGUF tensors named in ``drop``)."""
    c = hf_model.config
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_vocab_size(c.vocab_size)
    hd = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    w.add_key_length(hd)
    w.add_value_length(hd)
    if arch == "gemma3":
        w.add_rope_freq_base(c.rope_parameters["full_attention"]["rope_theta"])
        w.add_sliding_window(c.sliding_window)
        w.add_uint32(f"{arch}.attention.sliding_window_pattern", GLOBAL_EVERY)
    else:
        w.add_rope_freq_base(c.rope_parameters["rope_theta"])
    sd = {k: v.detach().float().numpy() for k, v in hf_model.state_dict().items()}
    if arch == "llama":  # llama.cpp's converter: Q/K rows for interleaved RoPE, llama3 factors
        for i in range(c.num_hidden_layers):
            for name, n in (("q", c.num_attention_heads), ("k", c.num_key_value_heads)):
                key = f"model.layers.{i}.self_attn.{name}_proj.weight"
                q = sd[key]
                sd[key] = q.reshape(n, 2, q.shape[0] // n // 2, -1).swapaxes(1, 2).reshape(q.shape)
    out = {"token_embd.weight": sd["model.embed_tokens.weight"]}
    out["output_norm.weight"] = sd["model.norm.weight"]
    if not c.tie_word_embeddings:
        out["output.weight"] = sd["lm_head.weight"]
    names = BLOCK_NAMES[arch]
    for i in range(c.num_hidden_layers):
        for hf_suffix, g_suffix in names.items():
            key = f"model.layers.{i}.{hf_suffix}"
            if key in sd:
                out[f"blk.{i}.{g_suffix}"] = sd[key]
    if arch == "llama":
        out["rope_freqs.weight"] = llama3_rope_factors(hd, c.rope_parameters)
    for name, arr in out.items():
        if name in drop:
            continue
        if arch == "gemma3" and name.endswith("norm.weight"):
            arr = arr + np.float32(1)  # llama.cpp's Gemma converter: data_torch + 1
        w.add_tensor(name, np.ascontiguousarray(arr, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(path)
