"""Composite operators on BF16 rows (numerics §13 with §4 and §5), bit-accurate.

The BF16 counterparts of :mod:`hw_sim.ops`: Softmax and RMSNorm over the last axis of BF16
rows (uint16 bit patterns; numpy has no bfloat16) with bf16 tables, their float32-input entry
points (model activations rounded ``RNE_bf16`` at the op boundary, results returned as the
float32 values of the BF16 outputs), and the reciprocal / inverse square root of FP32 values in
``direct`` and ``reduced`` modes. They run the same kernels as the FP16 operators
(:mod:`hw_sim.ops_kernels`, compiled with ``bf16=True``; the exactness argument of every BF16
step is there), with table lookups gathered from the bf16 table's 65,536-entry output LUT
(:func:`hw_sim.unit.output_lut`). RMSNorm has no row prescale (numerics §13: BF16 has FP32's
exponent range). One op's tables and rows share one dtype: a fp16 table here (or a bf16 table
in :mod:`hw_sim.ops`) is an error naming both (:func:`nli.unit_checks.check_dtypes`).

Special values and signs of reduced mode are numerics §5's, with the canonical NaN 0x7fc0.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from nli.grid import rne32
from nli.unit_checks import check_dtypes

from .inputs import SimInputError, check_eps, check_mode, check_rows, check_table, check_table_fits
from .ops import _f32_rows
from .ops_kernels import PARALLEL_MIN_ELEMENTS, inverse_all, rmsnorm_kernel, softmax_kernel
from .unit import _decode32_bf16, output_lut, output_values


# ----------------------------------------------------------------------------- public
def as_bf16_bits(x, name: str = "x") -> np.ndarray:
    """uint16 array of BF16 bit patterns (any shape) -> C-contiguous uint16 (a view when
    contiguous). Every other dtype is rejected: numpy has no bfloat16, and reading float16 or
    float32 as BF16 would hide a bug upstream."""
    if isinstance(x, np.generic):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray) or x.dtype != np.uint16:
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise SimInputError(
            f"{name}: expected a uint16 numpy array of BF16 bit patterns, got {got}"
        )
    return np.ascontiguousarray(x)


def _softmax_rows(rows, exp_table, recip_table, mode, f32_in, f32_out):
    check_table_fits(exp_table, "exp", "exp table", mode)
    check_table_fits(recip_table, "reciprocal", "reciprocal table", mode)
    check_dtypes("softmax", "bf16", exp_table=exp_table, reciprocal_table=recip_table)
    out = np.empty(rows.shape, dtype=np.float32 if f32_out else np.uint16)
    kernel = softmax_kernel(True, rows.size >= PARALLEL_MIN_ELEMENTS, f32_in, f32_out)
    kernel(
        rows,
        out,
        output_values(exp_table),
        output_lut(recip_table),
        _decode32_bf16(),
        mode == "reduced",
    )
    return out


def _rmsnorm_rows(rows, weight, eps, rsqrt_table, mode, f32_in, f32_out):
    check_table_fits(rsqrt_table, "rsqrt", "rsqrt table", mode)
    check_dtypes("rmsnorm", "bf16", rsqrt_table=rsqrt_table)
    eps32 = check_eps(eps)
    n = rows.shape[1]
    w = as_bf16_bits(weight, "weight")
    if w.shape != (n,):
        raise SimInputError(
            f"weight: shape {w.shape} does not match the row length {n} (need ({n},))"
        )
    dec = _decode32_bf16()
    out = np.empty(rows.shape, dtype=np.float32 if f32_out else np.uint16)
    kernel = rmsnorm_kernel(True, rows.size >= PARALLEL_MIN_ELEMENTS, f32_in, f32_out)
    shift = np.zeros(rows.shape[0], dtype=np.int32)  # no prescale in BF16 (numerics §13)
    inv_n = rne32(Fraction(1, n))
    kernel(
        rows,
        shift,
        np.ascontiguousarray(dec[w]),
        out,
        inv_n,
        float(eps32),
        output_lut(rsqrt_table),
        dec,
        mode == "reduced",
    )
    return out


def softmax_bf16(x, exp_table, recip_table, mode: str = "direct") -> np.ndarray:
    """Softmax over the last axis of BF16 rows (numerics §13, §4): x uint16 BF16 bit patterns
    (..., n), n >= 1; bf16 ``exp`` and ``reciprocal`` tables (the reciprocal's domain fitting
    ``mode``). Returns uint16 BF16 bit patterns of x's shape."""
    check_mode(mode)
    bits = as_bf16_bits(x)
    n = check_rows(bits)
    out = _softmax_rows(bits.reshape(-1, n), exp_table, recip_table, mode, False, False)
    return out.reshape(bits.shape)  # (R, n) -> (..., n)


