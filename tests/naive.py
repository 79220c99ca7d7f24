"""Slow, obviously correct oracles for the fast paths (one clearly headed section per module).

Each section is owned by the module it checks; add yours, never rewrite another.
"""

# =============================================================================
# Section: cutpoint solver oracles (issue 2, nli/objective.py + nli/solver.py)
# Point-by-point segment costs in plain Python, and a brute-force DP /
# exhaustive enumeration over every cutpoint choice. Slow on purpose.
# =============================================================================
import itertools as _it

_W_FLOOR = 2.0**-14
_W_FLOORS = {"fp16": _W_FLOOR, "bf16": 2.0**-126}  # the format's smallest normal


def _naive_rne16(v):
    """RNE16 of a float64 via numpy's correctly rounded double -> half conversion."""
    import numpy as _np

    with _np.errstate(over="ignore"):
        return float(_np.float16(v))


def _naive_rne(v, fmt):
    """RNE16, or RNE_bf16 through the Fraction rounding of the datapath oracle below."""
    if fmt == "fp16":
        return _naive_rne16(v)
    r = _nv_round(NvVal("num", _NvF(v)), NV_BF16)
    return float("inf") * (-1 if r.neg else 1) if r.kind == "inf" else float(r.q)


def naive_point_errors(fn, x, j, k, B, fx=None, quantized=False, fmt="fp16"):
    """[|f(x_i) - P(x_i)| / w_i for i = j..k], P the ideal interpolant with B bins
    (quantized: P carries RNE16(f) at its points; RNE_bf16 and w's floor 2^-126 for
    fmt 'bf16').

    fx: optional list of f(x_i) for the whole grid (a cache; computed if missing)."""
    fx = [float(v) for v in fn([float(v) for v in x])] if fx is None else fx
    a, b = float(x[j]), float(x[k])
    d = b - a
    t = [a + (m * d) / B for m in range(B)] + [b]
    ft = [float(v) for v in fn(t)]
    if quantized:
        ft = [_naive_rne(v, fmt) for v in ft]
    out = []
    for i in range(j, k + 1):
        xi, fi = float(x[i]), fx[i]
        m = 0
        while m < B - 1 and t[m + 1] <= xi:
            m += 1
        p = ft[m] + (ft[m + 1] - ft[m]) * (xi - t[m]) / (t[m + 1] - t[m])
        out.append(abs(fi - p) / max(abs(fi), _W_FLOORS[fmt]))
    return out


def naive_clamp_errors(fn, x, k, right, fx=None, quantized=False, fmt="fp16"):
    """[|f(x_i) - f(x_k)| / w_i] over i <= k (or i >= k if right); quantized: RNE16(f(x_k))
    (RNE_bf16 for fmt 'bf16')."""
    fx = [float(v) for v in fn([float(v) for v in x])] if fx is None else fx
    fk = _naive_rne(fx[k], fmt) if quantized else fx[k]
    idx = range(k, len(x)) if right else range(0, k + 1)
    out = []
    for i in idx:
        fi = fx[i]
        out.append(abs(fi - fk) / max(abs(fi), _W_FLOORS[fmt]))
    return out


def _naive_combine(objective, n):
    if objective == "paper":
        return lambda errs: sum(errs) / len(errs)
    if objective == "mean":
        return lambda errs: sum(errs) / n
    return lambda errs: max(errs)


def naive_cost(fn, x, cut_idx, bins, objective, fmt="fp16"):
    """Objective of cutpoints at grid indices cut_idx (K+1) with bins (K), point by point."""
    part = _naive_combine(objective, len(x))
    fx = [float(v) for v in fn([float(v) for v in x])]
    parts = [
        part(naive_clamp_errors(fn, x, cut_idx[0], False, fx, fmt=fmt)),
        part(naive_clamp_errors(fn, x, cut_idx[-1], True, fx, fmt=fmt)),
    ]
    parts += [
        part(naive_point_errors(fn, x, a, b, B, fx, fmt=fmt))
        for a, b, B in zip(cut_idx[:-1], cut_idx[1:], bins)
    ]
    return max(parts) if objective == "max" else sum(parts)


