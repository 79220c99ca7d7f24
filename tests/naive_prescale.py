"""RMSNorm row prescale oracle (issue 15, hw_sim.ops.rmsnorm_f32, numerics §4.1).

The FP32 row decoded exactly (nv32); m, E(m) and s found by comparing Fractions; "m would
overflow FP16" tested as RNE16(m) = inf (not as the constant 65520); x_i 2^-s and eps 2^(-2s)
kept exact (no FP32 rounding), then numerics §4's steps on the exact values. Slow on purpose.
"""

from fractions import Fraction as _NvF

from naive_engine import _eng_rne16_mp
from naive_fp import NvVal, _nv_pow2, nv16, nv32, nv_add, nv_encode16, nv_mul, nv_rne16, nv_rne32
from naive_ops import nv_inverse
from naive_unit import NvTable
import numpy as np


def nv_prescale_exponent(x32):
    """float32[n] -> s (int) of numerics §4.1."""
    m = _NvF(0)
    for b in np.asarray(x32, np.float32).view(np.uint32):
        v = nv32(int(b))
        if v.kind == "num" and abs(v.q) > m:
            m = abs(v.q)
    if m == 0 or nv_rne16(NvVal("num", m)).kind != "inf":
        return 0
    e = 0  # E(m) = floor(log2 m): 2^e <= m < 2^(e+1)
    while _nv_pow2(e + 1) <= m:
        e += 1
    while _nv_pow2(e) > m:
        e -= 1
    s = e - 14
    assert _nv_pow2(14) <= m * _nv_pow2(-s) < _nv_pow2(15)
    return s


def nv_rmsnorm_f32_row(x32, wbits, eps, rsqrt_table, mode, rmsnorm_input="scaled"):
    """Numerics §4 RMSNorm of one FP32 row (float32[n]) entering the unit by §4.1: 'scaled'
    (the row prescale) or 'plain' (RNE16 alone) -> list of FP16 bits. eps: np.float32."""
    s = nv_prescale_exponent(x32) if rmsnorm_input == "scaled" else 0
    scale = NvVal("num", _nv_pow2(-s))
    xs = [
        nv_rne16(nv_mul(nv32(int(b)), scale)) for b in np.asarray(x32, np.float32).view(np.uint32)
    ]
    ws = [nv16(b) for b in wbits]
    q = nv_rne32(nv_mul(xs[0], xs[0]))
    for v in xs[1:]:
        q = nv_rne32(nv_add(q, nv_mul(v, v)))
    inv_n = nv_rne32(NvVal("num", _NvF(1, len(xs))))
    e = nv_mul(nv32(int(np.float32(eps).view(np.uint32))), NvVal("num", _nv_pow2(-2 * s)))
    v = nv_rne32(nv_add(nv_rne32(nv_mul(q, inv_n)), e))
    r = nv_inverse(v, NvTable(rsqrt_table), mode, "rsqrt")
    return [nv_encode16(nv_rne16(nv_mul(nv_rne16(nv_mul(x, r)), w))) for x, w in zip(xs, ws)]


def naive_fp16_rmsnorm_f32_bits(row32, w16, eps, rmsnorm_input="scaled"):
    """The engine's fp16 RMSNorm of one FP32 row (float32[n], finite values) entering by
    numerics §4.1 -> uint16[n]: RNE16(x' w / sqrt(mean(x'^2) + eps')) with x'_i = RNE16(x_i 2^-s)
    and eps' = eps 2^(-2s) exact (s = 0 for 'plain'), in mpmath at 50 digits."""
    import mpmath

    mpmath.mp.dps = 50
    s = nv_prescale_exponent(row32) if rmsnorm_input == "scaled" else 0
    scale = NvVal("num", _nv_pow2(-s))
    xv = [
        nv_rne16(nv_mul(nv32(int(b)), scale)) for b in np.asarray(row32, np.float32).view(np.uint32)
    ]
    xs = [mpmath.mpf(float(v.q)) for v in xv]
    e = mpmath.ldexp(mpmath.mpf(float(np.float32(eps))), -2 * s)
    ms = mpmath.fsum(x * x for x in xs) / len(xs) + e
    r = 1 / mpmath.sqrt(ms)  # positive
    out = []
    for v, x, wb in zip(xv, xs, np.asarray(w16, np.float16).view(np.uint16)):
        w = nv16(int(wb))
        if x == 0 or w.q == 0:  # an exact zero product: the XOR of the signs (mpmath has no -0)
            out.append(0x8000 if v.neg != w.neg else 0)
        else:
            out.append(_eng_rne16_mp(x * r * mpmath.mpf(float(w.q))))
    return np.array(out, dtype=np.uint16)
