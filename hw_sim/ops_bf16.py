"""Composite operators on BF16 rows (numerics §13 with §4 and §5), bit-accurate.

The BF16 counterparts of :mod:`hw_sim.ops`: Softmax and RMSNorm over the last axis of BF16
rows (uint16 bit patterns; numpy has no bfloat16) with bf16 tables, their float32-input entry
points (model activations rounded ``RNE_bf16`` at the op boundary, results returned as the
float32 values of the BF16 outputs), and the reciprocal / inverse square root of FP32 values in
``direct`` and ``reduced`` modes. Table lookups gather from the table's 65,536-entry output LUT
(:func:`hw_sim.unit.output_lut`, the bf16 elementwise datapath). The FP32 sums are
:mod:`hw_sim.ops`' own sequential float32 chains. One op's tables and rows share one dtype:
a fp16 table here (or a bf16 table in :mod:`hw_sim.ops`) is an error naming both
(:func:`nli.unit_checks.check_dtypes`).

Exactness of each step (the ground rules of :mod:`hw_sim.fp` and :mod:`hw_sim.fp_bf16`;
IEEE float32 with gradual underflow, BF16 subnormals being FP32 subnormals):

* Decoding a BF16 pattern to float32 is exact (a shift, :func:`hw_sim.fp.bf16_to_f32`).
* ``d_i = RNE_bf16(x_i - m)`` is ``rne_bf16_f32`` of the float32 difference: the float32
  subtraction is RNE32(x_i - m) (hardware, overflow to inf, gradual underflow), and for BF16
  operands RNE_bf16(RNE32(a - b)) = RNE_bf16(a - b) (numerics §13, double rounding innocuous).
* Softmax's ``s``: float32 additions of BF16 values in index order, one RNE32 each (numerics
  §4 step 3 exactly; subnormal terms are added by the hardware's gradual underflow).
* RMSNorm's ``q``: float32 ``x_i * x_i`` is RNE32(x_i^2) (one IEEE rounding: overflow past
  FP32 to inf, tiny squares to FP32 subnormals or zero), then float32 additions in index order:
  numerics §13 step 1 exactly. These are the same chains as the fp16 path's, whose squares
  happen to be exact.
* ``v = RNE32(RNE32(q * RNE32(1/n)) + eps)``: as :mod:`hw_sim.ops` (float64 product, exact;
  :func:`hw_sim.fp.rne32_f64` on bits; the sum by the argument of ``add32_via_f64``).
* ``e_i * r``, ``x_i * r``, ``h_i * w_i``: float32 products, RNE32 of the exact product, then
  ``rne_bf16_f32``: innocuous double rounding for a product of BF16 values (numerics §13).
* Reduced mode: ``frexp`` splits the float64 holding the FP32 ``v`` exactly; ``RNE_bf16(m)``
  and ``RNE_bf16(table(..) 2^-k)`` are :func:`rne_bf16_f64` of exact float64 values (the
  scaling by 2^-k, |k| <= 149, of a BF16 value stays inside float64's normal range).

Special values and signs of reduced mode are numerics §5's, with the canonical NaN 0x7fc0.
"""

from __future__ import annotations

from fractions import Fraction
import functools
import math

import numba
from numba import prange
import numpy as np

from nli.formats import BF16_NAN, BF16_NEG_INF, BF16_POS_INF
from nli.grid import rne32
from nli.unit_checks import check_dtypes

from .fp import bf16_decode_table, bf16_to_f32, rne32_f64, rne_bf16_f32
from .fp_bf16 import rne_bf16_f64
from .inputs import SimInputError, check_eps, check_mode, check_rows, check_table, check_table_fits
from .ops import GROUP, PARALLEL_MIN_ELEMENTS, _compile_variant, _f32_rows, _group_sums
from .unit import output_lut

_NEG_ZERO_KEY = 0x8000  # key(b) = b for b < 0x8000, else 0x8000 - b: numeric order, -0 == +0