def naive_solve(fn, x, bins, objective, quantized=False, fmt="fp16"):
    """Brute-force DP over all cutpoint choices; segment costs point by point. Returns the optimal
    cost. ``fmt`` 'bf16': BF16 LUT rounding and weight floor (numerics §13)."""
    n = len(x)
    part = _naive_combine(objective, n)
    add = max if objective == "max" else (lambda a, b: a + b)
    memo = {}
    fx = [float(v) for v in fn([float(v) for v in x])]

    def seg(j, k, B):
        if (j, k, B) not in memo:
            memo[(j, k, B)] = part(naive_point_errors(fn, x, j, k, B, fx, quantized, fmt))
        return memo[(j, k, B)]

    D = [part(naive_clamp_errors(fn, x, k, False, fx, quantized, fmt)) for k in range(n)]
    for B in bins:
        D = [
            min([add(D[j], seg(j, k, B)) for j in range(k)], default=float("inf")) for k in range(n)
        ]
    return min(
        add(D[k], part(naive_clamp_errors(fn, x, k, True, fx, quantized, fmt))) for k in range(n)
    )


def naive_enumerate(fn, x, bins, objective):
    """Exhaustive enumeration of every increasing cutpoint tuple (tiny grids only)."""
    return min(
        naive_cost(fn, x, list(c), bins, objective)
        for c in _it.combinations(range(len(x)), len(bins) + 1)
    )


# =============================================================================
# Section: datapath oracle (issue 3, hw_sim/): numerics §1, §3, §4 and §5
# Exact values are fractions.Fraction; every rounding goes through _nv_round,
# a plain round-to-nearest-even written here (independent of nli.grid and of
# hw_sim.fp). One input at a time, no vectorization: slow on purpose.
# =============================================================================
from fractions import Fraction as _NvF

import numpy as np


class NvVal:
    """An exact extended real: kind 'num' (q: Fraction, neg: sign bit, meaningful
    for zeros), 'inf' (neg: sign) or 'nan'."""

    __slots__ = ("kind", "q", "neg")

    def __init__(self, kind, q=_NvF(0), neg=False):
        self.kind, self.q = kind, q
        self.neg = q.numerator < 0 if kind == "num" and q.numerator != 0 else neg

    def is_nan(self):
        return self.kind == "nan"

    def __repr__(self):
        return f"NvVal({self.kind}, {self.q}, neg={self.neg})"


_NV_NAN = NvVal("nan")
# (fraction bits, smallest normal exponent, largest exponent, exponent bits)
NV_FP16 = (10, -14, 15, 5)
NV_FP32 = (23, -126, 127, 8)
NV_BF16 = (7, -126, 127, 8)  # numerics §13: FP32's exponent range, 7 fraction bits


def nv_decode(bits, fmt):
    """Bit pattern -> NvVal, straight from the IEEE layout."""
    mbits, emin, emax, ebits = fmt
    bits = int(bits)
    neg = bool(bits >> (mbits + ebits))
    e = (bits >> mbits) & ((1 << ebits) - 1)
    m = bits & ((1 << mbits) - 1)
    if e == (1 << ebits) - 1:
        return _NV_NAN if m else NvVal("inf", neg=neg)
    if e == 0:
        q = _NvF(m) * _NvF(2) ** (emin - mbits)
    else:
        q = (1 + _NvF(m, 1 << mbits)) * _NvF(2) ** (e - (1 << (ebits - 1)) + 1)
    return NvVal("num", -q if neg else q, neg)


def nv16(bits):
    return nv_decode(bits, NV_FP16)


def nv32(bits):
    return nv_decode(bits, NV_FP32)


def nv_bf16(bits):
    return nv_decode(bits, NV_BF16)


def _nv_pow2(e):
    """2^e as an exact Fraction."""
    return _NvF(1 << e) if e >= 0 else _NvF(1, 1 << -e)


