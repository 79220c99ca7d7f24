"""Numerics §4 (Softmax, RMSNorm and RMSNorm's row prescale, §4.1) as ONNX model-local functions.

Built from the elementwise and section 5 functions of :mod:`engine.onnx_ops` (whose module
docstring records how each step is made one IEEE operation in stock onnxruntime: sequential
sums by ``CumSum``, selects on bit patterns, the prescale on the FP32 bits), for a table format
given by its codec (FP16, or BF16 from :mod:`engine.onnx_bf16`, numerics §13).
"""

from __future__ import annotations

import numpy as np
from onnx import FunctionProto

from nli.formats import FP16_OVERFLOW, RMSNORM_PRESCALE_TOP

from .onnx_ops import (
    BOOL,
    F16,
    F32,
    FP16_CODEC,
    I32,
    TABLE_FIELDS,
    Builder,
    Codec,
    _function,
    fn_name,
    interp_name,
    inverse_call,
)


def _table_inputs(prefix: str) -> list[str]:
    return [f"{prefix}_{f}" for f in TABLE_FIELDS]


def _last(b: Builder, x: str) -> str:
    """x[..., -1:] (keepdims)."""
    return b.op("Slice", x, b.i64([-1]), b.i64([np.iinfo(np.int64).max]), b.i64([-1]))


# ----------------------------------------------------------------------------- section 4
def softmax_function(
    mode: str, exp_precision: str, recip_precision: str, codec: Codec = FP16_CODEC
) -> FunctionProto:
    """nli.Softmax<Mode>: numerics §4 over the last axis. Inputs: x float16[..., n], the exp
    table (7 fields), the reciprocal table (7 fields). Output float16[..., n]."""
    b = Builder("s")
    x = codec.decode(b, "x")
    neginf = b.op("Equal", x, b.f32(-np.inf))
    nan_row = b.op(
        "Cast",
        b.op("ReduceMax", b.op("Cast", b.op("IsNaN", x), to=F32), b.i64([-1]), keepdims=1),
        to=BOOL,
    )
    all_neginf = b.op("ReduceMin", b.op("Cast", neginf, to=F32), b.i64([-1]), keepdims=1)
    bad = b.op("Or", nan_row, b.op("Cast", all_neginf, to=BOOL))  # NaN in the row, or all -inf
    m = b.op("ReduceMax", x, b.i64([-1]), keepdims=1)
    d = codec.encode(b, b.call(codec.round_fn, b.op("Sub", x, m)))  # RNE16(x_i - m)
    e = codec.decode(b, b.call(interp_name(exp_precision, codec), d, *_table_inputs("exp")))
    e = b.select(neginf, b.f32(0.0), e)  # e_i = +0 at -inf
    s = _last(b, b.op("CumSum", e, b.i64(-1)))  # sequential FP32 sum, index order
    r = inverse_call(b, s, _table_inputs("recip"), mode, False, recip_precision, codec)
    out = b.call(codec.round_fn, b.op("Mul", e, r))  # RNE16(e_i * r), exact product
    out = b.select(bad, b.f32(np.nan), out)
    fn = _function(
        fn_name(f"Softmax{mode.capitalize()}", codec=codec),
        ["x", *_table_inputs("exp"), *_table_inputs("recip")],
        b,
        {"y": codec.encode(b, out)},
        softmax_function.__doc__,
    )
    return fn


def rmsnorm_prescale_function() -> FunctionProto:
    """nli.RMSNormPrescale: numerics §4.1 over the last axis. Inputs: x float32[..., n], eps
    float32[]. Outputs: x16 float16[..., n] = RNE16(x_i 2^-s) and eps float32[..., 1] =
    eps 2^(-2s), the row's inputs to nli.RMSNorm<Mode>."""
    b = Builder("p")
    bits = b.op("BitCast", "x", to=I32)
    mag = b.op("BitwiseAnd", bits, b.i32(0x7FFFFFFF))
    finite = b.op("Less", mag, b.i32(0x7F800000))
    absx = b.op("BitCast", b.op("Where", finite, mag, b.i32(0)), to=F32)  # inf / NaN -> +0
    m = b.op("ReduceMax", absx, b.i64([-1]), keepdims=1)  # [..., 1], exact
    e = b.op("Sub", b.op("Div", b.op("BitCast", m, to=I32), b.i32(1 << 23)), b.i32(127))  # E(m)
    over = b.op("GreaterOrEqual", m, b.f32(FP16_OVERFLOW))
    s = b.op("Where", over, b.op("Sub", e, b.i32(RMSNORM_PRESCALE_TOP)), b.i32(0))  # 0..113
    p = b.op("BitCast", b.op("Mul", b.op("Sub", b.i32(127), s), b.i32(1 << 23)), to=F32)  # 2^-s
    x16 = b.op("Cast", b.call("RoundFP16", b.op("Mul", "x", p)), to=F16)  # RNE16(x_i 2^-s)
    eps = b.op("Mul", b.op("Mul", "eps", p), p)  # eps 2^(-2s) (numerics §4.1)
    return _function(
        "RMSNormPrescale",
        ["x", "eps"],
        b,
        {"x16": x16, "eps_row": eps},
        rmsnorm_prescale_function.__doc__,
    )


def rmsnorm_function(mode: str, precision: str, codec: Codec = FP16_CODEC) -> FunctionProto:
    """nli.RMSNorm<Mode>: numerics §4 over the last axis. Inputs: x float16[..., n],
    weight float16[n], eps float32[] (or float32[..., 1], one per row, from nli.RMSNormPrescale)
    and the rsqrt table (7 fields). Output float16[..., n]."""
    b = Builder("m")
    x, w = codec.decode(b, "x"), codec.decode(b, "weight")
    # squares: exact for FP16, RNE32 for BF16 (numerics §13); sequential sum
    q = _last(b, b.op("CumSum", b.op("Mul", x, x), b.i64(-1)))
    n = b.op("Cast", b.op("Shape", "x", start=-1), to=F32)
    inv_n = b.op("Div", b.f32(1.0), n)  # RNE32(1 / n)
    v = b.op("Add", b.op("Mul", q, inv_n), "eps")  # RNE32(RNE32(q / n) + eps)
    r = inverse_call(b, v, _table_inputs("rsqrt"), mode, True, precision, codec)
    h = b.call(codec.round_fn, b.op("Mul", x, r))  # RNE16(x_i * r)
    out = b.call(codec.round_fn, b.op("Mul", h, w))  # RNE16(h_i * w_i)
    return _function(
        fn_name(f"RMSNorm{mode.capitalize()}", codec=codec),
        ["x", "weight", "eps", *_table_inputs("rsqrt")],
        b,
        {"y": codec.encode(b, out)},
        rmsnorm_function.__doc__,
    )