def softmax_bf16_f32(x, exp_table, recip_table, mode: str = "direct") -> np.ndarray:
    """:func:`softmax_bf16` for float32 model activations: x float32 (..., n) is rounded to BF16
    (RNE, NaN -> 0x7fc0) at the op boundary; the BF16 results come back as float32 (exact).
    Same bits as ``softmax_bf16(f32_to_bf16_bits(x), ...)`` in one pass."""
    check_mode(mode)
    rows = _f32_rows(x)
    out = _softmax_rows(rows, exp_table, recip_table, mode, True, True)
    return out.reshape(x.shape)  # (R, n) -> (..., n)


def rmsnorm_bf16(x, weight, eps, rsqrt_table, mode: str = "direct") -> np.ndarray:
    """RMSNorm over the last axis of BF16 rows (numerics §13): x uint16 BF16 patterns (..., n),
    weight uint16 BF16 patterns (n,), eps a finite real rounded to FP32, a bf16 ``rsqrt`` table
    fitting ``mode``. Returns uint16 BF16 bit patterns of x's shape."""
    check_mode(mode)
    bits = as_bf16_bits(x)
    n = check_rows(bits)
    out = _rmsnorm_rows(bits.reshape(-1, n), weight, eps, rsqrt_table, mode, False, False)
    return out.reshape(bits.shape)  # (R, n) -> (..., n)


def rmsnorm_bf16_f32(x, weight, eps, rsqrt_table, mode: str = "direct") -> np.ndarray:
    """:func:`rmsnorm_bf16` for float32 model activations: x float32 (..., n) rounded RNE_bf16
    at the op boundary (no prescale: BF16 has FP32's exponent range, numerics §13), weight uint16
    BF16 patterns (n,); float32 (BF16 values) out, of x's shape."""
    check_mode(mode)
    rows = _f32_rows(x)
    out = _rmsnorm_rows(rows, weight, eps, rsqrt_table, mode, True, True)
    return out.reshape(x.shape)  # (R, n) -> (..., n)


def _inverse_public(v, table, mode, function, rsqrt):
    check_table(table, function, f"{function} table")
    check_dtypes(function, "bf16", **{f"{function}_table": table})
    reduced = check_mode(mode) == "reduced"
    if not isinstance(v, np.ndarray) or v.dtype != np.float32:
        got = v.dtype if isinstance(v, np.ndarray) else type(v).__name__
        raise SimInputError(f"v: expected a float32 numpy array, got {got}")
    flat = np.ascontiguousarray(v).reshape(-1)  # v.shape -> (N,)
    out = np.empty(flat.size, dtype=np.uint16)
    inverse_all(flat, out, output_lut(table), reduced, rsqrt, True)
    return out.reshape(v.shape)  # (N,) -> v.shape


def reciprocal_bf16(v, table, mode: str = "direct") -> np.ndarray:
    """Reciprocal of FP32 values on a bf16 table (numerics §13, §5): float32 array of any shape
    -> uint16 BF16 bit patterns of the same shape."""
    return _inverse_public(v, table, mode, "reciprocal", False)


def rsqrt_bf16(v, table, mode: str = "direct") -> np.ndarray:
    """Inverse square root of FP32 values on a bf16 table (numerics §13, §5): float32 array of
    any shape -> uint16 BF16 bit patterns of the same shape."""
    return _inverse_public(v, table, mode, "rsqrt", True)
