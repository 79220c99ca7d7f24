"""Composite operators of the NLI Engine (numerics §4 and §5), bit-accurate.

Softmax and RMSNorm over the last axis of FP16 rows, and the reciprocal and
inverse square root of FP32 values in ``direct`` and ``reduced`` modes. Every
table lookup is the elementwise datapath of :mod:`hw_sim.unit`, taken from the
table's 65,536-entry output LUT (the same function, evaluated by the exact
kernel). Sums are sequential FP32 in index order, as numerics §4 says.
:func:`softmax_f32` / :func:`rmsnorm_f32` run the same kernels (one factory,
the variant chosen at compile time) on float32 model activations, rounded to
FP16 at the op boundary (RMSNorm's rows first get numerics §4.1's power-of-two
prescale unless ``rmsnorm_input='plain'``), and return the FP16 results as float32. A table must
fit its role and the mode (:func:`hw_sim.inputs.check_table_fits`).

Exactness of each step (fp.py's ground rules):

* ``d_i = RNE16(x_i - m)`` is computed as RNE16(RNE32(x_i - m)), which is the
  same single rounding: let |a| >= |b| be the FP16 operands (11 significant
  bits, FP16 subnormals are FP32 normals) with exponents ea >= eb. If
  ea - eb <= 12 the exact difference spans at most 24 bits: RNE32 is exact.
  Otherwise |b| <= (2 - 2^-10) 2^(ea-13) = 2^(ea-12) - 2^(ea-23), while the
  FP16 midpoints next to a (and the overflow threshold 65520) lie at least
  2^(ea-12) away; the exact result stays at least 2^(ea-23) inside them and
  RNE32 moves it by at most 2^(ea-24), so both roundings return a. (If a is an FP16 subnormal, so is
  b, and the difference is an exact multiple of 2^-24 below 2^-13.)
* FP32 running sums are IEEE float32 additions (one RNE32 each). Their
  operands are FP16 values or FP16 squares (22 bits, exact float32
  products), all multiples of 2^-48, so no FP32 subnormal arises.
* ``q * RNE32(1/n)`` is an FP32 x FP32 product, exact in float64, rounded
  by :func:`rne32_f64`; ``+ eps`` is an FP32 + FP32 sum, rounded once
  correctly by the float64-then-RNE32 argument of :func:`add32_via_f64`.
  ``RNE32(1/n)`` is computed exactly in Python with Fractions.
* ``e_i * r``, ``x_i * r``, ``h_i * w_i``: FP16 x FP16 products are exact in
  float32 (22 bits, magnitude in [2^-48, 2^32)) -> :func:`rne16_f32`.
* Reduced mode: ``frexp`` splits a float64 exactly; ``table(..) * 2^-k`` is a
  power-of-two scaling, exact in float64 (|k| <= 149) -> :func:`rne16_f64`.

Reduced-mode values numerics 1 left open (project choices, numerics §5): the reciprocal
is odd, r(-v) = -r(v), so -0 -> -inf and -inf -> -0; rsqrt(-0) = -inf and
rsqrt of any other negative value (including -inf) is NaN. Softmax's max
``m`` is the first maximal element (the result does not depend on which zero
it is). Row NaNs are the canonical 0x7e00.
"""

from __future__ import annotations

from fractions import Fraction
import functools
import math

import numba
from numba import prange
import numpy as np

from nli.formats import FP16_NAN, FP16_NEG_INF
from nli.grid import rne32
from nli.prescale import prescale_exponents
from nli.unit_checks import check_dtypes

from .fp import f16_to_f32_vec, f16_to_f64, rne16_f32, rne16_f64, rne32_f64
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
from .unit import _decode32, output_lut, output_values

PARALLEL_MIN_ELEMENTS = 1 << 14  # fewer elements than this: one thread


