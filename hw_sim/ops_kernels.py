"""The Numba kernels of the composite operators (numerics §4, §5, and §13 for BF16), one kernel
per semantics for both formats.

FP16 and BF16 Softmax, RMSNorm and section-5 reciprocal / rsqrt differ only in the 16-bit
format's decoding, its roundings and its special encodings; every kernel here takes the format
as a flag ``bf16`` and calls the format's primitive through :func:`_round_f32`,
:func:`_round_f64` and :func:`_decode_f32`. The kernel factories receive the flag at compile
time (a constant of the compiled variant, so the untaken format folds away); the public,
validating wrappers are :mod:`hw_sim.ops` (FP16) and :mod:`hw_sim.ops_bf16` (BF16).

Exactness of each step (the ground rules of :mod:`hw_sim.fp` and :mod:`hw_sim.fp_bf16`):

* ``d_i = RNE(x_i - m)`` is computed as RNE(RNE32(x_i - m)), the same single rounding.
  FP16: let |a| >= |b| be the operands (11 significant bits, FP16 subnormals are FP32
  normals) with exponents ea >= eb. If ea - eb <= 12 the exact difference spans at most 24
  bits: RNE32 is exact. Otherwise |b| <= (2 - 2^-10) 2^(ea-13) = 2^(ea-12) - 2^(ea-23), while
  the FP16 midpoints next to a (and the overflow threshold 65520) lie at least 2^(ea-12) away;
  the exact result stays at least 2^(ea-23) inside them and RNE32 moves it by at most
  2^(ea-24), so both roundings return a. (If a is an FP16 subnormal, so is b, and the
  difference is an exact multiple of 2^-24 below 2^-13.) BF16: RNE_bf16(RNE32(a - b)) =
  RNE_bf16(a - b) for BF16 operands (numerics §13: FP32's 24 bits >= 2 * 8 + 2, double
  rounding innocuous), with the hardware's gradual underflow (BF16 subnormals are FP32's).
* FP32 running sums are IEEE float32 additions (one RNE32 each), in index order. FP16
  operands and squares (22 bits) are exact float32 values, multiples of 2^-48: no FP32
  subnormal arises. A BF16 square ``x_i * x_i`` is RNE32(x_i^2), one IEEE rounding (overflow
  past FP32 to inf, tiny squares to FP32 subnormals or zero): numerics §13's RMSNorm step 1.
* ``q * RNE32(1/n)`` is an FP32 x FP32 product, exact in float64, rounded by
  :func:`rne32_f64`; ``+ eps`` is an FP32 + FP32 sum, rounded once correctly by the
  float64-then-RNE32 argument of :func:`hw_sim.fp.add32_via_f64`. ``RNE32(1/n)`` is computed
  exactly in Python with Fractions (the wrappers).
* ``e_i * r``, ``x_i * r``, ``h_i * w_i``: FP16 x FP16 products are exact in float32 (22 bits,
  magnitude in [2^-48, 2^32)) -> ``rne16_f32``; BF16 x BF16 products are RNE32 of the exact
  product, then ``rne_bf16_f32``: innocuous double rounding (numerics §13).
* Reduced mode: ``frexp`` splits the float64 holding the FP32 ``v`` exactly; ``table(..) *
  2^-k`` is a power-of-two scaling, exact in float64 (|k| <= 149), rounded once by
  ``rne16_f64`` / ``rne_bf16_f64`` on its bits. Direct mode rounds the FP32 ``v`` by the same
  float64 primitive: one rounding of an exact value.
* RMSNorm's prescale (FP16 only, numerics §4.1, f32 input, s > 0): ``RNE16(x_i * 2^-s)`` is
  ``rne16_f32`` of the float32 product ``x_i * p``, p = 2^-s (1 <= s <= 113, a normal FP32).
  The product is exact unless its magnitude is below 2^-126 (an FP32 subnormal, rounded or
  flushed to zero by the hardware); any such value, and its exact counterpart, is far below
  2^-25, so both RNE16 to the zero of the product's sign, and the FP32 rounding (or a flush,
  which keeps the sign) cannot change the result. inf and NaN stay inf and NaN. ``eps
  2^(-2s)`` is ``ldexp`` in float64: exact (|eps| >= 2^-149 or 0, 2s <= 226); adding it to
  the FP32 ``RNE32(q / n)`` in float64 and rounding once to FP32 is the single correct
  rounding by the argument of :func:`hw_sim.fp.add32_via_f64` (a 24-bit operand at any
  float64 exponent: the sum is exact in float64 unless the exponents are more than 29 apart,
  and then the smaller operand is below a 2^-6 fraction of the larger one's FP32 half-ulp).
  BF16 rows have no prescale (shift 0 everywhere: every step as written).

Special values (numerics §5, project choices): the reciprocal is odd, r(-v) = -r(v), so -0 ->
-inf and -inf -> -0; rsqrt(-0) = -inf and rsqrt of any other negative value (including -inf)
is NaN. Softmax's max ``m`` is the first maximal element (the result does not depend on which
zero it is). NaNs are the format's canonical NaN (0x7e00, 0x7fc0).
"""

