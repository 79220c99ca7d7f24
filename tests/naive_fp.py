"""Datapath oracle, the numbers (numerics §1, §13): exact extended reals (NvVal) and the FP16,
FP32 and BF16 formats. Exact values are fractions.Fraction; every rounding goes through _nv_round,
a plain round-to-nearest-even written here (independent of nli.grid and of hw_sim.fp). One input
at a time, no vectorization: slow on purpose.
"""

from fractions import Fraction as _NvF


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