# ----------------------------------------------------------------------------- section 5
@numba.njit(cache=True, nogil=True)
def _inverse_reduced(v, outs, rsqrt):
    """Reduced-mode reciprocal (rsqrt=False) or rsqrt of the FP32 value v (a float64)."""
    if v != v:
        return np.uint16(FP16_NAN)
    neg = v < 0.0 or (v == 0.0 and math.copysign(1.0, v) < 0.0)
    if neg and rsqrt:
        return np.uint16(0xFC00) if v == 0.0 else np.uint16(FP16_NAN)
    sign = 0x8000 if neg else 0  # the reciprocal is odd
    v = abs(v)
    if v == 0.0:
        return np.uint16(sign | 0x7C00)
    if v == np.inf:
        return np.uint16(sign)
    fm, fe = math.frexp(v)  # v = fm 2^fe exactly, fm in [0.5, 1)
    m = 2.0 * fm
    k = fe - 1  # v = m 2^k, m in [1, 2)
    if rsqrt and (k & 1) != 0:
        m *= 2.0  # m in [2, 4), k even
        k -= 1
    y = f16_to_f64(outs[rne16_f64(m)])  # table(RNE16(m))
    r = rne16_f64(math.ldexp(y, -k if not rsqrt else -(k // 2)))
    return r if r == FP16_NAN else np.uint16(r ^ sign)


@numba.njit(cache=True, nogil=True)
def _inverse(v, outs, reduced, rsqrt):
    """Section 5 of the FP32 value v (held as a float64): FP16 bits."""
    if reduced:
        return _inverse_reduced(v, outs, rsqrt)
    return outs[rne16_f64(v)]  # direct: table(RNE16(v))


@numba.njit(cache=True, nogil=True, parallel=True)
def _inverse_all(vs, out, outs, reduced, rsqrt):
    for j in prange(vs.size):
        out[j] = _inverse(np.float64(vs[j]), outs, reduced, rsqrt)


# ----------------------------------------------------------------------------- sums
GROUP = 8  # rows whose FP32 sums run interleaved (independent chains; each stays sequential)


@numba.njit(cache=True, nogil=True)
def _chain(v, square):
    """Sequential FP32 sum of v[0..n-1] (or of their squares), in index order."""
    s = v[0] * v[0] if square else v[0]
    for i in range(1, v.size):
        s = s + (v[i] * v[i] if square else v[i])
    return s


@numba.njit(cache=True, nogil=True)
def _chains8(b, square, sums):
    """sums[g] = _chain(b[g], square) for the 8 rows of b (float32[8, n]), interleaved
    only so the CPU overlaps the eight latency chains."""
    sq = square
    s0 = b[0, 0] * b[0, 0] if sq else b[0, 0]
    s1 = b[1, 0] * b[1, 0] if sq else b[1, 0]
    s2 = b[2, 0] * b[2, 0] if sq else b[2, 0]
    s3 = b[3, 0] * b[3, 0] if sq else b[3, 0]
    s4 = b[4, 0] * b[4, 0] if sq else b[4, 0]
    s5 = b[5, 0] * b[5, 0] if sq else b[5, 0]
    s6 = b[6, 0] * b[6, 0] if sq else b[6, 0]
    s7 = b[7, 0] * b[7, 0] if sq else b[7, 0]
    for i in range(1, b.shape[1]):
        s0 = s0 + (b[0, i] * b[0, i] if sq else b[0, i])
        s1 = s1 + (b[1, i] * b[1, i] if sq else b[1, i])
        s2 = s2 + (b[2, i] * b[2, i] if sq else b[2, i])
        s3 = s3 + (b[3, i] * b[3, i] if sq else b[3, i])
        s4 = s4 + (b[4, i] * b[4, i] if sq else b[4, i])
        s5 = s5 + (b[5, i] * b[5, i] if sq else b[5, i])
        s6 = s6 + (b[6, i] * b[6, i] if sq else b[6, i])
        s7 = s7 + (b[7, i] * b[7, i] if sq else b[7, i])
    sums[0], sums[1], sums[2], sums[3] = s0, s1, s2, s3
    sums[4], sums[5], sums[6], sums[7] = s4, s5, s6, s7


@numba.njit(cache=True, nogil=True)
def _group_sums(buf, g, square, sums):
    """sums[k] = FP32 (square) sum of buf[k] for k < g."""
    if g == GROUP:
        _chains8(buf, square, sums)
    else:
        for k in range(g):
            sums[k] = _chain(buf[k], square)


# ----------------------------------------------------------------------------- softmax
@numba.njit(cache=True, nogil=True)
def _softmax_exps(x, d, ev, exp_vals):
    """Steps 1-2 of one row x (uint16[L], L >= 1): ev[i] = e_i (float32), d is scratch
    (uint16[>= L]). Returns False for a row holding a NaN or only -inf. The loops
    are branch-free so they vectorize; the key of an FP16 pattern orders it
    numerically (-0 and +0 share key 0)."""
    kmax = -0x7FFF
    kmin = 0x7FFF
    for i in range(x.size):
        b = np.int32(x[i])
        key = b if b < 0x8000 else 0x8000 - b  # +inf: 0x7c00, -inf: -0x7c00
        kmax = max(kmax, key)
        kmin = min(kmin, key)
    if kmax > 0x7C00 or kmin < -0x7C00 or kmax == -0x7C00:  # a NaN, or only -inf
        return False
    m = f16_to_f32_vec(kmax if kmax >= 0 else 0x8000 - kmax)  # m = max(x)
    for i in range(x.size):
        d[i] = rne16_f32(f16_to_f32_vec(x[i]) - m)  # d_i = RNE16(x_i - m)
    for i in range(x.size):
        e = exp_vals[np.int32(d[i])]  # e_i = exp_table(d_i)
        ev[i] = np.float32(0.0) if x[i] == FP16_NEG_INF else e  # e_i = +0 where x_i = -inf
    return True


@functools.lru_cache(maxsize=None)
def _softmax_kernel(parallel: bool, f32_in: bool, f32_out: bool):
    """The Softmax kernel ``(x[R, n], out[R, n], exp_vals, recip_outs, dec, reduced)`` compiled
    for one variant, all three chosen at compile time (numba prunes the untaken branches):

    * ``f32_in``: x is float32 model activations, each rounded RNE16 at the op boundary
      (the unit's input format); otherwise x is uint16 FP16 bit patterns.
    * ``f32_out``: out is float32 holding the FP16 results (exact); otherwise uint16 bits.
    * ``parallel``: row groups run under ``prange`` on Numba's threads, else on one thread.

    A row's trailing run of -inf (a causal mask's) is not looked up: its e_i are +0, and
    adding +0 once or several times to the running sum gives the same FP32 value, so the
    sum stops at the last other element and adds +0 once."""

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
                        xb[k, i] = rne16_f32(x[r, i])  # RNE16 at the op boundary
                    row = xb[k]
                else:
                    row = x[r]
                while L > 0 and row[L - 1] == FP16_NEG_INF:
                    L -= 1
                length[k] = L
                ok[k] = L > 0 and _softmax_exps(row[:L], d, ev[k], exp_vals)
                if ok[k]:
                    top = max(top, L)
            sums = np.empty(GROUP, dtype=np.float32)
            if top > 0:
                _group_sums(ev[:, :top], r1 - r0, False, sums)  # step 3 (e_i = +0 past each L)
            for r in range(r0, r1):
                k = r - r0
                if not ok[k]:
                    for i in range(n):
                        if f32_out:
                            out[r, i] = dec[FP16_NAN]
                        else:
                            out[r, i] = FP16_NAN
                    continue
                s = sums[k] + np.float32(0.0) if top < n else sums[k]  # the rest of the +0 tail
                rf = dec[_inverse(np.float64(s), recip_outs, reduced, False)]
                e = ev[k]
                L = length[k]
                for i in range(L):
                    b = rne16_f32(e[i] * rf)  # RNE16(e_i * r), exact product
                    if f32_out:
                        out[r, i] = dec[b]
                    else:
                        out[r, i] = b
                z = rne16_f32(np.float32(0.0) * rf)  # RNE16(+0 * r): the -inf tail
                for i in range(L, n):
                    if f32_out:
                        out[r, i] = dec[z]
                    else:
                        out[r, i] = z

    return _compile_variant(kernel, "_softmax", parallel, f32_in, f32_out)


def _compile_variant(kernel, base: str, parallel: bool, f32_in: bool, f32_out: bool):
    """``kernel`` compiled for one variant, under a distinct name per variant (Numba's on-disk
    cache is keyed by it)."""
    mode = "par" if parallel else "ser"
    src = "f32" if f32_in else "bits"
    dst = "f32" if f32_out else "bits"
    kernel.__qualname__ = kernel.__name__ = f"{base}_{mode}_{src}_{dst}"
    return numba.njit(cache=True, nogil=True, parallel=parallel)(kernel)


# ----------------------------------------------------------------------------- rmsnorm
@functools.lru_cache(maxsize=None)
def _rmsnorm_kernel(parallel: bool, f32_in: bool, f32_out: bool):
    """The RMSNorm kernel ``(x[R, n], shift[R], wv[n], out[R, n], inv_n, eps, rsqrt_outs, dec,
    reduced)`` for one variant (see :func:`_softmax_kernel` for the three flags); wv = weight
    values (float32[n]), inv_n = RNE32(1/n), eps the FP32 eps (both as float64); shift = each
    row's prescale exponent s (numerics §4.1, :func:`nli.prescale.prescale_exponents`; zeros
    for 'plain' and for FP16 input, which leaves every step as in §4).

    Prescale (f32_in, s > 0): ``RNE16(x_i * 2^-s)`` is ``rne16_f32`` of the float32 product
    ``x_i * p``, p = 2^-s (1 <= s <= 113, a normal FP32). The product is exact unless its
    magnitude is below 2^-126 (an FP32 subnormal, rounded or flushed to zero by the hardware);
    any such value, and its exact counterpart, is far below 2^-25, so both RNE16 to the zero of
    the product's sign, and the FP32 rounding (or a flush, which keeps the sign) cannot change
    the result. inf and NaN stay inf and NaN. ``eps 2^(-2s)`` is ``ldexp`` in float64: exact
    (|eps| >= 2^-149 or 0, 2s <= 226, far inside float64's normal range); adding it to the FP32
    ``RNE32(q / n)`` in float64 and rounding once to FP32 is the single correct rounding by
    the argument of :func:`hw_sim.fp.add32_via_f64` (a 24-bit operand at any float64
    exponent: the sum is exact in float64 unless the exponents are more than 29 apart, and then
    the smaller operand is below a 2^-6 fraction of the larger one's FP32 half-ulp)."""

    def kernel(x, shift, wv, out, inv_n, eps, rsqrt_outs, dec, reduced):
        rows, n = x.shape
        for grp in prange((rows + GROUP - 1) // GROUP):
            r0 = grp * GROUP
            r1 = min(rows, r0 + GROUP)
            xv = np.empty((GROUP, n), dtype=np.float32)
            for r in range(r0, r1):
                b = xv[r - r0]
                if f32_in and shift[r] != 0:
                    p = np.float32(math.ldexp(1.0, -shift[r]))  # 2^-s, exact
                    for i in range(n):
                        b[i] = f16_to_f32_vec(rne16_f32(x[r, i] * p))  # RNE16(x_i 2^-s)
                else:
                    for i in range(n):
                        if f32_in:
                            b[i] = f16_to_f32_vec(rne16_f32(x[r, i]))  # RNE16 at the op boundary
                        else:
                            b[i] = f16_to_f32_vec(x[r, i])
            sums = np.empty(GROUP, dtype=np.float32)
            _group_sums(xv, r1 - r0, True, sums)  # q: squares exact in FP32
            for r in range(r0, r1):
                e = math.ldexp(eps, -2 * shift[r])  # eps 2^(-2s), exact in float64
                v = rne32_f64(rne32_f64(np.float64(sums[r - r0]) * inv_n) + e)
                rf = dec[_inverse(v, rsqrt_outs, reduced, True)]
                b = xv[r - r0]
                for i in range(n):
                    h = rne16_f32(b[i] * rf)  # RNE16(x_i * r)
                    y = rne16_f32(f16_to_f32_vec(h) * wv[i])  # RNE16(h_i * w_i)
                    if f32_out:
                        out[r, i] = dec[y]
                    else:
                        out[r, i] = y

    return _compile_variant(kernel, "_rmsnorm", parallel, f32_in, f32_out)


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
    kernel = _softmax_kernel(rows.size >= PARALLEL_MIN_ELEMENTS, f32_in, f32_out)
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
    kernel = _rmsnorm_kernel(rows.size >= PARALLEL_MIN_ELEMENTS, f32_in, f32_out)
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
    _inverse_all(flat, out, output_lut(table), reduced, rsqrt)
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