from __future__ import annotations

import functools
import math

import numba
from numba import prange
import numpy as np

from nli.formats import (
    BF16_NAN,
    BF16_NEG_INF,
    BF16_POS_INF,
    FP16_NAN,
    FP16_NEG_INF,
    FP16_POS_INF,
)

from .fp import bf16_to_f32, f16_to_f32_vec, rne16_f32, rne16_f64, rne32_f64, rne_bf16_f32
from .fp_bf16 import rne_bf16_f64

PARALLEL_MIN_ELEMENTS = 1 << 14  # fewer elements than this: one thread
GROUP = 8  # rows whose FP32 sums run interleaved (independent chains; each stays sequential)
_NEG_ZERO_KEY = 0x8000  # key(b) = b for b < 0x8000, else 0x8000 - b: numeric order, -0 == +0


# ----------------------------------------------------------------------------- the format
@numba.njit(cache=True, nogil=True)
def _round_f32(x, bf16):
    """RNE of a float32 to the 16-bit format -> bits (branch-free primitives)."""
    return rne_bf16_f32(x) if bf16 else rne16_f32(x)


@numba.njit(cache=True, nogil=True)
def _round_f64(v, bf16):
    """RNE of an exact float64 to the 16-bit format -> bits (one rounding on v's bits)."""
    return rne_bf16_f64(v) if bf16 else rne16_f64(v)


@numba.njit(cache=True, nogil=True)
def _decode_f32(b, bf16):
    """16-bit pattern -> the float32 it encodes (exact)."""
    return bf16_to_f32(b) if bf16 else f16_to_f32_vec(b)


