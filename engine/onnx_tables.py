"""What every exported NLI graph shares: tables as initializers, the checks on them, the set
of model-local functions a graph calls, the ModelProto wrapper and the atomic save.

Each table is a set of named initializers ``<op>.cutpoints``, ``<op>.mul``, ``<op>.bins``,
``<op>.base``, ``<op>.lut``, ``<op>.below``, ``<op>.above`` in its numerics §2 types (the
16-bit fields as float16, or bfloat16 for a bf16 table (numerics §13), ``mul`` float32,
``bins``/``base`` int64). The graphs themselves are
:mod:`engine.onnx_export`'s and :mod:`engine.onnx_model_export`'s.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from nli.atomic import atomic_target
from nli.formats import OPS, RMSNORM_INPUTS, op_functions
from nli.table import Table

from .onnx_bf16 import bf16_tensor, codec_for, round_bf16_function
from .onnx_composite import rmsnorm_function, rmsnorm_prescale_function, softmax_function
from .onnx_ops import (
    OPSETS,
    TABLE_FIELDS,
    interp_function,
    interp_name,
    inverse_reduced_function,
    round_fp16_function,
)

IR_VERSION = 10


class ExportError(ValueError):
    """A request the exporter cannot honour (wrong table for an op, unknown op, MoE FFN...)."""


# ----------------------------------------------------------------------------- tables
def table_initializers(table: Table, prefix: str) -> tuple[list, list[str]]:
    """The table as named initializers ``<prefix>.<field>`` and their names in TABLE_FIELDS
    order; the 16-bit fields are float16 or bfloat16 after the table's dtype."""
    bits = {
        "cutpoints": np.asarray(table.cutpoints, np.uint16),
        "lut": np.asarray(table.lut, np.uint16),
        "below": np.array(table.below, np.uint16),
        "above": np.array(table.above, np.uint16),
    }
    arrays = {
        "mul": np.asarray(table.mul, np.float32),
        "bins": np.asarray(table.bins, np.int64),
        "base": np.asarray(table.base, np.int64),
    }
    names = [f"{prefix}.{f}" for f in TABLE_FIELDS]
    inits = []
    for f, n in zip(TABLE_FIELDS, names):
        if f in arrays:
            inits.append(numpy_helper.from_array(arrays[f], n))
        elif table.dtype == "bf16":
            inits.append(bf16_tensor(n, bits[f]))
        else:
            inits.append(numpy_helper.from_array(bits[f].view(np.float16), n))
    return inits, names


def check_table_for(table: Table, function: str, role: str) -> Table:
    """``table`` must be an nli Table computing ``function``."""
    if not isinstance(table, Table):
        raise ExportError(f"{role}: expected an nli Table, got {type(table).__name__}")
    if table.function != function:
        raise ExportError(f"{role}: table is for {table.function!r}, expected a {function!r} table")
    return table


def tables_dtype(tables: dict[str, Table], what: str, dtype: str | None = None) -> str:
    """The one dtype of ``tables`` (numerics §13: one format per op, and per exported model),
    which must be ``dtype`` when given; a mismatch names the tables and their dtypes."""
    got = {name: t.dtype for name, t in tables.items()}
    names = list(got)
    for name in names[1:]:
        if got[name] != got[names[0]]:
            raise ExportError(
                f"{what}: the {names[0]} table is {got[names[0]]} but the {name} table is "
                f"{got[name]}; one op's tables share one dtype (numerics §13)"
            )
    if dtype is not None and names and got[names[0]] != dtype:
        raise ExportError(
            f"{what}: the export is {dtype}, so its tables must be too, but the {names[0]} "
            f"table is {got[names[0]]} (numerics §13)"
        )
    return got[names[0]] if names else (dtype or "fp16")


def functions_for(
    tables: dict[str, Table], ops, mode: str, rmsnorm_input=None, dtype: str = "fp16"
) -> list:
    """Every model-local function the graph calls (each once); the tables are all ``dtype``."""
    codec = codec_for(dtype)
    fns = {codec.round_fn: round_bf16_function() if dtype == "bf16" else round_fp16_function()}
    if "rmsnorm" in ops and rmsnorm_input == "scaled":
        fns["RMSNormPrescale"] = rmsnorm_prescale_function()
    for t in tables.values():
        fns.setdefault(
            interp_name(t.precision, codec), interp_function(t.precision == "fp16", codec)
        )
    if mode == "reduced":
        if "softmax" in ops:
            f = inverse_reduced_function(False, tables["reciprocal"].precision, codec)
            fns[f.name] = f
        if "rmsnorm" in ops:
            f = inverse_reduced_function(True, tables["rsqrt"].precision, codec)
            fns[f.name] = f
    if "softmax" in ops:
        f = softmax_function(mode, tables["exp"].precision, tables["reciprocal"].precision, codec)
        fns[f.name] = f
    if "rmsnorm" in ops:
        f = rmsnorm_function(mode, tables["rsqrt"].precision, codec)
        fns[f.name] = f
    return list(fns.values())


def make_model(graph, functions, doc: str, props: dict | None = None) -> onnx.ModelProto:
    m = helper.make_model(
        graph, opset_imports=OPSETS, functions=functions, producer_name="nli-engine", doc_string=doc
    )
    m.ir_version = IR_VERSION
    if props:
        helper.set_model_props(m, {k: str(v) for k, v in props.items()})
    return m


def table_props(tables: dict[str, Table]) -> dict:
    """metadata_props describing each table (initializer prefix -> function, precision, layout)."""
    return {
        f"nli.table.{name}": (
            f"function={t.function} dtype={t.dtype} precision={t.precision} K={t.K} "
            f"entries={t.entries}"
        )
        for name, t in tables.items()
    }


def check_rmsnorm_input(rmsnorm_input, dtype: str = "fp16") -> str:
    """'scaled' or 'plain'; a bf16 unit has no row prescale (numerics §13), only 'plain'."""
    if rmsnorm_input not in RMSNORM_INPUTS:
        raise ExportError(
            f"rmsnorm input: must be one of {', '.join(RMSNORM_INPUTS)}, got {rmsnorm_input!r}"
        )
    if dtype == "bf16" and rmsnorm_input != "plain":
        raise ExportError(
            f"rmsnorm input: {rmsnorm_input!r} is the FP16 row prescale (numerics §4.1); bf16 "
            "tables have none (numerics §13), use 'plain'"
        )
    return rmsnorm_input


def check_tables(ops, tables: dict[str, Table], activation: str = "silu") -> dict[str, Table]:
    need = {}
    for op in ops:
        if op not in OPS:
            raise ExportError(f"ops: unknown op {op!r}; known: {', '.join(OPS)}")
        for fn in op_functions([op], activation):
            if fn not in tables:
                raise ExportError(f"tables: op {op!r} needs a {fn!r} table")
            need[fn] = check_table_for(tables[fn], fn, f"{fn} table")
    return need


# ----------------------------------------------------------------------------- file
def save_onnx(model: onnx.ModelProto, path: str | os.PathLike) -> Path:
    """Write ``model`` atomically (temp file in the same folder, then rename); one file (< 2 GB)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if model.ByteSize() >= 2**31 - 2**20:
        raise ExportError(
            f"{path}: the model is over 2 GB; external-data export is not implemented"
        )
    with atomic_target(path) as tmp:
        onnx.save_model(model, tmp)
    return path
