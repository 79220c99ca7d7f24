"""Rounding a float64 to the grid's 16-bit format inside the cost kernels (Numba).

* :func:`_rne_q`: the LUT rounding, RNE16 (FP16) or RNE_bf16 (BF16, numerics §13), as a
  float64: the value a LUT entry will hold (:func:`_rne_binary`, RNE to any binary format);
* :func:`_ceil_index`: the grid index of a real, from the FP16 (or BF16) encoding next to it
  (:func:`_pos_bits`, :func:`_pos_bits_bf16`: directed rounding to bits, integer ops only).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .bitcast import f64_as_i64, i64_as_f64
from .formats import (
    BF16,
    BF16_MAX,
    BF16_MAX_BITS,
    BF16_MIN_NORMAL,
    BF16_OVERFLOW,
    BF16_POS_INF,
    FP16,
    FP16_MAX,
    FP16_MAX_BITS,
    FP16_MIN_NORMAL,
    FP16_OVERFLOW,
    FP16_POS_INF,
)

_FP16_EMIN, _FP16_FRACTION = FP16.emin, FP16.fraction_bits  # -14, 10
_BF16_EMIN, _BF16_FRACTION = BF16.emin, BF16.fraction_bits  # -126, 7


@numba.njit(cache=True, inline="always")
def _rne_binary(v, overflow, emin, mant):
    """RNE of a float64 to a binary format with ``mant`` fraction bits, smallest normal
    exponent ``emin`` and overflow threshold ``overflow`` (to +-inf), as a float64."""
    a = abs(v)
    if a == 0.0 or a != a:
        return v
    if a >= overflow:
        return math.copysign(np.inf, v)
    # the quantum 2^s, s = max(E, emin) - mant, E = floor(log2 a) read from a's exponent field
    # (a float64 subnormal reads E = -1023, far below emin, where s is emin - mant anyway); 2^s
    # and 2^-s built from their bits (no libm frexp / pow: this runs for every bin edge)
    s = max(((f64_as_i64(a) >> 52) & 0x7FF) - 1023, emin) - mant
    q = i64_as_f64((s + 1023) << 52)
    y = a * i64_as_f64((1023 - s) << 52)  # exact: power-of-two scaling, y < 2^(mant + 1)
    r = math.floor(y + 0.5)
    if r - y == 0.5 and r % 2.0 == 1.0:
        r -= 1.0
    return math.copysign(r * q, v)


@numba.njit(cache=True, inline="always")
def _rne_q(v, fmt):
    """The LUT rounding of the grid's format: RNE16 (fmt 0) or RNE_bf16 (fmt 1, numerics §13)."""
    if fmt == 0:
        return _rne_binary(v, FP16_OVERFLOW, _FP16_EMIN, _FP16_FRACTION)
    return _rne_binary(v, BF16_OVERFLOW, _BF16_EMIN, _BF16_FRACTION)


# ----------------------------------------------------------------------------- FP16 index of a real
@numba.njit(cache=True, inline="always")
def _pos_bits(a, up):
    """Bits of the FP16 value next to a >= 0 (up: smallest >= a, else largest <= a); 0x7c00 past
    max."""
    if a > FP16_MAX:
        return FP16_POS_INF if up else FP16_MAX_BITS
    if a < FP16_MIN_NORMAL:
        q = a * 2.0**24  # exact scaling into the subnormal count
        return int(math.ceil(q)) if up else int(math.floor(q))
    # normal: float64 bits >> 42 = (E + 1023) << 10 | top 10 fraction bits, so minus 1008 << 10
    # it is FP16's (E + 15) << 10 | frac (floor); up: + 1 if any lower fraction bit is set (a
    # carry out of frac moves into the exponent, as it should). Integer ops only: math.frexp is
    # a library call.
    b = f64_as_i64(a)
    o = (b >> 42) - (1008 << 10)
    return o + 1 if up and (b & ((1 << 42) - 1)) != 0 else o


@numba.njit(cache=True, inline="always")
def _pos_bits_bf16(a, up):
    """:func:`_pos_bits` for BF16: bits of the BF16 value next to a >= 0."""
    if a > BF16_MAX:
        return BF16_POS_INF if up else BF16_MAX_BITS
    if a < BF16_MIN_NORMAL:
        q = a * 2.0**133  # exact scaling into the subnormal count
        return int(math.ceil(q)) if up else int(math.floor(q))
    # float64 bits >> 45 = (E + 1023) << 7 | top 7 fraction bits; minus 896 << 7: BF16's
    b = f64_as_i64(a)
    o = (b >> 45) - (896 << 7)
    return o + 1 if up and (b & ((1 << 45) - 1)) != 0 else o


@numba.njit(cache=True, inline="always")
def _ceil_index(ord0, n, t, fmt=0):
    """Index of the first grid point >= t (0..n) on a grid whose first point has ordinal ord0 in
    the grid's format (fmt 0: FP16, 1: BF16)."""
    if fmt == 0:
        o = _pos_bits(t, True) if t >= 0.0 else -_pos_bits(-t, False)
    else:
        o = _pos_bits_bf16(t, True) if t >= 0.0 else -_pos_bits_bf16(-t, False)
    return min(max(o - ord0, 0), n)
