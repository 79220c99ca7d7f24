"""Grouped-query attention with rotate-half RoPE, and the masks of its global and local layers.

:class:`Attention` is one block's attention: optional Q/K/V biases, optional per-head QK RMSNorm
(through ``ops.rmsnorm``, before RoPE), RoPE, a scale, and the masked softmax (through
``ops.softmax``). :func:`layer_masks` builds the boolean masks (True = may attend) of the global
(causal) and local (sliding-window causal) layers for a forward call, with or without a
left-padding ``valid`` mask and a KV cache.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .model_config import LlamaConfig


def rope_tables(
    head_dim: int, max_seq: int, theta: float, freq_factors=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin tables float32[max_seq, head_dim] for rotate-half RoPE; ``freq_factors``
    (head_dim / 2 numbers) divide the frequencies (llama.cpp's ``rope_freqs``)."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    if freq_factors is not None:
        inv = inv / torch.tensor(freq_factors, dtype=torch.float64)
    t = torch.arange(max_seq, dtype=torch.float64)
    freqs = torch.outer(t, inv)  # [max_seq, head_dim/2]
    emb = torch.cat([freqs, freqs], dim=-1)  # [max_seq, head_dim]
    return emb.cos().float(), emb.sin().float()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def layer_masks(
    cfg: LlamaConfig, T: int, start_pos: int, valid: torch.Tensor | None, device
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(global mask, local mask) for ``T`` new queries after ``start_pos`` cached tokens.

    Without ``valid`` the global mask is None (plain causal, built by :class:`Attention`) and the
    local one bool[T, S] (S = start_pos + T); with ``valid`` bool[B, S] (left padding) both are
    bool[B, 1, T, S]: causal over real keys, a pad query seeing only itself. The window counts
    real-token positions. The local mask is None when the config has no local layer.
    """
    S = start_pos + T
    causal = torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)  # [T, S]
    has_local = any(cfg.is_local(i) for i in range(cfg.n_layers))
    if valid is None:
        if not has_local:
            return None, None
        q = torch.arange(start_pos, S, device=device)[:, None]  # [T, 1]
        k = torch.arange(S, device=device)[None, :]  # [1, S]
        return None, causal & (q - k < cfg.sliding_window)
    own = torch.zeros(T, S, dtype=torch.bool, device=device)
    own[:, start_pos:] = torch.eye(T, dtype=torch.bool, device=device)  # [T, S] own key
    glob = (causal & valid[:, None, :]) | own  # [B, T, S]
    local = None
    if has_local:
        pos = valid.long().cumsum(1) - 1  # [B, S] position among real tokens
        dist = pos[:, start_pos:, None] - pos[:, None, :]  # [B, T, S]
        local = (causal & valid[:, None, :] & (dist < cfg.sliding_window)) | own
        local = local[:, None]
    return glob[:, None], local  # [B, 1, T, S], broadcast over heads


class Attention(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        from .model import REF_OPS, RMSNorm

        super().__init__()
        self.cfg = cfg
        hd, bias = cfg.head_dim, cfg.qkv_bias
        self.q_proj = nn.Linear(cfg.dim, cfg.n_heads * hd, bias=bias)
        self.k_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=bias)
        self.v_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=bias)
        self.o_proj = nn.Linear(cfg.n_heads * hd, cfg.dim, bias=False)
        if cfg.qk_norm:
            self.q_norm = RMSNorm(hd, cfg.norm_eps)
            self.k_norm = RMSNorm(hd, cfg.norm_eps)
        self.ops = REF_OPS

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
        if c.qk_norm:  # per head, over hd
            q, k = self.q_norm(q), self.k_norm(k)
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
        scores = (q @ k.transpose(-2, -1)) * c.attn_scale  # [B, H, T, S]
        if mask is None:  # causal: query t (absolute position S-T+t) sees keys <= its position
            mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
        scores = scores.masked_fill(~mask, float("-inf"))
        p = self.ops.softmax(scores).to(v.dtype)
        out = (p @ v).transpose(1, 2).reshape(B, T, c.n_heads * c.head_dim)  # [B, T, H*hd]
        return self.o_proj(out)
