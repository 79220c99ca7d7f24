"""Composite operators of the NLI Engine (numerics §4 and §5), bit-accurate: the FP16 entry points.

Softmax and RMSNorm over the last axis of FP16 rows, and the reciprocal and inverse square
root of FP32 values in ``direct`` and ``reduced`` modes. Every table lookup is the elementwise
datapath of :mod:`hw_sim.unit`, taken from the table's 65,536-entry output LUT (the same
function, evaluated by the exact kernel). Sums are sequential FP32 in index order, as numerics
§4 says. :func:`softmax_f32` / :func:`rmsnorm_f32` run the same kernels (one factory, the
variant chosen at compile time) on float32 model activations, rounded to FP16 at the op
boundary (RMSNorm's rows first get numerics §4.1's power-of-two prescale unless
``rmsnorm_input='plain'``), and return the FP16 results as float32. A table must fit its role
and the mode (:func:`hw_sim.inputs.check_table_fits`).

The kernels, shared with the BF16 operators of :mod:`hw_sim.ops_bf16`, and the exactness
argument of every step are in :mod:`hw_sim.ops_kernels`.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from nli.grid import rne32
from nli.prescale import prescale_exponents
from nli.unit_checks import check_dtypes

from .inputs import (
    SimInputError,
    as_bits,
    check_eps,
    check_mode,
    check_rmsnorm_input,
    check_rows,
    check_table,
    check_table_fits,
)
from .ops_kernels import PARALLEL_MIN_ELEMENTS, inverse_all, rmsnorm_kernel, softmax_kernel
from .unit import _decode32, output_lut, output_values


# ----------------------------------------------------------------------------- public
def _f32_rows(x, name: str = "x") -> np.ndarray:
    """float32 array (..., n), n >= 1 -> C-contiguous float32 (R, n) (a view when contiguous)."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise SimInputError(f"{name}: expected a float32 numpy array, got {got}")
    n = check_rows(x, name)
    return np.ascontiguousarray(x).reshape(-1, n)  # (..., n) -> (R, n)


def _softmax_rows(rows, exp_table, recip_table, mode, f32_in, f32_out):
    """rows (R, n) uint16 bits or float32 values -> (R, n) uint16 bits or float32 values."""
    check_table_fits(exp_table, "exp", "exp table", mode)
    check_table_fits(recip_table, "reciprocal", "reciprocal table", mode)
    check_dtypes("softmax", "fp16", exp_table=exp_table, reciprocal_table=recip_table)
    out = np.empty(rows.shape, dtype=np.float32 if f32_out else np.uint16)
    kernel = softmax_kernel(False, rows.size >= PARALLEL_MIN_ELEMENTS, f32_in, f32_out)
    kernel(
        rows, out, output_values(exp_table), output_lut(recip_table), _decode32(), mode == "reduced"
    )
    return out


def _rmsnorm_rows(rows, weight, eps, rsqrt_table, mode, f32_in, f32_out, shift):
    check_table_fits(rsqrt_table, "rsqrt", "rsqrt table", mode)
    check_dtypes("rmsnorm", "fp16", rsqrt_table=rsqrt_table)
    eps32 = check_eps(eps)
    n = rows.shape[1]
    w = as_bits(weight, "weight")
    if w.shape != (n,):
        raise SimInputError(
            f"weight: shape {w.shape} does not match the row length {n} (need ({n},))"
        )
    out = np.empty(rows.shape, dtype=np.float32 if f32_out else np.uint16)
    kernel = rmsnorm_kernel(False, rows.size >= PARALLEL_MIN_ELEMENTS, f32_in, f32_out)
    dec = _decode32()
    kernel(
        rows,
        shift,
        dec[w],
        out,
        rne32(Fraction(1, n)),
        float(eps32),
        output_lut(rsqrt_table),
        dec,
        mode == "reduced",
    )
    return out


def softmax(x, exp_table, recip_table, mode: str = "direct") -> np.ndarray:
    """Softmax over the last axis (numerics §4).

    x: float16 or uint16 bit patterns, shape (..., n), n >= 1 (not copied when
    C-contiguous). ``exp_table`` must be an ``exp`` table, ``recip_table`` a
    ``reciprocal`` table whose domain fits ``mode`` ('direct' or 'reduced',
    section 5; see :func:`check_table_fits`). Returns float16 of x's shape.
    """
    check_mode(mode)
    bits = as_bits(x)
    n = check_rows(bits)
    out = _softmax_rows(
        bits.reshape(-1, n), exp_table, recip_table, mode, False, False
    )  # (..., n) -> (R, n)
    return out.view(np.float16).reshape(bits.shape)  # (R, n) -> (..., n)