def _nv_round(v, fmt):
    """Round an exact NvVal to the format: nearest, ties to even, subnormals kept,
    overflow to +-inf. With |q| = n/d, 2^E <= |q| < 2^(E+1) and the quantum
    2^Q, Q = max(E, emin) - mbits, the neighbours of |q| are k 2^Q and (k+1) 2^Q
    where k, rem = divmod(|q|, 2^Q); compare 2 rem with 2^Q (in integers)."""
    if v.kind != "num" or v.q == 0:
        return v
    mbits, emin, emax, _ = fmt
    n, d = abs(v.q.numerator), v.q.denominator
    E = n.bit_length() - d.bit_length()  # a first guess, then fixed up
    while (d << E if E >= 0 else d) > (n if E >= 0 else n << -E):
        E -= 1
    while (d << (E + 1) if E + 1 >= 0 else d) <= (n if E + 1 >= 0 else n << -(E + 1)):
        E += 1
    if E > emax:
        return NvVal("inf", neg=v.neg)
    Q = max(E, emin) - mbits
    num, den = (n, d << Q) if Q >= 0 else (n << -Q, d)  # |q| / 2^Q = num / den
    k, rem = divmod(num, den)
    if 2 * rem > den or (2 * rem == den and k % 2 == 1):
        k += 1
    if k >= (1 << (emax + 1 - Q)):  # k 2^Q >= 2^(emax+1): overflow
        return NvVal("inf", neg=v.neg)
    r = _NvF(k << Q) if Q >= 0 else _NvF(k, 1 << -Q)
    return NvVal("num", -r if v.neg else r, v.neg)  # a zero result keeps v's sign


def nv_rne16(v):
    return _nv_round(v, NV_FP16)


def nv_rne32(v):
    return _nv_round(v, NV_FP32)


def nv_rne_bf16(v):
    return _nv_round(v, NV_BF16)


_NV_ENCODE = {}
_NV_ENCODE_BF16 = {}


def nv_encode_bf16(v):
    """A BF16-representable NvVal -> its bit pattern; NaN -> 0x7fc0 (numerics §13). Looked up
    in the inverse of nv_bf16 over every non-negative finite encoding."""
    if v.kind == "nan":
        return 0x7FC0
    sign = 0x8000 if v.neg else 0
    if v.kind == "inf":
        return sign | 0x7F80
    if not _NV_ENCODE_BF16:
        _NV_ENCODE_BF16.update((nv_bf16(b).q, b) for b in range(0x7F80))
    bits = _NV_ENCODE_BF16.get(abs(v.q))
    assert bits is not None, f"not a BF16 value: {v}"
    return sign | bits


def nv_encode16(v):
    """An FP16-representable NvVal -> its bit pattern; NaN -> 0x7e00. Looked up in
    the inverse of nv16 over every non-negative finite encoding."""
    if v.kind == "nan":
        return 0x7E00
    sign = 0x8000 if v.neg else 0
    if v.kind == "inf":
        return sign | 0x7C00
    if not _NV_ENCODE:
        _NV_ENCODE.update((nv16(b).q, b) for b in range(0x7C00))
    bits = _NV_ENCODE.get(abs(v.q))
    assert bits is not None, f"not an FP16 value: {v}"
    return sign | bits


def nv_neg(a):
    if a.kind == "nan":
        return a
    if a.kind == "inf":
        return NvVal("inf", neg=not a.neg)
    return NvVal("num", -a.q, not a.neg)


def nv_add(a, b):
    """Exact a + b: an exact zero is +0 unless both are -0; inf - inf is NaN."""
    if a.kind == "nan" or b.kind == "nan":
        return _NV_NAN
    if a.kind == "inf" and b.kind == "inf":
        return a if a.neg == b.neg else _NV_NAN
    if a.kind == "inf":
        return a
    if b.kind == "inf":
        return b
    q = a.q + b.q
    if q == 0:
        return NvVal("num", q, a.neg and b.neg)
    return NvVal("num", q)


def nv_sub(a, b):
    return nv_add(a, nv_neg(b))


