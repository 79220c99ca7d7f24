"""The ``nli`` attention function of a transformers model: eager attention with the softmax on
an :class:`engine.model.OpSet`.

:func:`register_attention` registers :func:`nli_attention` in
``transformers.AttentionInterface`` under :data:`ATTENTION_NAME` (selected with
``set_attn_implementation`` by :func:`engine.hf_roles.install_roles`). It computes eager
attention (GQA repeat, the model's scaling and softcapping) with ``module.ops.softmax`` on
float32 scores; masked scores are -inf, from the boolean mask transformers builds (causal,
sliding window) through the mask function registered under the same name.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .model import OpSet

ATTENTION_NAME = "nli"
"""The name of the attention (and mask) function registered with transformers."""


def _repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """[B, Hkv, S, hd] -> [B, Hkv * n_rep, S, hd], each KV head repeated n_rep times in place."""
    if n_rep == 1:
        return x
    b, h, s, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


def nli_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    softcap: float | None = None,
    **kwargs,
):
    """transformers' attention-function signature: query [B, H, T, hd], key/value
    [B, Hkv, S, hd], attention_mask bool [B, 1, T, S] (True = attend) or an additive float
    mask -> (output [B, T, H, hd], probabilities [B, H, T, S]); softmax by ``module.ops``."""
    ops = getattr(module, "ops", None)
    if not isinstance(ops, OpSet):
        raise RuntimeError(
            f"{type(module).__name__}: attention implementation {ATTENTION_NAME!r} runs only in "
            "a model wrapped by engine.hf_adapter.HFCausalLM"
        )
    if scaling is None:
        scaling = module.head_dim**-0.5
    n_rep = query.shape[1] // key.shape[1]
    k = _repeat_kv(key, n_rep)
    v = _repeat_kv(value, n_rep)
    scores = torch.matmul(query, k.transpose(2, 3)) * scaling  # [B, H, T, S]
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        m = attention_mask[..., : k.shape[-2]]
        if m.dtype == torch.bool:
            scores = scores.masked_fill(~m, float("-inf"))
        else:  # additive: its most negative value marks a masked score
            scores = (scores + m).masked_fill(m <= torch.finfo(m.dtype).min, float("-inf"))
    p = ops.softmax(scores.float()).to(value.dtype)
    p = F.dropout(p, p=dropout, training=module.training)
    out = torch.matmul(p, v).transpose(1, 2).contiguous()  # [B, T, H, hd]
    return out, p


def _bool_mask(*args, **kwargs):
    """transformers' boolean (sdpa) mask, never skipped: the attention function always gets the
    causal / sliding-window pattern explicitly."""
    from transformers.masking_utils import sdpa_mask

    kwargs["allow_is_causal_skip"] = False
    kwargs["allow_is_bidirectional_skip"] = False
    return sdpa_mask(*args, **kwargs)


def register_attention() -> None:
    """Register ``nli_attention`` and its mask function under :data:`ATTENTION_NAME`."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(ATTENTION_NAME, nli_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, _bool_mask)
