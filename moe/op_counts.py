"""Per-token count of the nonlinear work a (dense or MoE) decoder sends through the unit.

For a prefill of ``seq`` tokens, per token on average:

- ``silu``: elements of the model's activation (``cfg.activation``; the key keeps its old
  name); a dense FFN sends ``hidden_dim``, an MoE layer ``top_k * expert_hidden_dim`` (only
  the active experts run).
- ``rmsnorm``: rows; 2 of ``dim`` elements per block (4 with ``sandwich_norms``) + the final
  norm, and with ``qk_norm`` ``n_heads + n_kv_heads`` rows of ``head_dim`` per block. Each row
  costs its length in element passes and one rsqrt lookup.
- ``attention_softmax``: ``n_heads`` rows per block. Rows are counted by their unmasked
  length: ``(seq + 1) / 2`` on average for a causal layer, at most ``sliding_window`` on a
  local one (masked entries are -inf and give exact zeros without a lookup).
- ``router_softmax``: one row of ``num_experts`` per MoE layer. Each softmax
  row costs one exp lookup per element and one reciprocal per row.

The counts are exact arithmetic on the config (model output, not a measurement).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from engine.model import LlamaConfig

from .config import MoEConfig


@dataclass(frozen=True)
class OpCount:
    """Per-token work of one op: ``rows`` composite rows and ``elements`` lookups/element passes."""

    rows: float
    elements: float


def nonlinear_counts(cfg: LlamaConfig, moe: MoEConfig | None, seq: int) -> dict[str, OpCount]:
    """{op: OpCount per token} for a prefill of ``seq`` tokens (see module docstring)."""
    if seq < 1:
        raise ValueError(f"seq must be >= 1, got {seq}")
    moe_layers = set(moe.layers) if moe is not None else set()
    silu = 0.0
    for i in range(cfg.n_layers):
        silu += moe.top_k * moe.expert_hidden_dim if i in moe_layers else cfg.hidden_dim
    norm_rows = (4 if cfg.sandwich_norms else 2) * cfg.n_layers + 1
    norm_elems = norm_rows * cfg.dim
    if cfg.qk_norm:
        qk_rows = (cfg.n_heads + cfg.n_kv_heads) * cfg.n_layers
        norm_rows += qk_rows
        norm_elems += qk_rows * cfg.head_dim
    att_rows = cfg.n_heads * cfg.n_layers
    att_elems = 0.0
    for i in range(cfg.n_layers):  # keys seen by the query at position t (1-based), averaged
        w = cfg.sliding_window if cfg.is_local(i) and cfg.sliding_window < seq else seq
        att_elems += cfg.n_heads * (w * (w + 1) / 2 + (seq - w) * w) / seq
    router_rows = len(moe_layers)
    return {
        "silu": OpCount(rows=0.0, elements=float(silu)),
        "rmsnorm": OpCount(rows=float(norm_rows), elements=float(norm_elems)),
        "attention_softmax": OpCount(rows=float(att_rows), elements=float(att_elems)),
        "router_softmax": OpCount(
            rows=float(router_rows), elements=float(router_rows * (moe.num_experts if moe else 0))
        ),
    }


def lookups(counts: dict[str, OpCount]) -> dict[str, float]:
    """Table lookups per token by table: silu elements, exp per softmax element,
    one reciprocal per softmax row, one rsqrt per RMSNorm row."""
    return {
        "silu": counts["silu"].elements,
        "exp": counts["attention_softmax"].elements + counts["router_softmax"].elements,
        "reciprocal": counts["attention_softmax"].rows + counts["router_softmax"].rows,
        "rsqrt": counts["rmsnorm"].rows,
    }


def counts_to_dict(counts: dict[str, OpCount]) -> dict:
    """JSON-able form of :func:`nonlinear_counts`."""
    return {k: asdict(v) for k, v in counts.items()}
