"""Bit-exact FP16/FP32 arithmetic for Numba kernels (numerics §1).

Every primitive here returns the correctly rounded result of one exact
operation, or says precisely which hardware operation it relies on and why
that operation is exact. FP16 values travel as ``uint16`` bit patterns (or as
the float32/float64 they equal exactly); FP32 values as ``float32``.

Ground rules, used in every argument below:

* IEEE 754 float32/float64 ``+ - *`` and float64->float32 conversion round to
  nearest-even once, given the default environment: no fastmath (so LLVM never
  contracts ``a*b+c`` into an FMA and never reassociates), no flush-to-zero.
  FP16 subnormals are normal numbers in float32 and float64, and the datapath
  never produces an FP32 subnormal except through a subnormal ``eps`` in
  RMSNorm, which goes through :func:`rne32_f64` (integer rounding, no hardware
  subnormals), and RMSNorm's prescaled inputs ``x_i 2^-s`` (numerics §4.1),
  whose FP16 rounding is the same zero whether the product is subnormal or
  flushed; so a foreign FTZ/DAZ setting cannot change a result.
* An FP16 value has at most 11 significant bits and is a multiple of 2^-24
  with magnitude < 2^16; an FP32 value has at most 24 significant bits.
  A float64 holds any real with at most 53 significant bits exactly.
* Exact zero sums: IEEE gives +0 for ``x + (-x)`` and for ``(+0) + (-0)``,
  and -0 only for ``(-0) + (-0)``; product signs are the XOR of the operand
  signs. Both are exactly numerics §1's rules, so exact float64/float32
  operations already produce the zero signs of numerics §1.
* Rounding to FP16 never uses the hardware: :func:`rne16_f64` and
  :func:`rne16_f32` round on the integer bit pattern (round-to-nearest-even,
  subnormals kept, overflow to +-inf, every NaN -> 0x7e00).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from nli.bitcast import f32_as_i32, f64_as_i64, i32_as_f32, i64_as_f64  # noqa: F401 (re-exported)
from nli.formats import BF16_NAN, FP16_NAN, FP16_POS_INF

_JIT = dict(cache=True, nogil=True)
_TWO_M24 = 2.0**-24
_TWO_M149 = 2.0**-149
_TWO_128 = 2.0**128


# bit casts (f64_as_i64, i64_as_f64, f32_as_i32, i32_as_f32) live in nli.bitcast, shared with
# the solver


# ----------------------------------------------------------------------------- FP16 decode
@numba.njit(**_JIT)
def f16_to_f64(b):
    """FP16 bits -> the float64 it encodes (exact: assembles float64 bits, no rounding)."""
    b = np.int64(b) & 0xFFFF
    sign = (b & 0x8000) << 48
    e = (b >> 10) & 0x1F
    m = b & 0x3FF
    if e == 0x1F:
        if m != 0:
            return np.nan
        return i64_as_f64(sign | np.int64(0x7FF0000000000000))
    if e == 0:
        # subnormal or zero: m * 2^-24 with m < 2^10, exact in float64
        v = np.float64(m) * _TWO_M24
        return -v if sign != 0 else v
    return i64_as_f64(sign | ((e - 15 + 1023) << 52) | (m << 42))


@numba.njit(**_JIT)
def f16_to_f32(b):
    """FP16 bits -> the float32 it encodes (exact: every FP16 value is an FP32 value)."""
    return np.float32(f16_to_f64(b))


@numba.njit(**_JIT)
def f16_to_f32_vec(bits):
    """FP16 bits -> float32, exact and branch-free (selects only), so loops over it
    vectorize. Normal, inf and NaN: shift the pattern into place and rebias the
    exponent (15 -> 127, and 31 -> 255); subnormal m: float32(m) * 2^-24, an exact
    product (m < 2^10). The sign bit is or-ed in last (-0 stays -0)."""
    b = np.int32(bits)
    a = b & 0x7FFF
    nb = (a << 13) + ((127 - 15) << 23)
    nb = nb + ((255 - 31 - (127 - 15)) << 23) if a >= 0x7C00 else nb
    v = np.float32(a) * np.float32(_TWO_M24) if a < 0x400 else i32_as_f32(np.int32(nb))
    return i32_as_f32(np.int32(f32_as_i32(v) | ((b & 0x8000) << 16)))


def f16_decode_table(dtype=np.float32) -> np.ndarray:
    """All 65,536 FP16 encodings decoded: float32 (or float64)[65536], index = bit pattern."""
    out = np.empty(1 << 16, dtype=np.float64)
    _decode_all(out)
    return out.astype(dtype)


@numba.njit(**_JIT)
def _decode_all(out):
    for i in range(out.size):
        out[i] = f16_to_f64(i)


# ----------------------------------------------------------------------------- RNE to FP16
@numba.njit(**_JIT)
def _round_shift(m, shift, tie):
    """Round the integer m / 2^shift to nearest; ``tie`` breaks an exact half:
    +1 rounds up, -1 rounds down, 0 rounds to even. m >= 0, 1 <= shift <= 62.

    Branch-free: with m = q 2^shift + rem, adding half - 1 + bump (bump in {0, 1})
    carries into q exactly when rem > half, or rem == half and bump == 1."""
    lsb = (m >> shift) & 1
    bump = lsb if tie == 0 else (np.int64(1) if tie > 0 else np.int64(0))
    return (m + ((np.int64(1) << (shift - 1)) - 1) + bump) >> shift


@numba.njit(**_JIT)
def _rne16_bits(v, tie):
    """RNE16 of float64 ``v`` (+ an infinitesimal of sign ``tie`` relative to |v|)."""
    if v != v:
        return np.uint16(FP16_NAN)
    u = f64_as_i64(v)
    sign = np.int64(0x8000) if u < 0 else np.int64(0)
    a = u & np.int64(0x7FFFFFFFFFFFFFFF)
    e = a >> 52  # biased float64 exponent
    if e >= 1023 + 16:  # |v| >= 2^16 (incl. inf): overflows
        return np.uint16(sign | FP16_POS_INF)
    if e < 1023 - 25:  # |v| < 2^-25: below half the least subnormal
        return np.uint16(sign)
    if e < 1023 - 14:
        # FP16 subnormal range: v = m 2^(e-1075); in units of 2^-24 that is m / 2^(1051-e)
        m = (a & np.int64(0xFFFFFFFFFFFFF)) | (np.int64(1) << 52)
        q = _round_shift(m, 1051 - e, tie)
    else:
        # normal: rebias the exponent to FP16's (bias 15) and drop 42 mantissa bits;
        # a carry out of the mantissa increments the exponent, 0x7c00 being +inf
        q = _round_shift(a - ((1023 - 15) << 52), 42, tie)
    return np.uint16(sign | q)


@numba.njit(**_JIT)
def rne16_f64(v):
    """RNE16 of a float64 value -> FP16 bits. Exact: works on v's bits."""
    return _rne16_bits(v, 0)