# ----------------------------------------------------------------------------- section 5
@numba.njit(cache=True, nogil=True)
def _inverse_reduced_bf16(v, outs, rsqrt):
    """Reduced-mode reciprocal (rsqrt=False) or rsqrt of the FP32 value v (a float64) -> BF16
    bits. outs: the bf16 table's output LUT (uint16[65536])."""
    if v != v:
        return np.uint16(BF16_NAN)
    neg = v < 0.0 or (v == 0.0 and math.copysign(1.0, v) < 0.0)
    if neg and rsqrt:
        return np.uint16(BF16_NEG_INF) if v == 0.0 else np.uint16(BF16_NAN)
    sign = 0x8000 if neg else 0  # the reciprocal is odd
    v = abs(v)
    if v == 0.0:
        return np.uint16(sign | BF16_POS_INF)
    if v == np.inf:
        return np.uint16(sign)
    fm, fe = math.frexp(v)  # v = fm 2^fe exactly, fm in [0.5, 1)
    m = 2.0 * fm
    k = fe - 1  # v = m 2^k, m in [1, 2); k >= -149 for an FP32 subnormal
    if rsqrt and (k & 1) != 0:
        m *= 2.0  # m in [2, 4), k even
        k -= 1
    y = np.float64(bf16_to_f32(outs[rne_bf16_f64(m)]))  # table(RNE_bf16(m)), exact
    r = rne_bf16_f64(math.ldexp(y, -k if not rsqrt else -(k // 2)))  # exact scaling, 1 rounding
    return r if r == BF16_NAN else np.uint16(r ^ sign)


@numba.njit(cache=True, nogil=True)
def _inverse_bf16(v, outs, reduced, rsqrt):
    """Numerics §13's section 5 of the FP32 value v (held as a float64) -> BF16 bits."""
    if reduced:
        return _inverse_reduced_bf16(v, outs, rsqrt)
    return outs[rne_bf16_f32(np.float32(v))]  # direct: table(RNE_bf16(v)); v is an FP32 value


@numba.njit(cache=True, nogil=True, parallel=True)
def _inverse_all_bf16(vs, out, outs, reduced, rsqrt):
    for j in prange(vs.size):
        out[j] = _inverse_bf16(np.float64(vs[j]), outs, reduced, rsqrt)


# ----------------------------------------------------------------------------- softmax
@numba.njit(cache=True, nogil=True)
def _softmax_exps_bf16(x, d, ev, exp_vals):
    """Steps 1-2 of one BF16 row x (uint16[L], L >= 1): ev[i] = e_i (float32), d scratch.
    Returns False for a row holding a NaN or only -inf. The key of a BF16 pattern orders it
    numerically (-0 and +0 share key 0; +inf is 0x7f80, NaNs lie beyond +-0x7f80)."""
    kmax = -0x7FFF
    kmin = 0x7FFF
    for i in range(x.size):
        b = np.int32(x[i])
        key = b if b < _NEG_ZERO_KEY else _NEG_ZERO_KEY - b
        kmax = max(kmax, key)
        kmin = min(kmin, key)
    if kmax > BF16_POS_INF or kmin < -BF16_POS_INF or kmax == -BF16_POS_INF:
        return False  # a NaN, or only -inf
    m = bf16_to_f32(kmax if kmax >= 0 else _NEG_ZERO_KEY - kmax)  # m = max(x)
    for i in range(x.size):
        d[i] = rne_bf16_f32(bf16_to_f32(x[i]) - m)  # d_i = RNE_bf16(RNE32(x_i - m)), innocuous
    for i in range(x.size):
        e = exp_vals[np.int32(d[i])]  # e_i = exp_table(d_i)
        ev[i] = np.float32(0.0) if x[i] == BF16_NEG_INF else e  # e_i = +0 where x_i = -inf
    return True


@functools.lru_cache(maxsize=None)
def _softmax_kernel_bf16(parallel: bool, f32_in: bool, f32_out: bool):
    """The bf16 Softmax kernel ``(x[R, n], out[R, n], exp_vals, recip_outs, dec, reduced)``,
    structured as :func:`hw_sim.ops._softmax_kernel` (same flags; f32_in rounds RNE_bf16 at the
    boundary; a trailing run of -inf adds +0 to the sum once, which gives the same FP32 sum)."""

    def kernel(x, out, exp_vals, recip_outs, dec, reduced):
        rows, n = x.shape
        for grp in prange((rows + GROUP - 1) // GROUP):
            r0 = grp * GROUP
            r1 = min(rows, r0 + GROUP)
            ev = np.zeros((GROUP, n), dtype=np.float32)
            d = np.empty(n, dtype=np.uint16)
            xb = np.empty((GROUP, n if f32_in else 0), dtype=np.uint16)
            ok = np.zeros(GROUP, dtype=np.bool_)
            length = np.zeros(GROUP, dtype=np.int64)
            top = 0
            for r in range(r0, r1):
                k = r - r0
                L = n
                if f32_in:
                    while L > 0 and x[r, L - 1] == -np.inf:
                        L -= 1
                    for i in range(L):
                        xb[k, i] = rne_bf16_f32(x[r, i])  # RNE_bf16 at the op boundary
                    row = xb[k]
                else:
                    row = x[r]
                while L > 0 and row[L - 1] == BF16_NEG_INF:
                    L -= 1
                length[k] = L
                ok[k] = L > 0 and _softmax_exps_bf16(row[:L], d, ev[k], exp_vals)
                if ok[k]:
                    top = max(top, L)
            sums = np.empty(GROUP, dtype=np.float32)
            if top > 0:
                _group_sums(ev[:, :top], r1 - r0, False, sums)  # step 3: FP32, index order
            for r in range(r0, r1):
                k = r - r0
                if not ok[k]:
                    for i in range(n):
                        if f32_out:
                            out[r, i] = dec[BF16_NAN]
                        else:
                            out[r, i] = BF16_NAN
                    continue
                s = sums[k] + np.float32(0.0) if top < n else sums[k]  # the rest of the +0 tail
                rf = dec[_inverse_bf16(np.float64(s), recip_outs, reduced, False)]
                e = ev[k]
                L = length[k]
                for i in range(L):
                    b = rne_bf16_f32(e[i] * rf)  # RNE_bf16(RNE32(e_i * r)), innocuous
                    if f32_out:
                        out[r, i] = dec[b]
                    else:
                        out[r, i] = b
                z = rne_bf16_f32(np.float32(0.0) * rf)  # RNE_bf16(+0 * r): the -inf tail
                for i in range(L, n):
                    if f32_out:
                        out[r, i] = dec[z]
                    else:
                        out[r, i] = z

    return _compile_variant(kernel, "_softmax_bf16", parallel, f32_in, f32_out)


# ----------------------------------------------------------------------------- rmsnorm
@functools.lru_cache(maxsize=None)
def _rmsnorm_kernel_bf16(parallel: bool, f32_in: bool, f32_out: bool):
    """The bf16 RMSNorm kernel ``(x[R, n], wv[n], out[R, n], inv_n, eps, rsqrt_outs, dec,
    reduced)`` (flags as :func:`_softmax_kernel_bf16`); wv = the weights' values (float32[n]),
    inv_n = RNE32(1/n) and eps the FP32 eps, both as float64. No prescale (numerics §13)."""

    def kernel(x, wv, out, inv_n, eps, rsqrt_outs, dec, reduced):
        rows, n = x.shape
        for grp in prange((rows + GROUP - 1) // GROUP):
            r0 = grp * GROUP
            r1 = min(rows, r0 + GROUP)
            xv = np.empty((GROUP, n), dtype=np.float32)
            for r in range(r0, r1):
                b = xv[r - r0]
                for i in range(n):
                    if f32_in:
                        b[i] = bf16_to_f32(rne_bf16_f32(x[r, i]))  # RNE_bf16 at the op boundary
                    else:
                        b[i] = bf16_to_f32(x[r, i])
            sums = np.empty(GROUP, dtype=np.float32)
            _group_sums(xv, r1 - r0, True, sums)  # q: RNE32(x_i^2) added in FP32, index order
            for r in range(r0, r1):
                v = rne32_f64(rne32_f64(np.float64(sums[r - r0]) * inv_n) + eps)
                rf = dec[_inverse_bf16(v, rsqrt_outs, reduced, True)]
                b = xv[r - r0]
                for i in range(n):
                    h = rne_bf16_f32(b[i] * rf)  # RNE_bf16(x_i * r)
                    y = rne_bf16_f32(bf16_to_f32(h) * wv[i])  # RNE_bf16(h_i * w_i)
                    if f32_out:
                        out[r, i] = dec[y]
                    else:
                        out[r, i] = y

    return _compile_variant(kernel, "_rmsnorm_bf16", parallel, f32_in, f32_out)


# ----------------------------------------------------------------------------- public
_DECODE = None


def _decode() -> np.ndarray:
    global _DECODE
    if _DECODE is None:
        _DECODE = bf16_decode_table(np.float32)
        _DECODE.setflags(write=False)
    return _DECODE


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
    dec = _decode()
    out = np.empty(rows.shape, dtype=np.float32 if f32_out else np.uint16)
    kernel = _softmax_kernel_bf16(rows.size >= PARALLEL_MIN_ELEMENTS, f32_in, f32_out)
    exp_vals = np.ascontiguousarray(dec[output_lut(exp_table)])
    kernel(rows, out, exp_vals, output_lut(recip_table), dec, mode == "reduced")
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
    dec = _decode()
    out = np.empty(rows.shape, dtype=np.float32 if f32_out else np.uint16)
    kernel = _rmsnorm_kernel_bf16(rows.size >= PARALLEL_MIN_ELEMENTS, f32_in, f32_out)
    wv = np.ascontiguousarray(dec[w])
    inv_n = rne32(Fraction(1, n))
    kernel(rows, wv, out, inv_n, float(eps32), output_lut(rsqrt_table), dec, mode == "reduced")
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
    _inverse_all_bf16(flat, out, output_lut(table), reduced, rsqrt)
    return out.reshape(v.shape)  # (N,) -> v.shape


def reciprocal_bf16(v, table, mode: str = "direct") -> np.ndarray:
    """Reciprocal of FP32 values on a bf16 table (numerics §13, §5): float32 array of any shape
    -> uint16 BF16 bit patterns of the same shape."""
    return _inverse_public(v, table, mode, "reciprocal", False)


def rsqrt_bf16(v, table, mode: str = "direct") -> np.ndarray:
    """Inverse square root of FP32 values on a bf16 table (numerics §13, §5): float32 array of
    any shape -> uint16 BF16 bit patterns of the same shape."""
    return _inverse_public(v, table, mode, "rsqrt", True)