def softmax_f32(x, exp_table, recip_table, mode: str = "direct") -> np.ndarray:
    """:func:`softmax` for float32 model activations: x float32 (..., n) is rounded to FP16
    (RNE, overflow to +-inf, NaN stays NaN) at the op boundary, exactly as the unit receives
    it, and the FP16 results come back as float32 (exact). Same bits as
    ``softmax(x.astype(float16), ...)``, in one pass without the float16 copies."""
    check_mode(mode)
    rows = _f32_rows(x)
    return _softmax_rows(rows, exp_table, recip_table, mode, True, True).reshape(
        x.shape
    )  # (R, n) -> (..., n)


def rmsnorm(x, weight, eps, rsqrt_table, mode: str = "direct") -> np.ndarray:
    """RMSNorm over the last axis (numerics §4).

    x: float16 or uint16, shape (..., n); weight: float16 or uint16, shape (n,);
    eps: a finite real, rounded to FP32 (RNE) and then used exactly;
    ``rsqrt_table`` an ``rsqrt`` table whose domain fits ``mode`` ('direct' or
    'reduced'). Returns float16 of x's shape.
    """
    check_mode(mode)
    bits = as_bits(x)
    n = check_rows(bits)
    rows = bits.reshape(-1, n)  # (..., n) -> (R, n)
    shift = np.zeros(rows.shape[0], dtype=np.int32)  # FP16 input: nothing to scale
    out = _rmsnorm_rows(rows, weight, eps, rsqrt_table, mode, False, False, shift)
    return out.view(np.float16).reshape(bits.shape)  # (R, n) -> (..., n)


def rmsnorm_f32(
    x, weight, eps, rsqrt_table, mode: str = "direct", rmsnorm_input: str = "scaled"
) -> np.ndarray:
    """:func:`rmsnorm` for float32 model activations: x float32 (..., n) enters the FP16 unit
    at the op boundary, weight float16/uint16 (n,), float32 (FP16 values) out of x's shape.

    ``rmsnorm_input`` (numerics §4.1): 'scaled' (the default) applies the row prescale, so a
    row with a finite |x_i| >= 65520 is scaled by a power of two before RNE16 instead of
    overflowing to inf; every other row is unchanged. 'plain' is RNE16 alone. Rows without such
    a value (and every row in 'plain') give the same bits as
    ``rmsnorm(x.astype(float16), weight, ...)``."""
    check_mode(mode)
    check_rmsnorm_input(rmsnorm_input)
    rows = _f32_rows(x)
    if rmsnorm_input == "scaled":
        shift = prescale_exponents(rows)
    else:
        shift = np.zeros(rows.shape[0], dtype=np.int32)
    return _rmsnorm_rows(rows, weight, eps, rsqrt_table, mode, True, True, shift).reshape(
        x.shape
    )  # (R, n) -> (..., n)


def _inverse_public(v, table, mode, function, rsqrt):
    check_table(table, function, f"{function} table")
    check_dtypes(function, "fp16", **{f"{function}_table": table})
    reduced = check_mode(mode) == "reduced"
    if not isinstance(v, np.ndarray) or v.dtype not in (np.float32, np.float16):
        got = v.dtype if isinstance(v, np.ndarray) else type(v).__name__
        raise SimInputError(f"v: expected a float32 (or float16) numpy array, got {got}")
    flat = np.ascontiguousarray(v, dtype=np.float32).reshape(-1)  # v.shape -> (N,), exact
    out = np.empty(flat.size, dtype=np.uint16)
    inverse_all(flat, out, output_lut(table), reduced, rsqrt, False)
    return out.view(np.float16).reshape(v.shape)  # (N,) -> v.shape


def reciprocal(v, table, mode: str = "direct") -> np.ndarray:
    """Reciprocal of FP32 values (numerics §5): float32 (or float16) array of any
    shape -> float16 of the same shape, with a ``reciprocal`` table in ``mode``. The
    section-5 datapath as given: the table's domain is not matched to ``mode`` here
    (Softmax and RMSNorm check it, :func:`hw_sim.inputs.check_table_fits`)."""
    return _inverse_public(v, table, mode, "reciprocal", False)


def rsqrt(v, table, mode: str = "direct") -> np.ndarray:
    """Inverse square root of FP32 values (numerics §5): float32 (or float16) array
    of any shape -> float16 of the same shape, with an ``rsqrt`` table in ``mode``."""
    return _inverse_public(v, table, mode, "rsqrt", True)
