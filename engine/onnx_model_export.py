"""ONNX export of the whole LLaMA model with its ops substituted (:func:`export_model`).

Built with ``onnx.helper`` straight from the model's weights and the tables (no tracing), so
every node is under control; the single-op graphs are :mod:`engine.onnx_export`'s, the NLI
functions :mod:`engine.onnx_ops`'s, the table initializers :mod:`engine.onnx_tables`'s.

The model graph mirrors :class:`engine.model.Llama` op for op: FP32 weights
and activations; a substituted op rounds its FP32 input to FP16 (``RoundFP16``,
as ``tensor.half()`` does), runs the NLI function, and casts its FP16 output
back to FP32, like the torch ``nli`` backend. RMSNorm's rows enter through
``nli.RMSNormPrescale`` instead (numerics §4.1) unless ``rmsnorm_input='plain'``.
With bf16 tables (numerics §13, ``dtype='bf16'``) every FP16 above is BF16
(``RoundBF16``, bfloat16 tensors, :mod:`engine.onnx_bf16`) and there is no prescale.
The nodes are written through :class:`GraphWriter`, which FFN exporters registered with
:func:`engine.register_ffn_exporter` (the ``moe`` package's MoE layer) use too.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from nli.formats import DTYPES, OP_ALIASES, OPS
from nli.formats import MODES as RECIPROCAL_MODES
from nli.grid import f32_to_bf16_bits
from nli.table import Table

from .onnx_bf16 import bf16_tensor, codec_for
from .onnx_ops import F32, I64, Builder, fn_name, interp_name
from .onnx_tables import (
    ExportError,
    check_rmsnorm_input,
    check_tables,
    functions_for,
    make_model,
    table_initializers,
    table_props,
    tables_dtype,
)

__all__ = ["GraphWriter", "export_model"]


def _ffn_writer(ffn_type: type):
    """The registered ONNX writer of an FFN type (see :func:`engine.register_ffn_exporter`), or
    None. Packages to the right of engine (moe) register theirs; engine never imports them by
    name."""
    import importlib

    from . import FFN_EXPORTERS

    target = FFN_EXPORTERS.get(ffn_type)
    if target is None:
        return None
    module, fn = target.split(":")
    return getattr(importlib.import_module(module), fn)


class GraphWriter(Builder):
    """Builder plus initializers and the nli / ref versions of the three ops.

    FFN exporters registered with :func:`register_ffn_exporter` (the ``moe``
    package's MoE layer) write their nodes through it."""

    def __init__(self, ops, tables, mode, eps, rmsnorm_input: str = "scaled", dtype="fp16"):
        super().__init__("t")
        self.inits: list = []
        self.ops, self.tables, self.mode = set(ops), tables, mode
        self.rmsnorm_input, self.codec = rmsnorm_input, codec_for(dtype)
        self.table_args = {}
        for fn, t in tables.items():
            ti, names = table_initializers(t, fn)
            self.inits += ti
            self.table_args[fn] = names
        if "rmsnorm" in self.ops:
            self.eps = self.init("norm_eps", np.array(eps, np.float32))
        self.eps_ref = self.f32(eps) if "rmsnorm" not in self.ops else None

    def init(self, name: str, array) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def _to16(self, x: str) -> str:
        """FP32 -> the unit's format, rounded once (RNE16 or RNE_bf16)."""
        return self.codec.encode(self, self.call(self.codec.round_fn, x))

    def act(self, x: str, fn: str) -> str:
        """The FFN activation ``fn`` (nli.formats.ACTIVATIONS) of FP32 ``x``."""
        if "act" not in self.ops:
            if fn == "gelu_tanh":
                return self.op("Gelu", x, approximate="tanh")
            return self.op("Mul", x, self.op("Sigmoid", x))
        name = interp_name(self.tables[fn].precision, self.codec)
        return self.codec.decode(self, self.call(name, self._to16(x), *self.table_args[fn]))

    def rmsnorm(self, x: str, weight: np.ndarray, name: str) -> str:
        if "rmsnorm" not in self.ops:
            w = self.init(name, weight.astype(np.float32))
            ms = self.op("ReduceMean", self.op("Mul", x, x), self.i64([-1]), keepdims=1)
            r = self.op("Div", self.f32(1.0), self.op("Sqrt", self.op("Add", ms, self.eps_ref)))
            return self.op("Mul", self.op("Mul", x, r), w)
        if self.codec.dtype == "bf16":  # RNE_bf16 of the FP32 weights, rounded once
            self.inits.append(bf16_tensor(name, f32_to_bf16_bits(weight.astype(np.float32))))
            w = name
        else:
            w = self.init(name, weight.astype(np.float16))  # RNE16, as weight.half()
        if self.rmsnorm_input == "scaled":  # numerics §4.1
            x16, eps = self.call("RMSNormPrescale", x, self.eps, n_out=2)
        else:
            x16, eps = self._to16(x), self.eps
        fn = fn_name(f"RMSNorm{self.mode.capitalize()}", codec=self.codec)
        return self.codec.decode(self, self.call(fn, x16, w, eps, *self.table_args["rsqrt"]))

    def softmax(self, x: str) -> str:
        if "softmax" not in self.ops:
            return self.op("Softmax", x, axis=-1)
        y = self.call(
            fn_name(f"Softmax{self.mode.capitalize()}", codec=self.codec),
            self._to16(x),
            *self.table_args["exp"],
            *self.table_args["reciprocal"],
        )
        return self.codec.decode(self, y)

    def linear(self, x: str, weight: np.ndarray, name: str) -> str:
        """x [..., in] @ W^T; W [out, in] is stored transposed as ``name`` [in, out]."""
        return self.op("MatMul", x, self.init(name, np.ascontiguousarray(weight.T)))


def export_model(
    model,
    ops=OPS,
    tables: dict[str, Table] | None = None,
    reciprocal_mode: str = "reduced",
    rmsnorm_input: str | None = None,
    dtype: str = "fp16",
) -> onnx.ModelProto:
    """The whole :class:`engine.model.Llama` as ONNX: input ``input_ids`` int64[batch, seq],
    output ``logits`` float32[batch, seq, vocab]. ``ops`` are substituted by the NLI functions
    with ``tables`` (the activation's, ``rsqrt``, ``exp``, ``reciprocal`` as needed), all of
    format ``dtype`` ('fp16' or 'bf16', numerics §13); ``reciprocal_mode`` is the reciprocal /
    rsqrt mode (section 5), ``rmsnorm_input`` how RMSNorm's rows enter the unit (section 4.1:
    'scaled', the fp16 default, or 'plain', the only bf16 one); the other ops stay FP32
    reference."""
    from .model import GatedFFN, Llama

    if not isinstance(model, Llama):
        raise ExportError(f"model: expected an engine.model.Llama, got {type(model).__name__}")
    if reciprocal_mode not in RECIPROCAL_MODES:
        raise ExportError(
            f"reciprocal mode: must be one of {RECIPROCAL_MODES}, got {reciprocal_mode!r}"
        )
    if dtype not in DTYPES:
        raise ExportError(f"dtype: must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if rmsnorm_input is None:
        rmsnorm_input = "plain" if dtype == "bf16" else "scaled"
    check_rmsnorm_input(rmsnorm_input, dtype)
    ops = tuple(dict.fromkeys(OP_ALIASES.get(o, o) for o in ops))
    tables = check_tables(ops, tables or {}, model.cfg.activation)
    tables_dtype(tables, "model", dtype)
    for i, layer in enumerate(model.layers):
        if not isinstance(layer.mlp, GatedFFN) and _ffn_writer(type(layer.mlp)) is None:
            raise ExportError(
                f"layer {i}: no ONNX exporter for the FFN type {type(layer.mlp).__name__} "
                f"(import the package that defines it, e.g. `import moe`)"
            )
    c = model.cfg
    sd = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    g = GraphWriter(ops, tables, reciprocal_mode, c.norm_eps, rmsnorm_input, dtype)
    H, Hkv, hd = c.n_heads, c.n_kv_heads, c.head_dim
    rep = H // Hkv
    ids = "input_ids"
    T = g.op("Slice", g.op("Shape", ids), g.i64([1]), g.i64([2]))  # [1]
    x = g.op("Gather", g.init("embed.weight", sd["embed.weight"]), ids)  # [B, T, D]
    if c.embed_scale != 1.0:
        x = g.op("Mul", x, g.f32(np.float32(c.embed_scale)))
    tabs = {}  # local? -> (cos [T, hd], sin [T, hd])
    for local, suffix in ((False, ""), (True, "_local")):
        if local and not c.has_local_rope:
            tabs[True] = tabs[False]
            continue
        tabs[local] = tuple(
            g.op(
                "Slice",
                g.init(f"rope_{f}{suffix}", getattr(model, f"rope_{f}{suffix}").numpy()),
                g.i64([0]),
                T,
                g.i64([0]),
            )
            for f in ("cos", "sin")
        )
    pos = g.op("Range", g.i64(0), g.op("Squeeze", T, g.i64([0])), g.i64(1))  # [T]
    back = g.op(
        "Sub", g.op("Unsqueeze", pos, g.i64([1])), g.op("Unsqueeze", pos, g.i64([0]))
    )  # [T, S]: query position - key position
    hidden = {False: g.op("Less", back, g.i64(0))}  # masked keys: the future
    if any(c.is_local(i) for i in range(c.n_layers)):  # and keys a window or more back
        hidden[True] = g.op(
            "Or", hidden[False], g.op("Not", g.op("Less", back, g.i64(c.sliding_window)))
        )
    neg_inf = g.f32(-np.inf)
    scale = g.f32(np.float32(c.attn_scale))

    def rope(t, cos, sin):  # t [B, h, T, hd]
        # -x as x * -1: ORT's Neg maps +0 to +0, torch's to -0
        rot = g.op(
            "Concat",
            g.op("Mul", g.op("Slice", t, g.i64([hd // 2]), g.i64([hd]), g.i64([-1])), g.f32(-1.0)),
            g.op("Slice", t, g.i64([0]), g.i64([hd // 2]), g.i64([-1])),
            axis=-1,
        )
        return g.op("Add", g.op("Mul", t, cos), g.op("Mul", rot, sin))

    def heads(t, n):  # [B, T, n*hd] -> [B, n, T, hd]
        return g.op("Transpose", g.op("Reshape", t, g.i64([0, 0, n, hd])), perm=[0, 2, 1, 3])

    def proj(h, name, n):  # [B, T, D] -> [B, n, T, hd], with the bias if the config has one
        t = g.linear(h, sd[name + ".weight"], name + ".weight_t")
        if c.qkv_bias:
            t = g.op("Add", t, g.init(name + ".bias", sd[name + ".bias"]))
        return heads(t, n)

    for i in range(c.n_layers):
        p = f"layers.{i}."
        cos, sin = tabs[c.is_local(i)]
        h = g.rmsnorm(x, sd[p + "attn_norm.weight"], p + "attn_norm.weight")
        q, k = proj(h, p + "attn.q_proj", H), proj(h, p + "attn.k_proj", Hkv)
        if c.qk_norm:  # per head, over hd
            q = g.rmsnorm(q, sd[p + "attn.q_norm.weight"], p + "attn.q_norm.weight")
            k = g.rmsnorm(k, sd[p + "attn.k_norm.weight"], p + "attn.k_norm.weight")
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        v = proj(h, p + "attn.v_proj", Hkv)
        # grouped-query attention by broadcasting: query head j uses kv head j // rep
        q5 = g.op("Reshape", q, g.i64([0, Hkv, rep, -1, hd]))  # [B, Hkv, rep, T, hd]
        kT = g.op(
            "Unsqueeze", g.op("Transpose", k, perm=[0, 1, 3, 2]), g.i64([2])
        )  # [B, Hkv, 1, hd, S]
        scores = g.op("Mul", g.op("MatMul", q5, kT), scale)  # [B, Hkv, rep, T, S]
        scores = g.select(hidden[c.is_local(i)], neg_inf, scores)  # masked_fill(-inf)
        probs = g.softmax(scores)
        o = g.op("MatMul", probs, g.op("Unsqueeze", v, g.i64([2])))  # [B, Hkv, rep, T, hd]
        o = g.op(
            "Reshape",
            g.op("Transpose", g.op("Reshape", o, g.i64([0, H, -1, hd])), perm=[0, 2, 1, 3]),
            g.i64([0, 0, H * hd]),
        )  # [B, T, H*hd]
        a = g.linear(o, sd[p + "attn.o_proj.weight"], p + "attn.o_proj.weight_t")
        if c.sandwich_norms:
            a = g.rmsnorm(a, sd[p + "post_attn_norm.weight"], p + "post_attn_norm.weight")
        x = g.op("Add", x, a)
        h = g.rmsnorm(x, sd[p + "ffn_norm.weight"], p + "ffn_norm.weight")
        mlp = model.layers[i].mlp
        if isinstance(mlp, GatedFFN):
            gate = g.act(
                g.linear(h, sd[p + "mlp.gate_proj.weight"], p + "mlp.gate_proj.weight_t"),
                mlp.activation,
            )
            up = g.linear(h, sd[p + "mlp.up_proj.weight"], p + "mlp.up_proj.weight_t")
            y = g.linear(
                g.op("Mul", gate, up), sd[p + "mlp.down_proj.weight"], p + "mlp.down_proj.weight_t"
            )
        else:
            y = _ffn_writer(type(mlp))(g, mlp, h, p + "mlp.")
        if c.sandwich_norms:
            y = g.rmsnorm(y, sd[p + "post_ffn_norm.weight"], p + "post_ffn_norm.weight")
        x = g.op("Add", x, y)
    h = g.rmsnorm(x, sd["norm.weight"], "norm.weight")
    shape = g.op("Shape", h)
    flat = g.op("Reshape", h, g.i64([-1, c.dim]))  # [B*T, D]
    head = "embed.weight" if c.tie_embeddings else g.init("lm_head.weight", sd["lm_head.weight"])
    logits = g.op("Gemm", flat, head, transB=1)  # [B*T, V]
    out_shape = g.op(
        "Concat", g.op("Slice", shape, g.i64([0]), g.i64([2])), g.i64([c.vocab_size]), axis=0
    )
    logits = g.op("Reshape", logits, out_shape)  # [B, T, V]
    g.rename_output(logits, "logits")
    graph = helper.make_graph(
        g.nodes,
        "llama_nli",
        [helper.make_tensor_value_info(ids, I64, ["batch", "seq"])],
        [helper.make_tensor_value_info("logits", F32, ["batch", "seq", c.vocab_size])],
        initializer=g.inits,
    )
    doc = (
        f"{c.arch} ({c.n_layers} layers, dim {c.dim}); NLI ops: {', '.join(ops) or 'none'}; "
        f"reciprocal/rsqrt mode: {reciprocal_mode}; unit format: {dtype}"
    )
    props = {
        "nli.ops": ",".join(ops),
        "nli.dtype": dtype,
        "nli.reciprocal_mode": reciprocal_mode,
        "nli.rmsnorm_input": rmsnorm_input,
        **table_props(tables),
    }
    fns = functions_for(tables, ops, reciprocal_mode, rmsnorm_input, dtype)
    proto = make_model(graph, fns, doc, props)
    onnx.checker.check_model(proto)
    return proto