def nv_mul(a, b):
    """Exact a * b: sign is the XOR of the signs; 0 * inf is NaN."""
    if a.kind == "nan" or b.kind == "nan":
        return _NV_NAN
    neg = a.neg != b.neg
    if a.kind == "inf" or b.kind == "inf":
        if (a.kind == "num" and a.q == 0) or (b.kind == "num" and b.q == 0):
            return _NV_NAN
        return NvVal("inf", neg=neg)
    return NvVal("num", a.q * b.q, neg)


def nv_lt(a, b):
    """Numeric a < b for non-NaN values (-0 == +0)."""
    if a.kind == "num" and b.kind == "num":
        return a.q < b.q

    def key(v):
        return (-1 if v.neg else 1, 0) if v.kind == "inf" else (0, v.q)

    return key(a) < key(b)


def nv_floor(a):
    """floor of a non-negative value (or zero of either sign, or +inf), sign kept."""
    if a.kind != "num":
        return a
    return NvVal("num", _NvF(a.q.numerator // a.q.denominator), a.neg)


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


# =============================================================================
# Section: RMSNorm row prescale oracle (issue 15, hw_sim.ops.rmsnorm_f32, numerics §4.1)
# The FP32 row decoded exactly (nv32); m, E(m) and s found by comparing
# Fractions; "m would overflow FP16" tested as RNE16(m) = inf (not as the
# constant 65520); x_i 2^-s and eps 2^(-2s) kept exact (no FP32 rounding),
# then numerics §4's steps on the exact values. Slow on purpose.
# =============================================================================
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


# =============================================================================
# Section: MoE oracles (issue 5, moe/layer.py)
# One token at a time, plain torch float64 per expert, Python sorting for the
# top-k (rule: larger probability first, exact ties to the lower index).
# Slow on purpose.
# =============================================================================
def naive_moe_token(x, router_w, router_b, w_gate, w_up, w_down, top_k, renormalize, softmax):
    """One token x float[D] -> (y float64[D], chosen expert list). ``softmax``: the op used on the
    logits.

    Weights: router_w [E, D], router_b [E], w_gate/w_up [E, H, D], w_down [E, D, H].
    """
    import torch

    E = router_w.shape[0]
    logits = [
        float((router_w[e].double() * x.double()).sum() + router_b[e].double()) for e in range(E)
    ]
    probs = softmax(torch.tensor(logits, dtype=torch.float32)[None])[0].tolist()
    chosen = sorted(range(E), key=lambda e: (-probs[e], e))[:top_k]
    ws = [probs[e] for e in chosen]
    if renormalize:
        tot = sum(ws)
        ws = [w / tot for w in ws]
    y = torch.zeros(x.shape[0], dtype=torch.float64)
    for w, e in zip(ws, chosen):
        g = w_gate[e].double() @ x.double()
        u = w_up[e].double() @ x.double()
        h = torch.nn.functional.silu(g) * u
        y += w * (w_down[e].double() @ h)
    return y, chosen


def naive_load_balancing_loss(probs, chosen, E):
    """probs: list of per-token probability lists, chosen: list of per-token expert lists
    -> E * sum f_i P_i."""
    n_assign = sum(len(c) for c in chosen)
    f = [sum(c.count(i) for c in chosen) / n_assign for i in range(E)]
    P = [sum(p[i] for p in probs) / len(probs) for i in range(E)]
    return E * sum(fi * pi for fi, pi in zip(f, P))


# =============================================================================
# Section: engine fp16-mode oracles (issue 4, engine/op_sets.py Fp16Ops)
# The exact op on FP16 inputs, evaluated with mpmath at 50 digits, rounded
# once to FP16 with Fractions (nli.grid.rne16). Slow on purpose.
# =============================================================================
def _eng_rne16_mp(v):
    """RNE16 of an mpmath real (50 digits: far below FP16's half-ulp) -> FP16 bits."""
    from fractions import Fraction

    import mpmath
    import numpy as np

    from nli.grid import rne16

    if mpmath.isinf(v):
        return int(np.array(float(v), dtype=np.float16).view(np.uint16))
    sign, man, exp, _ = mpmath.mpf(v)._mpf_  # v = (-1)^sign * man * 2^exp exactly
    q = Fraction(int(man)) * (Fraction(2) ** int(exp))
    bits = int(np.array(rne16(q), dtype=np.float16).view(np.uint16))
    return bits | 0x8000 if sign else bits


def naive_fp16_silu_bits(x16_bits):
    """uint16[N] FP16 inputs -> uint16[N]: RNE16(x / (1 + exp(-x))) of the exact input."""
    import mpmath
    import numpy as np

    mpmath.mp.dps = 50
    out = []
    for b in x16_bits:
        x = float(np.array(b, dtype=np.uint16).view(np.float16))
        if x != x:
            out.append(0x7E00)
            continue
        if x == float("-inf"):
            out.append(0x8000)  # -inf * sigmoid(-inf) -> the limit -0
            continue
        if x == 0:
            out.append(int(b))  # silu(+-0) = +-0 * 1/2 keeps the sign (mpmath has no -0)
            continue
        if x == float("inf"):
            out.append(0x7C00)
            continue
        out.append(_eng_rne16_mp(mpmath.mpf(x) / (1 + mpmath.exp(-mpmath.mpf(x)))))
    return np.array(out, dtype=np.uint16)


def naive_fp16_softmax_bits(row16):
    """One FP16 row (float16[n], finite or -inf) -> uint16[n]: RNE16 of the exact softmax."""
    import mpmath
    import numpy as np

    mpmath.mp.dps = 50
    xs = [float(v) for v in row16]
    m = max(xs)
    es = [
        mpmath.mpf(0) if v == float("-inf") else mpmath.exp(mpmath.mpf(v) - mpmath.mpf(m))
        for v in xs
    ]
    s = mpmath.fsum(es)
    return np.array([_eng_rne16_mp(e / s) for e in es], dtype=np.uint16)


def naive_fp16_rmsnorm_bits(row16, w16, eps):
    """FP16 row and weights, eps (rounded to FP32) -> uint16[n]:
    RNE16(x w / sqrt(mean(x^2) + eps))."""
    import mpmath
    import numpy as np

    mpmath.mp.dps = 50
    xs = [mpmath.mpf(float(v)) for v in row16]
    ms = mpmath.fsum(x * x for x in xs) / len(xs) + mpmath.mpf(float(np.float32(eps)))
    r = 1 / mpmath.sqrt(ms)
    return np.array(
        [_eng_rne16_mp(x * r * mpmath.mpf(float(w))) for x, w in zip(xs, w16)], dtype=np.uint16
    )


# =============================================================================
# Section: engine bf16-variant oracles (issue 18, engine/op_sets.py Bf16Ops, numerics §13)
# The exact op on BF16 inputs (given as uint16 patterns), in mpmath at 50 digits, rounded once
# to BF16 with Fractions (nli.grid.rne_bf16). Slow on purpose.
# =============================================================================
def _eng_rne_bf16_mp(v):
    """RNE_bf16 of an mpmath real (50 digits: far below BF16's half-ulp) -> BF16 bits."""
    from fractions import Fraction

    import mpmath

    from nli.grid import rne_bf16

    if mpmath.isinf(v) or abs(v) >= mpmath.ldexp(1, 129):  # past BF16's overflow threshold
        return 0xFF80 if v < 0 else 0x7F80
    if abs(v) < mpmath.ldexp(1, -140):  # below half the least subnormal (2^-134): a zero
        return 0x8000 if v < 0 else 0
    sign, man, exp, _ = mpmath.mpf(v)._mpf_
    q = Fraction(int(man)) * (Fraction(2) ** int(exp))
    r = rne_bf16(q)
    bits = 0x7F80 if r == float("inf") else int(np.float32(r).view(np.uint32)) >> 16
    return bits | 0x8000 if sign else bits


def _bf16_mp(bits):
    import mpmath

    return mpmath.mpf(float(nv_bf16(int(bits)).q))


def naive_bf16_silu_bits(bits):
    """uint16[N] finite BF16 inputs -> uint16[N]: RNE_bf16(x / (1 + exp(-x)))."""
    import mpmath

    mpmath.mp.dps = 50
    out = []
    for b in bits:
        x = _bf16_mp(b)
        out.append(int(b) if x == 0 else _eng_rne_bf16_mp(x / (1 + mpmath.exp(-x))))
    return np.array(out, dtype=np.uint16)


def naive_bf16_softmax_bits(row_bits):
    """One BF16 row (uint16[n], finite or -inf 0xff80) -> uint16[n]: RNE_bf16 of the exact
    softmax."""
    import mpmath

    mpmath.mp.dps = 50
    xs = [None if int(b) == 0xFF80 else _bf16_mp(b) for b in row_bits]
    m = max(x for x in xs if x is not None)
    es = [mpmath.mpf(0) if x is None else mpmath.exp(x - m) for x in xs]
    s = mpmath.fsum(es)
    return np.array([_eng_rne_bf16_mp(e / s) for e in es], dtype=np.uint16)


def naive_bf16_rmsnorm_bits(row_bits, w_bits, eps):
    """BF16 row and weights (uint16), eps (rounded to FP32) -> uint16[n]:
    RNE_bf16(x w / sqrt(mean(x^2) + eps)), exact products and sum (no FP32 rounding)."""
    import mpmath

    mpmath.mp.dps = 50
    xs = [_bf16_mp(b) for b in row_bits]
    ms = mpmath.fsum(x * x for x in xs) / len(xs) + mpmath.mpf(float(np.float32(eps)))
    r = 1 / mpmath.sqrt(ms)
    out = []
    for b, x, wb in zip(row_bits, xs, w_bits):
        w = _bf16_mp(wb)
        if x == 0 or w == 0:  # an exact zero product: the XOR of the signs
            out.append(0x8000 if (int(b) ^ int(wb)) & 0x8000 else 0)
        else:
            out.append(_eng_rne_bf16_mp(x * r * w))
    return np.array(out, dtype=np.uint16)


# =============================================================================
# Section: paired bootstrap oracle (moe/finetune/bootstrap.py)
# Every resample rebuilds the resampled hypothesis / reference STRING lists and
# calls sacrebleu's corpus_score on them (no sufficient statistics involved).
# =============================================================================
def naive_paired_bootstrap(a_hyps, b_hyps, refs, langs, metric, n, seed):
    """a_hyps / b_hyps: lists (runs) of {lang: [hyp, ...]}; refs {lang: [ref, ...]}
    -> (delta, lo, hi)."""
    import numpy as _np
    from sacrebleu.metrics import BLEU as _BLEU
    from sacrebleu.metrics import CHRF as _CHRF

    def corpus(lang, hs, rs):
        if metric == "chrf++":
            return _CHRF(word_order=2).corpus_score(hs, [rs]).score
        tok = "char" if lang in ("ja", "zh", "zh_Hans", "zh_Hant", "th") else "13a"
        return _BLEU(tokenize=tok).corpus_score(hs, [rs]).score

    def diff(picks):
        def run_score(h):
            return sum(
                corpus(g, [h[g][i] for i in picks[g]], [refs[g][i] for i in picks[g]])
                for g in sorted(langs)
            ) / len(langs)

        return sum(run_score(h) for h in a_hyps) / len(a_hyps) - sum(
            run_score(h) for h in b_hyps
        ) / len(b_hyps)

    delta = diff({g: list(range(len(refs[g]))) for g in langs})
    rng = _np.random.default_rng(seed)
    ds = []
    for _ in range(n):
        picks = {}
        for g in sorted(langs):
            picks[g] = [int(i) for i in rng.integers(0, len(refs[g]), len(refs[g]))]
        ds.append(diff(picks))
    lo, hi = _np.percentile(ds, [2.5, 97.5])
    return delta, float(lo), float(hi)


# =============================================================================
# Section: GGUF tokenizer oracles (issue 15, engine/tokenizer.py)
# Textbook BPE in plain Python: added tokens cut out of the raw text
# (leftmost, then longest), llama.cpp's split regex run with the `regex`
# module, GPT-2's byte -> character map rebuilt from its definition, and merges
# applied lowest rank first (leftmost on ties), one pair at a time. For the
# SentencePiece (Gemma) vocabulary: spaces -> U+2581, characters missing from
# the vocabulary -> <0xXX> byte tokens, merges ranked by transformers'
# generate_merges recipe (sort by score = -file position, then piece lengths).
# =============================================================================


def naive_split_added(text, added):
    """[(piece, is_added)]: the added tokens found whole in ``text`` (leftmost match first,
    longest at a position), and the stretches between them."""
    out, buf, i = [], "", 0
    while i < len(text):
        hit = max((a for a in added if text.startswith(a, i)), key=len, default=None)
        if hit is None:
            buf += text[i]
            i += 1
            continue
        if buf:
            out.append((buf, False))
            buf = ""
        out.append((hit, True))
        i += len(hit)
    if buf:
        out.append((buf, False))
    return out


def naive_bpe(symbols, ranks):
    """Merge the adjacent pair of lowest rank (leftmost among equals) until none is left."""
    syms = list(symbols)
    while True:
        best = None
        for i in range(len(syms) - 1):
            r = ranks.get((syms[i], syms[i + 1]))
            if r is not None and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            return syms
        i = best[1]
        syms[i : i + 2] = [syms[i] + syms[i + 1]]


def naive_gpt2_byte_map():
    """GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other bytes to
    chr(256), chr(257), ... in byte order."""
    printable = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
    out, n = {}, 0
    for b in range(256):
        if b in printable:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return out


def naive_byte_bpe_ids(text, tokens, merges, pattern, added=()):
    """Byte-level BPE ids: added tokens whole, every other stretch split by ``pattern``
    (``regex.findall``), bytes mapped to GPT-2 characters, merged by rank."""
    import regex

    vocab = {t: i for i, t in enumerate(tokens)}
    ranks = {tuple(m.split(" ")): r for r, m in enumerate(merges)}
    cmap = naive_gpt2_byte_map()
    ids = []
    for piece, is_added in naive_split_added(text, added):
        if is_added:
            ids.append(vocab[piece])
            continue
        for word in regex.findall(pattern, piece):
            syms = [cmap[b] for b in word.encode("utf-8")]
            ids += [vocab[s] for s in naive_bpe(syms, ranks)]
    return ids


def naive_generated_merges(tokens):
    """transformers' generate_merges(vocab, {token: -position}) for a vocabulary without
    merges: every split of a token into two entries, sorted by (score, len(left), len(right))
    descending."""
    vocab = {t: i for i, t in enumerate(tokens)}
    found = []
    for pos, t in enumerate(tokens):
        local = []
        for k in range(1, len(t)):
            a, b = t[:k], t[k:]
            if a in vocab and b in vocab:
                local.append((a, b, -pos))
        found += sorted(local, key=lambda x: (vocab[x[0]], vocab[x[1]]))
    found.sort(key=lambda x: (x[2], len(x[0]), len(x[1])), reverse=True)
    return [(a, b) for a, b, _ in found]


def naive_spm_bpe_ids(text, tokens, added=(), bos_id=None):
    """Gemma-style ids: optional BOS, added tokens whole, spaces -> U+2581, characters not in the
    vocabulary -> <0xXX> byte tokens, merges from :func:`naive_generated_merges`. A token of
    whitespace with a space in it stands for as many U+2581 (how the normalized text spells it).
    """
    tokens = ["\u2581" * len(t) if " " in t and not t.strip() else t for t in tokens]
    vocab = {t: i for i, t in enumerate(tokens)}
    ranks = {m: r for r, m in enumerate(naive_generated_merges(tokens))}
    ids = [] if bos_id is None else [bos_id]
    for piece, is_added in naive_split_added(text, added):
        if is_added:
            ids.append(vocab[piece])
            continue
        syms = []
        for ch in piece.replace(" ", "\u2581"):
            if ch in vocab:
                syms.append(ch)
            else:
                syms += [f"<0x{b:02X}>" for b in ch.encode("utf-8")]
        ids += [vocab[s] for s in naive_bpe(syms, ranks)]
    return ids


# =============================================================================
# Section: datapath-exact cutpoint objectives (issue 16, hw_sim/datapath_cost.py and
# hw_sim/datapath_solve.py). Every increasing cutpoint tuple of a tiny grid is made into a
# table here (LUT = RNE16 of the float64 f at each entry's real point, below = lut[0],
# above = lut[-1]) and run through the Fraction oracle nv_unit above on every grid point,
# against RNE16(f(x)) rounded by the oracle's own _nv_round. Slow on purpose.
# =============================================================================
import math as _nv_math


def _nv_f64(v):
    """A finite float64 -> NvVal (the sign of a zero kept)."""
    return NvVal("num", _NvF(float(v)), _nv_math.copysign(1.0, float(v)) < 0)


def _nv_ord16(bits):
    b = int(bits)
    return -(b & 0x7FFF) if b & 0x8000 else b & 0x7FFF


def naive_datapath_errors(fn_name, x, cut_idx, bins, dtype="fp16"):
    """ulp distances (list over the grid x, float64 FP16 values) of the table with cutpoints
    x[cut_idx] and ``bins``, or None when an entry overflows FP16 (no such table).
    ``dtype='bf16'``: x holds BF16 values, the table is a bf16 one (numerics §13), and None also
    when it is not a valid table or an interval of B bins is narrower than B 2^-127 (the
    solver's rule); widths and the rule are decided in Fractions."""
    from nli.functions import get_function
    from nli.table import Table, TableError

    bf16 = dtype == "bf16"
    rne, enc = (nv_rne_bf16, nv_encode_bf16) if bf16 else (nv_rne16, nv_encode16)
    inf = 0x7F80 if bf16 else 0x7C00
    f = get_function(fn_name)
    c = [float(x[i]) for i in cut_idx]
    if bf16 and any(
        _NvF(c[i + 1]) - _NvF(c[i]) < B * _NvF(1, 1 << 127) for i, B in enumerate(bins)
    ):
        return None
    pts = [c[0]]
    for i, B in enumerate(bins):  # the end entry is the cutpoint itself (Table.points)
        pts += [c[i] + (m * (c[i + 1] - c[i])) / B for m in range(1, B)] + [c[i + 1]]
    lut = [enc(rne(_nv_f64(v))) for v in f(np.array(pts))]
    if any((b & inf) == inf for b in lut):
        return None
    cbits = [enc(_nv_f64(v)) for v in c]
    try:
        table = Table(
            fn_name,
            np.array(cbits, dtype=np.uint16),
            list(bins),
            np.array(lut, dtype=np.uint16),
            lut[0],
            lut[-1],
            "fp32",
            dtype=dtype,
        )
    except TableError:
        return None
    xbits = [enc(_nv_f64(v)) for v in np.asarray(x, dtype=np.float64)]
    out = nv_unit_all(table, xbits)
    ref = [enc(rne(_nv_f64(v))) for v in f(np.asarray(x, dtype=np.float64))]
    return [abs(_nv_ord16(o) - _nv_ord16(r)) for o, r in zip(out, ref)]


def naive_datapath_value(errors, objective):
    """ulp: sum; cr: count of non-zero; cr+maxulp: (count, max)."""
    if objective == "ulp":
        return sum(errors)
    n = sum(1 for e in errors if e != 0)
    return n if objective == "cr" else (n, max(errors))


def naive_datapath_optimum(fn_name, x, bins, objective, max_ulp=None, dtype="fp16"):
    """Brute force: the best value of ``objective`` over every increasing tuple of
    len(bins) + 1 grid indices (tiny grids only) whose table is within ``max_ulp`` ulp
    everywhere (None: any); None if there is none."""
    best = None
    for c in _it.combinations(range(len(x)), len(bins) + 1):
        e = naive_datapath_errors(fn_name, x, c, bins, dtype)
        if e is not None and (max_ulp is None or max(e) <= max_ulp):
            v = naive_datapath_value(e, objective)
            best = v if best is None or v < best else best
    return best
