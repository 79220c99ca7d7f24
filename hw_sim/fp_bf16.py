"""RNE_bf16 of a float64, bit-exact, for Numba kernels (numerics §13).

The other BF16 primitives (:func:`hw_sim.fp.bf16_to_f32`, :func:`hw_sim.fp.rne_bf16_f32`,
:func:`hw_sim.fp.bf16_decode_table`) live in :mod:`hw_sim.fp`; this one rounds a float64 that
holds an exact value which need not be an FP32 value (reduced mode's ``table(m) 2^-k``, and
``m`` itself), once, on the integer bit pattern, never by the hardware.

Where a kernel computes ``RNE_bf16(a op b)`` for BF16 operands (or an FP32 sum and a BF16 value)
as ``rne_bf16_f32`` of the float32 result, the double rounding is innocuous (numerics §13:
FP32's 24 bits >= 2 * 8 + 2, Figueroa 1995); this relies on the hardware's IEEE float32
arithmetic with gradual underflow (no FTZ/DAZ, which Numba and NumPy never enable), because BF16
subnormals are FP32 subnormals.
"""

from __future__ import annotations

import numba
import numpy as np

from nli.bitcast import f64_as_i64
from nli.formats import BF16_NAN, BF16_POS_INF

from .fp import _round_shift


@numba.njit(cache=True, nogil=True)
def rne_bf16_f64(v):
    """RNE_bf16 of a float64 -> BF16 bits, one rounding on v's bits: normal results keep 7 of
    52 fraction bits (a carry may reach ``0x7f80`` = inf); below 2^-126 the value is rounded in
    units of 2^-133; |v| >= 2^128 is inf; NaN -> 0x7fc0."""
    if v != v:
        return np.uint16(BF16_NAN)
    u = f64_as_i64(v)
    sign = np.int64(0x8000) if u < 0 else np.int64(0)
    a = u & np.int64(0x7FFFFFFFFFFFFFFF)
    e = a >> 52  # biased float64 exponent
    if e >= 1023 + 128:  # |v| >= 2^128 (incl. inf)
        return np.uint16(sign | BF16_POS_INF)
    if e < 1023 - 134:  # |v| < 2^-134: below half the least subnormal
        return np.uint16(sign)
    if e < 1023 - 126:
        # subnormal: v = m 2^(e-1075); in units of 2^-133 that is m / 2^(942-e), 46..53
        m = (a & np.int64(0xFFFFFFFFFFFFF)) | (np.int64(1) << 52)
        q = _round_shift(m, 942 - e, 0)
    else:
        # normal: rebias 1023 -> 127 and drop 45 fraction bits
        q = _round_shift(a - ((1023 - 127) << 52), 45, 0)
    return np.uint16(sign | q)


# numba cache stamp: 2f42c321b28878d9 (nli/kernel_stamps.py)