# ----------------------------------------------------------------------------- section 5
@numba.njit(cache=True, nogil=True)
def _inverse_reduced(v, outs, rsqrt, bf16):
    """Reduced-mode reciprocal (rsqrt=False) or rsqrt of the FP32 value v (a float64) -> bits.
    outs: the table's output LUT (uint16[65536])."""
    nan = BF16_NAN if bf16 else FP16_NAN
    inf = BF16_POS_INF if bf16 else FP16_POS_INF
    if v != v:
        return np.uint16(nan)
    neg = v < 0.0 or (v == 0.0 and math.copysign(1.0, v) < 0.0)
    if neg and rsqrt:
        return np.uint16(0x8000 | inf) if v == 0.0 else np.uint16(nan)
    sign = 0x8000 if neg else 0  # the reciprocal is odd
    v = abs(v)
    if v == 0.0:
        return np.uint16(sign | inf)
    if v == np.inf:
        return np.uint16(sign)
    fm, fe = math.frexp(v)  # v = fm 2^fe exactly, fm in [0.5, 1)
    m = 2.0 * fm
    k = fe - 1  # v = m 2^k, m in [1, 2); k >= -149 for an FP32 subnormal
    if rsqrt and (k & 1) != 0:
        m *= 2.0  # m in [2, 4), k even
        k -= 1
    y = np.float64(_decode_f32(outs[_round_f64(m, bf16)], bf16))  # table(RNE(m)), exact
    r = _round_f64(math.ldexp(y, -k if not rsqrt else -(k // 2)), bf16)  # exact scaling
    return r if r == nan else np.uint16(r ^ sign)


@numba.njit(cache=True, nogil=True)
def _inverse(v, outs, reduced, rsqrt, bf16):
    """Section 5 of the FP32 value v (held as a float64) -> bits."""
    if reduced:
        return _inverse_reduced(v, outs, rsqrt, bf16)
    return outs[_round_f64(v, bf16)]  # direct: table(RNE(v))


@numba.njit(cache=True, nogil=True, parallel=True)
def _inverse_all(vs, out, outs, reduced, rsqrt, bf16):
    for j in prange(vs.size):
        out[j] = _inverse(np.float64(vs[j]), outs, reduced, rsqrt, bf16)


# ----------------------------------------------------------------------------- sums
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
def _softmax_exps(x, d, ev, exp_vals, bf16):
    """Steps 1-2 of one row x (uint16[L], L >= 1): ev[i] = e_i (float32), d is scratch
    (uint16[>= L]). Returns False for a row holding a NaN or only -inf. The key of a 16-bit
    pattern orders it numerically (-0 and +0 share key 0; NaNs lie beyond +-inf's key)."""
    inf = BF16_POS_INF if bf16 else FP16_POS_INF
    neg_inf = BF16_NEG_INF if bf16 else FP16_NEG_INF
    kmax = -0x7FFF
    kmin = 0x7FFF
    for i in range(x.size):
        b = np.int32(x[i])
        key = b if b < _NEG_ZERO_KEY else _NEG_ZERO_KEY - b
        kmax = max(kmax, key)
        kmin = min(kmin, key)
    if kmax > inf or kmin < -inf or kmax == -inf:  # a NaN, or only -inf
        return False
    m = _decode_f32(kmax if kmax >= 0 else _NEG_ZERO_KEY - kmax, bf16)  # m = max(x)
    for i in range(x.size):
        d[i] = _round_f32(_decode_f32(x[i], bf16) - m, bf16)  # d_i = RNE(x_i - m)
    for i in range(x.size):
        e = exp_vals[np.int32(d[i])]  # e_i = exp_table(d_i)
        ev[i] = np.float32(0.0) if x[i] == neg_inf else e  # e_i = +0 where x_i = -inf
    return True


def _compile_variant(kernel, base: str, parallel: bool, f32_in: bool, f32_out: bool):
    """``kernel`` compiled for one variant, under a distinct name per variant (Numba's on-disk
    cache is keyed by it)."""
    mode = "par" if parallel else "ser"
    src = "f32" if f32_in else "bits"
    dst = "f32" if f32_out else "bits"
    kernel.__qualname__ = kernel.__name__ = f"{base}_{mode}_{src}_{dst}"
    return numba.njit(cache=True, nogil=True, parallel=parallel)(kernel)


@functools.lru_cache(maxsize=None)
def softmax_kernel(bf16: bool, parallel: bool, f32_in: bool, f32_out: bool):
    """The Softmax kernel ``(x[R, n], out[R, n], exp_vals, recip_outs, dec, reduced)`` compiled
    for one variant, all four chosen at compile time (numba prunes the untaken branches):

    * ``bf16``: the format (numerics §13) instead of FP16;
    * ``f32_in``: x is float32 model activations, each rounded to the format at the op
      boundary (the unit's input); otherwise x is uint16 bit patterns;
    * ``f32_out``: out is float32 holding the 16-bit results (exact); otherwise uint16 bits;
    * ``parallel``: row groups run under ``prange`` on Numba's threads, else on one thread.

    exp_vals: the exp table's outputs as float32[65536]; recip_outs: the reciprocal table's
    output bits; dec: the format's decoding table. A row's trailing run of -inf (a causal
    mask's) is not looked up: its e_i are +0, and adding +0 once or several times to the
    running sum gives the same FP32 value, so the sum stops at the last other element and adds
    +0 once."""
    nan = BF16_NAN if bf16 else FP16_NAN
    neg_inf = BF16_NEG_INF if bf16 else FP16_NEG_INF

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
                        xb[k, i] = _round_f32(x[r, i], bf16)  # RNE at the op boundary
                    row = xb[k]
                else:
                    row = x[r]
                while L > 0 and row[L - 1] == neg_inf:
                    L -= 1
                length[k] = L
                ok[k] = L > 0 and _softmax_exps(row[:L], d, ev[k], exp_vals, bf16)
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
                            out[r, i] = dec[nan]
                        else:
                            out[r, i] = nan
                    continue
                s = sums[k] + np.float32(0.0) if top < n else sums[k]  # the rest of the +0 tail
                rf = dec[_inverse(np.float64(s), recip_outs, reduced, False, bf16)]
                e = ev[k]
                L = length[k]
                for i in range(L):
                    b = _round_f32(e[i] * rf, bf16)  # RNE(e_i * r)
                    if f32_out:
                        out[r, i] = dec[b]
                    else:
                        out[r, i] = b
                z = _round_f32(np.float32(0.0) * rf, bf16)  # RNE(+0 * r): the -inf tail
                for i in range(L, n):
                    if f32_out:
                        out[r, i] = dec[z]
                    else:
                        out[r, i] = z

    return _compile_variant(
        kernel, "_softmax_bf16" if bf16 else "_softmax", parallel, f32_in, f32_out
    )


# ----------------------------------------------------------------------------- rmsnorm
@functools.lru_cache(maxsize=None)
def rmsnorm_kernel(bf16: bool, parallel: bool, f32_in: bool, f32_out: bool):
    """The RMSNorm kernel ``(x[R, n], shift[R], wv[n], out[R, n], inv_n, eps, rsqrt_outs, dec,
    reduced)`` for one variant (see :func:`softmax_kernel` for the four flags); wv = weight
    values (float32[n]), inv_n = RNE32(1/n), eps the FP32 eps (both as float64); shift = each
    row's prescale exponent s (numerics §4.1, :func:`nli.prescale.prescale_exponents`; zeros
    for 'plain', for 16-bit input and for BF16, which leaves every step as in §4 / §13)."""

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
                        b[i] = _decode_f32(_round_f32(x[r, i] * p, bf16), bf16)  # RNE(x_i 2^-s)
                else:
                    for i in range(n):
                        if f32_in:
                            b[i] = _decode_f32(_round_f32(x[r, i], bf16), bf16)  # op boundary
                        else:
                            b[i] = _decode_f32(x[r, i], bf16)
            sums = np.empty(GROUP, dtype=np.float32)
            _group_sums(xv, r1 - r0, True, sums)  # q: RNE32(x_i^2) added in FP32, index order
            for r in range(r0, r1):
                e = math.ldexp(eps, -2 * shift[r])  # eps 2^(-2s), exact in float64
                v = rne32_f64(rne32_f64(np.float64(sums[r - r0]) * inv_n) + e)
                rf = dec[_inverse(v, rsqrt_outs, reduced, True, bf16)]
                b = xv[r - r0]
                for i in range(n):
                    h = _round_f32(b[i] * rf, bf16)  # RNE(x_i * r)
                    y = _round_f32(_decode_f32(h, bf16) * wv[i], bf16)  # RNE(h_i * w_i)
                    if f32_out:
                        out[r, i] = dec[y]
                    else:
                        out[r, i] = y

    return _compile_variant(
        kernel, "_rmsnorm_bf16" if bf16 else "_rmsnorm", parallel, f32_in, f32_out
    )


def inverse_all(vs, out, outs, reduced: bool, rsqrt: bool, bf16: bool) -> None:
    """out[j] = section 5 of the FP32 value vs[j] (float32[N]) -> bits (uint16[N])."""
    _inverse_all(vs, out, outs, reduced, rsqrt, bf16)


# numba cache stamp: 88c4b65f01d7f35f (nli/kernel_stamps.py)
