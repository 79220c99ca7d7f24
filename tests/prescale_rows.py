"""FP32 rows for RMSNorm's row prescale (numerics §4.1), shared by the hw_sim, engine and ONNX
tests: adversarial rows around FP16's overflow threshold and seeded rows at many magnitudes."""

from __future__ import annotations

import numpy as np

N = 24  # row length of the adversarial rows
TINY32 = np.float32(2.0**-149)  # the smallest FP32 subnormal


def adversarial_rows(rng) -> np.ndarray:
    """float32[R, N]: largest |x| just below, at and above FP16's overflow threshold, up to
    FP32's largest; huge values beside tiny ones (FP16 subnormals, FP32 subnormals, zeros of
    both signs); inf and NaN in a row; all-zero and all-tiny rows."""
    base = rng.standard_normal((1, N)).astype(np.float32)

    def row(big, at=3, rest=None):
        r = base[0].copy() if rest is None else np.asarray(rest, np.float32).copy()
        r[at] = big
        return r

    rows = [
        row(np.float32(65519.99)),  # below 65520: s = 0, RNE16 gives 65504
        row(np.nextafter(np.float32(65520), np.float32(0))),
        row(np.float32(65520)),  # the threshold: s = 1
        row(np.float32(-65520)),
        row(np.float32(65536)),  # 2^16: s = 2
        row(np.float32(131071.99)),
        row(np.float32(1e5)),
        row(np.float32(-104061.0)),  # Gemma 3's largest RMSNorm input (issue 15)
        row(np.float32(3e38)),
        row(np.finfo(np.float32).max),
        row(-np.finfo(np.float32).max),
        rng.uniform(-1.1e5, 1.1e5, N).astype(np.float32),  # many values above 65504
    ]
    mixed = np.zeros(N, np.float32)
    mixed[:8] = [1e5, -0.0, 0.0, 2.0**-24, -(2.0**-25), 3 * 2.0**-26, TINY32, -TINY32]
    mixed[8:16] = [2.0**-126, -(2.0**-127), 1e-30, -1e-38, 1.0, -3.0, 65504.0, 2.0**-14]
    mixed[16:] = rng.standard_normal(N - 16) * 1e-3
    rows.append(mixed)
    huge = mixed.copy()
    huge[0] = 3e38  # s = 113: everything but the huge value falls below FP32's normal range
    rows.append(huge)
    for bad in (np.inf, -np.inf, np.nan):
        rows.append(row(bad, at=5, rest=row(np.float32(2e5))))  # inf / NaN beside a huge value
        rows.append(row(bad, at=5))  # inf / NaN in an ordinary row
    rows.append(np.full(N, np.inf, np.float32))
    rows.append(np.zeros(N, np.float32))
    z = np.zeros(N, np.float32)
    z[::2] = -0.0
    rows.append(z)
    rows.append(np.full(N, TINY32))
    rows.append(np.full(N, 7e4, np.float32))  # every value above 65504, all equal
    return np.asarray(rows, dtype=np.float32)


def seeded_rows(rng, count: int, n: int) -> np.ndarray:
    """float32[count, n]: Gaussian rows at magnitudes from 1e-3 to 1e7, some rows with a few
    outliers up to 1e6 (the residual-stream shape of Gemma 3)."""
    scale = 10.0 ** rng.uniform(-3, 7.5, (count, 1))
    x = rng.standard_normal((count, n)) * scale
    out = rng.random((count, n)) < 0.05
    x[out] *= rng.uniform(10, 1000, out.sum())
    return x.astype(np.float32)


def weights(rng, n: int) -> np.ndarray:
    """float16[n] RMSNorm weights: 1, -0, 0.5, then uniform in [-2, 2]."""
    return np.concatenate([[1.0, -0.0, 0.5], rng.uniform(-2, 2, n)])[:n].astype(np.float16)
