"""Datapath oracle, the unit (numerics §3): one table lookup and interpolation on exact values
(tests/naive_fp.py), one input at a time. Slow on purpose.
"""

from fractions import Fraction as _NvF

from naive_fp import (
    NvVal,
    nv16,
    nv32,
    nv_add,
    nv_bf16,
    nv_encode16,
    nv_encode_bf16,
    nv_floor,
    nv_lt,
    nv_mul,
    nv_rne16,
    nv_rne32,
    nv_rne_bf16,
    nv_sub,
)
import numpy as np


class NvTable:
    """A table's fields decoded once (the oracle reads only numerics §2 fields)."""

    def __init__(self, table):
        self.bf16 = getattr(table, "dtype", "fp16") == "bf16"  # numerics §13
        dec = nv_bf16 if self.bf16 else nv16
        self.decode = dec
        self.cut = [dec(c) for c in table.cutpoints]
        self.bins = [int(b) for b in table.bins]
        self.base = [int(b) for b in table.base]
        self.mul = [nv32(int(m)) for m in np.asarray(table.mul, np.float32).view(np.uint32)]
        self.lut = [dec(v) for v in table.lut]
        self.below, self.above = int(table.below), int(table.above)
        self.fp16 = table.precision == "fp16"


def nv_unit(nt, x):
    """Numerics §3 for one input NvVal x (an FP16 value) -> FP16 bits; for a bf16 table
    (numerics §13) x is a BF16 value and the output BF16 bits."""
    if x.is_nan():
        return 0x7FC0 if nt.bf16 else 0x7E00
    K = len(nt.bins)
    if nv_lt(x, nt.cut[0]):
        return nt.below
    if not nv_lt(x, nt.cut[K]):
        return nt.above
    lo, hi = 0, K - 1  # bisect for the largest i <= K-1 with c_i <= x
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if nv_lt(x, nt.cut[mid]):
            hi = mid - 1
        else:
            lo = mid
    i = lo
    rnd = nv_rne16 if nt.fp16 else nv_rne32
    dx = rnd(nv_sub(x, nt.cut[i]))
    mul = nv_rne16(nt.mul[i]) if nt.fp16 else nt.mul[i]
    u = rnd(nv_mul(dx, mul))
    a = nv_floor(u)
    top = NvVal("num", _NvF(nt.bins[i] - 1))
    if nv_lt(top, a):
        a = top
    t = nv_sub(u, a)  # exact (numerics §3 says so; a is the float floor, so t is never -0)
    g = nt.base[i] + int(a.q)
    y0, y1 = nt.lut[g], nt.lut[g + 1]
    dy = rnd(nv_sub(y1, y0))
    if nt.fp16:
        return nv_encode16(nv_rne16(nv_add(y0, nv_mul(t, dy))))
    p = nv_rne32(nv_mul(t, dy))
    if nt.bf16:
        return nv_encode_bf16(nv_rne_bf16(nv_rne32(nv_add(y0, p))))
    return nv_encode16(nv_rne16(nv_rne32(nv_add(y0, p))))


def nv_unit_all(table, xbits=None):
    """The oracle's output bits for the given inputs (default: all 65,536 encodings of the
    table's dtype), uint16."""
    nt = NvTable(table)
    xs = range(1 << 16) if xbits is None else [int(b) for b in np.asarray(xbits).reshape(-1)]
    return np.array([nv_unit(nt, nt.decode(b)) for b in xs], dtype=np.uint16)
