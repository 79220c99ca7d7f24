"""Engine op oracles (engine/op_sets.py): the exact op evaluated with mpmath at 50 digits,
rounded once with Fractions. Slow on purpose.

* fp16 mode (issue 4, Fp16Ops): the op on FP16 inputs, rounded once to FP16 (nli.grid.rne16);
* bf16 variant (issue 18, Bf16Ops, numerics §13): the op on BF16 inputs (given as uint16
  patterns), rounded once to BF16 (nli.grid.rne_bf16).
"""

from naive_fp import nv_bf16
import numpy as np


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


# ----------------------------------------------------------------------------- bf16 variant
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