@numba.njit(**_JIT)
def rne16_sum(s, err):
    """RNE16(s + err) where s = RN64(S) and err = S - s exactly (from :func:`two_sum`).

    Why it is exact: every FP16 value and every FP16 rounding midpoint (12
    significant bits, including the overflow threshold 65520) is a float64.
    If s is not such a midpoint, no midpoint lies between S and s (a float64
    strictly closer to S than s would contradict s = RN64(S)), so
    RNE16(S) = RNE16(s). If s is a midpoint, S lies on err's side of it, and
    only err = 0 is a true tie (to even).
    """
    if err == 0.0 or err != err or s != s:
        return _rne16_bits(s, 0)
    same_sign = (err > 0.0) == (s > 0.0)
    return _rne16_bits(s, 1 if same_sign else -1)


@numba.njit(**_JIT)
def rne16_f32(x):
    """RNE16 of a float32 -> FP16 bits, branch-free (selects only) so loops vectorize.

    With a = |x|'s bits: a normal FP16 result rebiases the exponent and rounds
    off 13 mantissa bits on the integer pattern (a carry may reach 0x7c00 = inf).
    An FP16-subnormal result (|x| < 2^-14) is |x| + 0.5 in float32: that sum
    lies in [0.5, 0.5 + 2^-14], where the FP32 quantum is 2^-24, so the one IEEE
    RNE32 rounding of the addition is exactly the FP16 subnormal rounding, and
    the low bits of the sum count units of 2^-24 (Giesen's float_to_half trick).
    |x| >= 2^16 gives inf and any NaN the canonical 0x7e00."""
    u = np.int64(f32_as_i32(x))
    sign = (u >> 16) & 0x8000
    a = u & 0x7FFFFFFF
    normal = (a - ((127 - 15) << 23) + 0xFFF + ((a >> 13) & 1)) >> 13
    sub = np.int64(f32_as_i32(i32_as_f32(np.int32(a)) + np.float32(0.5))) - 0x3F000000
    q = normal if a >= 0x38800000 else sub  # 2^-14: smallest FP16 normal
    q = FP16_POS_INF if a >= 0x47800000 else q  # 2^16: overflow (and inf)
    r = sign | q
    r = FP16_NAN if a > 0x7F800000 else r
    return np.uint16(r)


