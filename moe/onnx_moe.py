"""ONNX export of the MoE FFN (:class:`moe.layer.MoEFFN`), plugged into
:func:`engine.onnx_model_export.export_model` (``import moe`` registers it with
:func:`engine.register_ffn_exporter`; this module, and onnx, load on export).

The graph mirrors the torch layer with no data-dependent control flow:

- router: ``logits = x @ Wr^T + b`` [N, E]; ``probs`` = the graph writer's
  softmax (the NLI Softmax function with the ``exp`` and ``reciprocal``
  tables when ``softmax`` is substituted, else ONNX Softmax);
- selection: ``TopK(logits or probs, k, largest, sorted)``. ONNX TopK breaks
  exact ties toward the lower index, the same rule as the torch layer's
  stable descending sort (:func:`moe.layer.route_topk`);
- weights: ``GatherElements(probs, experts)`` [N, k], renormalized by their
  sum when the layer renormalizes; scattered into a dense combine matrix
  ``C`` [N, E] (``ScatterElements``), zero off the chosen experts;
- dispatch (dropless, sparse): for each expert e, the token rows that chose
  it are ``NonZero`` of the routing mask, gathered, run through the SwiGLU
  expert (SiLU through the writer, so on the NLI function when substituted),
  scaled by ``C[:, e]`` and added back with ``ScatterND(reduction="add")``.
  An expert that no token chose runs on an empty [0, D] block.

SPRI layers (``principal=True``) export the merged effective weights
``principal + s * residual`` (:meth:`MoEFFN.expert_weights`): inference
needs only their sum.

Numerics against torch: the routing and the NLI ops are the same functions,
but the expert outputs are summed in expert order here and in slot order in
torch, and ORT's GEMMs round differently from torch's, so the logits agree
within a tolerance rather than bit for bit (see tests/test_moe_onnx.py).
"""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from engine.onnx_model_export import GraphWriter
from engine.onnx_ops import I64

from .layer import MoEFFN


def _zeros(g: GraphWriter, like: str) -> str:
    """float32 zeros shaped like ``like``."""
    return g.op(
        "ConstantOfShape",
        g.op("Shape", like),
        value=numpy_helper.from_array(np.zeros(1, np.float32)),
    )


def write_moe_ffn(g: GraphWriter, layer: MoEFFN, x: str, prefix: str) -> str:
    """Nodes of one MoE FFN. x: name of a float32 [B, T, D] value;
    returns the float32 [B, T, D] output name."""
    E, k, D = layer.num_experts, layer.top_k, layer.dim
    flat = g.op("Reshape", x, g.i64([-1, D]))  # [N, D]
    wr = layer.router.weight.detach().float().numpy()  # [E, D]
    br = layer.router.bias.detach().float().numpy()  # [E]
    logits = g.op(
        "Add", g.linear(flat, wr, prefix + "router.weight_t"), g.init(prefix + "router.bias", br)
    )  # [N, E]
    probs = g.softmax(logits)  # [N, E]
    scores = logits if layer.select_on == "logits" else probs
    _, experts = g.op(
        "TopK", scores, g.i64([k]), n_out=2, axis=-1, largest=1, sorted=1
    )  # [N, k] int64
    w = g.op("GatherElements", probs, experts, axis=1)  # [N, k]
    if layer.renormalize:
        w = g.op("Div", w, g.op("ReduceSum", w, g.i64([-1]), keepdims=1))  # [N, k]
    comb = g.op("ScatterElements", _zeros(g, logits), experts, w, axis=1)  # [N, E]
    gate, up, down = (
        t.detach().float().numpy() for t in layer.expert_weights()
    )  # [E,He,D] x2, [E,D,He]
    y = _zeros(g, flat)  # [N, D]
    for e in range(E):
        chosen = g.op(
            "ReduceMax",
            g.op("Cast", g.op("Equal", experts, g.i64(e)), to=I64),
            g.i64([1]),
            keepdims=0,
        )  # [N] 0/1
        rows = g.op("Transpose", g.op("NonZero", chosen), perm=[1, 0])  # [n_e, 1]
        xe = g.op("GatherND", flat, rows)  # [n_e, D]
        p = f"{prefix}experts.{e}."
        h = g.act(g.linear(xe, gate[e], p + "gate_proj.weight_t"), layer.activation)  # [n_e, He]
        h = g.op("Mul", h, g.linear(xe, up[e], p + "up_proj.weight_t"))  # [n_e, He]
        ye = g.linear(h, down[e], p + "down_proj.weight_t")  # [n_e, D]
        we = g.op("GatherND", g.op("Gather", comb, g.i64([e]), axis=1), rows)  # [n_e, 1]
        y = g.op("ScatterND", y, rows, g.op("Mul", ye, we), reduction="add")  # [N, D]
    return g.op("Reshape", y, g.op("Shape", x))  # [B, T, D]


__all__ = ["write_moe_ffn"]
