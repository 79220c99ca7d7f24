"""Datapath oracle, the row ops (numerics §4, §5, §13): reciprocal and rsqrt, softmax and
RMSNorm of one row, on exact values through the unit oracle (tests/naive_unit.py). Slow on
purpose.
"""

from fractions import Fraction as _NvF

from naive_fp import (
    _NV_NAN,
    NvVal,
    nv16,
    nv32,
    nv_add,
    nv_bf16,
    nv_encode16,
    nv_encode_bf16,
    nv_lt,
    nv_mul,
    nv_neg,
    nv_rne16,
    nv_rne32,
    nv_rne_bf16,
    nv_sub,
)
from naive_unit import NvTable, nv_unit
import numpy as np


def _nv_split(v, odd_to_even):
    """Positive finite v = m * 2^k exactly with m in [1, 2) (or [1, 4) and k even)."""
    k = 0
    q = v.q
    while q >= 2:
        q /= 2
        k += 1
    while q < 1:
        q *= 2
        k -= 1
    if odd_to_even and k % 2:
        q *= 2
        k -= 1
    return NvVal("num", q), k


# dtype -> (decode bits, round once, encode, canonical NaN): the 16-bit format of an op's rows,
# tables and outputs (numerics §13)
NV_DTYPES = {
    "fp16": (nv16, nv_rne16, nv_encode16, 0x7E00),
    "bf16": (nv_bf16, nv_rne_bf16, nv_encode_bf16, 0x7FC0),
}


def nv_inverse(v, nt, mode, kind, dtype="fp16"):
    """Section 5: reciprocal (kind 'reciprocal') or rsqrt of an FP32 NvVal -> NvVal of ``dtype``
    (numerics §13 for bf16: RNE_bf16 in place of RNE16).
    Reduced-mode values numerics 1 left open (project choices, numerics §5, as in
    hw_sim.ops_kernels): reciprocal is odd (r(-v) = -r(v): -0 -> -inf, -inf -> -0); rsqrt(-0) = -inf
    and rsqrt of a negative value is NaN."""
    dec, rnd, _, _ = NV_DTYPES[dtype]
    if mode == "direct":
        return dec(nv_unit(nt, rnd(v)))
    if v.is_nan():
        return _NV_NAN
    if v.neg and kind == "rsqrt" and not (v.kind == "num" and v.q == 0):
        return _NV_NAN
    if v.kind == "inf":
        return NvVal("num", _NvF(0), v.neg)
    if v.q == 0:
        return NvVal("inf", neg=v.neg)
    m, k = _nv_split(NvVal("num", abs(v.q)), kind == "rsqrt")
    y = dec(nv_unit(nt, rnd(m)))
    scale = NvVal("num", _NvF(2) ** (-k if kind == "reciprocal" else -k // 2))
    r = rnd(nv_mul(y, scale))
    return nv_neg(r) if v.neg else r


def nv_softmax_row(xbits, exp_table, recip_table, mode, dtype="fp16"):
    """Numerics §4 softmax of one row of ``dtype`` bits -> list of ``dtype`` bits (numerics §13
    for bf16: d_i and out_i rounded RNE_bf16, NaN 0x7fc0; the sum stays FP32)."""
    dec, rnd, enc, nan = NV_DTYPES[dtype]
    xs = [dec(b) for b in xbits]
    n = len(xs)
    if any(v.is_nan() for v in xs) or all(v.kind == "inf" and v.neg for v in xs):
        return [nan] * n
    m = xs[0]
    for v in xs[1:]:
        if nv_lt(m, v):
            m = v
    ent = NvTable(exp_table)
    es = []
    for v in xs:
        if v.kind == "inf" and v.neg:
            es.append(NvVal("num", _NvF(0), False))
        else:
            es.append(dec(nv_unit(ent, rnd(nv_sub(v, m)))))
    s = nv_rne32(es[0])
    for e in es[1:]:
        s = nv_rne32(nv_add(s, e))
    r = nv_inverse(s, NvTable(recip_table), mode, "reciprocal", dtype)
    return [enc(rnd(nv_mul(e, r))) for e in es]


def nv_rmsnorm_row(xbits, wbits, eps, rsqrt_table, mode, dtype="fp16"):
    """Numerics §4 RMSNorm of one row of ``dtype`` bits; eps is an FP32 value (np.float32).
    For bf16 (numerics §13) each square is rounded to FP32 before it is added (an FP16 square
    is exact, so the rounding changes nothing there)."""
    dec, rnd, enc, _ = NV_DTYPES[dtype]
    xs = [dec(b) for b in xbits]
    ws = [dec(b) for b in wbits]
    n = len(xs)
    q = nv_rne32(nv_mul(xs[0], xs[0]))
    for v in xs[1:]:
        q = nv_rne32(nv_add(q, nv_rne32(nv_mul(v, v))))
    inv_n = nv_rne32(NvVal("num", _NvF(1, n)))
    e = nv32(int(np.float32(eps).view(np.uint32)))
    v = nv_rne32(nv_add(nv_rne32(nv_mul(q, inv_n)), e))
    r = nv_inverse(v, NvTable(rsqrt_table), mode, "rsqrt", dtype)
    return [enc(rnd(nv_mul(rnd(nv_mul(x, r)), w))) for x, w in zip(xs, ws)]