# ----------------------------------------------------------------------------- BF16 (numerics §13)
@numba.njit(**_JIT)
def bf16_to_f32(b):
    """BF16 bits -> the float32 it encodes (exact: the BF16 pattern is the top half of the FP32
    pattern of the same value)."""
    return i32_as_f32(np.int32((np.int64(b) & 0xFFFF) << 16))


def bf16_decode_table(dtype=np.float32) -> np.ndarray:
    """All 65,536 BF16 encodings decoded: float32 (or float64)[65536], index = bit pattern."""
    b32 = np.arange(1 << 16, dtype=np.uint32) << np.uint32(16)
    return b32.view(np.float32).astype(dtype)


@numba.njit(**_JIT)
def rne_bf16_f32(x):
    """RNE_bf16 of a float32 -> BF16 bits (numerics §13), branch-free. On the FP32 pattern,
    adding 0x7fff plus the lowest kept bit and dropping the low 16 bits rounds the magnitude to
    nearest, ties to even; a carry out of the fraction bumps the exponent, which is the correct
    result (0x7f80 = inf on overflow). The sign bit rides along untouched (the sum of a finite
    magnitude below 0x7f800000 and 0x8000 cannot carry into it). Any NaN gives 0x7fc0."""
    u = np.int64(f32_as_i32(x)) & 0xFFFFFFFF
    r = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    r = BF16_NAN if (u & 0x7FFFFFFF) > 0x7F800000 else r
    return np.uint16(r)


# ----------------------------------------------------------------------------- RNE to FP32
@numba.njit(**_JIT)
def rne32_f64(v):
    """RNE32 of a float64 value, returned as the float64 it equals. Integer rounding of
    v's bits, FP32 subnormals included; used where an FP32 subnormal can occur (eps)."""
    if v != v:
        return v
    u = f64_as_i64(v)
    neg = u < 0
    a = u & np.int64(0x7FFFFFFFFFFFFFFF)
    e = a >> 52
    if e >= 1023 + 128:
        r = np.inf
    elif e < 1023 - 150:  # |v| < 2^-150: rounds to zero
        r = 0.0
    elif e < 1023 - 126:  # FP32 subnormal: units of 2^-149
        m = (a & np.int64(0xFFFFFFFFFFFFF)) | (np.int64(1) << 52)
        r = np.float64(_round_shift(m, 1075 - 149 - e, 0)) * _TWO_M149
    else:  # keep 23 of 52 mantissa bits
        r = i64_as_f64(_round_shift(a, 29, 0) << 29)
        # a carry past 2^128 lands on float64 2^128, which is FP32 overflow
        if r >= _TWO_128:
            r = np.inf
    return -r if neg else r


