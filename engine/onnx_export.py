"""ONNX export of single NLI ops: one elementwise op (:func:`export_elementwise`), a standalone
softmax or RMSNorm (:func:`export_composite`), or numerics §5 alone (:func:`export_inverse`).

Built with ``onnx.helper`` straight from a table (no tracing), so every node is
under control. The NLI ops are model-local functions of domain ``nli`` (see
:mod:`engine.onnx_ops` for how each is made bit-exact in stock onnxruntime); each
table is a set of named initializers (:mod:`engine.onnx_tables`) passed to the
function call. The whole model's graph, with the same functions, is
:mod:`engine.onnx_model_export`'s.
"""

from __future__ import annotations

import onnx
from onnx import helper

from nli.formats import INVERSE_FUNCTIONS
from nli.formats import MODES as RECIPROCAL_MODES
from nli.table import Table

from .onnx_bf16 import codec_for
from .onnx_ops import (
    F32,
    Builder,
    fn_name,
    interp_name,
    inverse_call,
    inverse_reduced_function,
)
from .onnx_tables import (
    ExportError,
    check_rmsnorm_input,
    check_table_for,
    check_tables,
    functions_for,
    make_model,
    save_onnx,
    table_initializers,
    table_props,
    tables_dtype,
)

__all__ = [
    "ExportError",
    "check_table_for",
    "export_composite",
    "export_elementwise",
    "export_inverse",
    "save_onnx",
    "table_initializers",
]


# ----------------------------------------------------------------------------- one op
def export_elementwise(table: Table) -> onnx.ModelProto:
    """One elementwise op (numerics §3): input ``x`` float16[n], output ``y`` float16[n]
    (the nli.Interp function itself is shape-agnostic)."""
    if not isinstance(table, Table):
        raise ExportError(f"table: expected an nli Table, got {type(table).__name__}")
    codec = codec_for(table.dtype)
    inits, names = table_initializers(table, table.function)
    node = helper.make_node(
        interp_name(table.precision, codec),
        ["x", *names],
        ["y"],
        name=f"{table.function}_nli",
        domain="nli",
    )
    graph = helper.make_graph(
        [node],
        f"nli_{table.function}",
        [helper.make_tensor_value_info("x", codec.elem, ["n"])],
        [helper.make_tensor_value_info("y", codec.elem, ["n"])],
        initializer=inits,
    )
    doc = (
        f"NLI elementwise op for {table.function!r} ({table.dtype}, {table.precision} "
        f"precision, K={table.K}, {table.entries} LUT entries)"
    )
    model = make_model(
        graph,
        functions_for({table.function: table}, (), "direct", dtype=table.dtype),
        doc,
        table_props({table.function: table}),
    )
    onnx.checker.check_model(model)
    return model


def export_composite(
    op: str, tables: dict[str, Table], mode: str = "reduced", rmsnorm_input: str | None = None
) -> onnx.ModelProto:
    """A standalone ``softmax`` (x float16[R, n] -> y) or ``rmsnorm`` (x float16[R, n], weight
    float16[n], eps float32[] -> y) graph, the same functions the model export uses.
    ``rmsnorm_input`` 'scaled' or 'plain' (rmsnorm only): x is float32[R, n] instead and enters
    as the model's does (numerics §4.1: nli.RMSNormPrescale, or RoundFP16 alone). For bf16
    tables (numerics §13) every float16 here is bfloat16, and only 'plain' exists."""
    tables = check_tables((op,), tables)
    dtype = tables_dtype(tables, op)
    codec = codec_for(dtype)
    if rmsnorm_input is not None:
        if op != "rmsnorm":
            raise ExportError(f"rmsnorm input: only for op 'rmsnorm', not {op!r}")
        check_rmsnorm_input(rmsnorm_input, dtype)
    b = Builder("g")
    x_type = codec.elem if rmsnorm_input is None else F32
    inits, ins = [], [helper.make_tensor_value_info("x", x_type, ["rows", "n"])]
    if op == "softmax":
        args = ["x"]
        for role, name in (("exp", "exp"), ("recip", "reciprocal")):
            ti, tn = table_initializers(tables[name], role)
            inits += ti
            args += tn
        y = b.call(fn_name(f"Softmax{mode.capitalize()}", codec=codec), *args)
    elif op == "rmsnorm":
        ins += [
            helper.make_tensor_value_info("weight", codec.elem, ["n"]),
            helper.make_tensor_value_info("eps", F32, []),
        ]
        ti, tn = table_initializers(tables["rsqrt"], "rsqrt")
        inits += ti
        x, eps = "x", "eps"
        if rmsnorm_input == "scaled":
            x, eps = b.call("RMSNormPrescale", "x", "eps", n_out=2)
        elif rmsnorm_input == "plain":
            x = codec.encode(b, b.call(codec.round_fn, "x"))
        y = b.call(fn_name(f"RMSNorm{mode.capitalize()}", codec=codec), x, "weight", eps, *tn)
    else:
        raise ExportError(f"op: composite ops are softmax and rmsnorm, got {op!r}")
    b.rename_output(y, "y")
    graph = helper.make_graph(
        b.nodes,
        f"nli_{op}",
        ins,
        [helper.make_tensor_value_info("y", codec.elem, ["rows", "n"])],
        initializer=inits,
    )
    fns = functions_for(tables, (op,), mode, rmsnorm_input, dtype)
    model = make_model(graph, fns, f"NLI {op}, {dtype}, {mode} mode")
    onnx.checker.check_model(model)
    return model


def export_inverse(table: Table, mode: str = "reduced") -> onnx.ModelProto:
    """Numerics §5 alone: input ``v`` float32[n], output ``y`` float16[n] (bfloat16[n] for a bf16
    table, numerics §13); the table's function (``reciprocal`` or ``rsqrt``) says which
    inverse."""
    if not isinstance(table, Table) or table.function not in INVERSE_FUNCTIONS:
        raise ExportError("table: section 5 needs a 'reciprocal' or 'rsqrt' table")
    if mode not in RECIPROCAL_MODES:
        raise ExportError(f"mode: must be one of {RECIPROCAL_MODES}, got {mode!r}")
    b = Builder("g")
    codec = codec_for(table.dtype)
    inits, names = table_initializers(table, table.function)
    rsqrt = table.function == "rsqrt"
    y = codec.encode(b, inverse_call(b, "v", names, mode, rsqrt, table.precision, codec))
    b.rename_output(y, "y")
    graph = helper.make_graph(
        b.nodes,
        f"nli_{table.function}_{mode}",
        [helper.make_tensor_value_info("v", F32, ["n"])],
        [helper.make_tensor_value_info("y", codec.elem, ["n"])],
        initializer=inits,
    )
    fns = functions_for({table.function: table}, (), "direct", dtype=table.dtype)
    if mode == "reduced":
        fns.append(inverse_reduced_function(rsqrt, table.precision, codec))
    model = make_model(graph, fns, f"NLI {table.function}, {table.dtype}, {mode} mode")
    onnx.checker.check_model(model)
    return model