@numba.njit(**_JIT)
def rne32_f64_hw(v):
    """RNE32 of a float64 by the hardware conversion (LLVM fptrunc, IEEE RNE).
    Callers guarantee the result is not an FP32 subnormal (see module docstring)."""
    return np.float32(v)


# ----------------------------------------------------------------------------- exact sums
@numba.njit(**_JIT)
def two_sum(a, b):
    """Knuth's TwoSum in float64: s = RN64(a + b) and err = (a + b) - s exactly
    (valid for any finite a, b without overflow, in round-to-nearest)."""
    s = a + b
    bb = s - a
    err = (a - (s - bb)) + (b - bb)
    return s, err


# ----------------------------------------------------------------------------- FP16 ops on bits
@numba.njit(**_JIT)
def add16(a, b):
    """RNE16(a + b) on FP16 bits. The float64 sum of two FP16 values is exact
    (multiples of 2^-24 below 2^17: at most 41 significant bits)."""
    return rne16_f64(f16_to_f64(a) + f16_to_f64(b))


@numba.njit(**_JIT)
def sub16(a, b):
    """RNE16(a - b) on FP16 bits (exact float64 difference, as in :func:`add16`)."""
    return rne16_f64(f16_to_f64(a) - f16_to_f64(b))


@numba.njit(**_JIT)
def mul16(a, b):
    """RNE16(a * b) on FP16 bits. 11 x 11 bits = 22 bits: exact in float64."""
    return rne16_f64(f16_to_f64(a) * f16_to_f64(b))


@numba.njit(**_JIT)
def fma16_f64(a, b, c):
    """RNE16(a * b + c), one rounding, for float64 operands with a*b exact in
    float64 (e.g. FP16 x FP16). The sum need not be exact: TwoSum keeps its error."""
    p = a * b
    s, err = two_sum(p, c)
    if not math.isfinite(s):  # inf (or inf - inf = NaN): no error term
        return _rne16_bits(s, 0)
    return rne16_sum(s, err)


@numba.njit(**_JIT)
def fma16(a, b, c):
    """RNE16(a * b + c) with a single rounding, on FP16 bits."""
    return fma16_f64(f16_to_f64(a), f16_to_f64(b), f16_to_f64(c))


# ----------------------------------------------------------------------------- FP32 ops
# Plain float32 ``+ - *`` in a non-fastmath Numba kernel ARE RNE32 of the exact
# result (IEEE 754); these wrappers only name them for the tests and the docs.
@numba.njit(**_JIT)
def add32(a, b):
    """RNE32(a + b) for float32 a, b (one IEEE float32 addition)."""
    return np.float32(a) + np.float32(b)


@numba.njit(**_JIT)
def mul32(a, b):
    """RNE32(a * b) for float32 a, b (one IEEE float32 multiplication)."""
    return np.float32(a) * np.float32(b)


@numba.njit(**_JIT)
def add32_via_f64(a, b):
    """RNE32(a + b) for FP32 values held as float64, computed as RNE32(RN64(a + b)).

    Why a single rounding results: let |a| >= |b| with exponents ea >= eb. If
    ea - eb <= 28 the exact sum spans at most 24 + 28 + 1 = 53 bits, so RN64 is
    exact. Otherwise |b| < 2^(ea-28) while the FP32 midpoints next to a lie at
    least 2^(ea-25) away (2^(ea-25) below a power of two), so RNE32(a + b) = a;
    RN64 is monotone and a +- 2^(ea-28) are float64 values, so RN64(a + b) stays
    within 2^(ea-28) of a and RNE32 returns a too. FP32-subnormal a: then both
    are multiples of 2^-149 below 2^-125 and the sum is exact.
    """
    return rne32_f64(a + b)
