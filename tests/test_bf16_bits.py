"""BF16 bit helpers of nli.grid (numerics §13) against the Fraction rounding of round_fraction."""

from fractions import Fraction
import math

import numpy as np
import pytest

from nli.formats import BF16_MAX_BITS, BF16_NAN, BF16_POS_INF
from nli.grid import (
    bf16_bits_to_f64,
    f32_to_bf16_bits,
    f64_to_bf16_bits,
    is_finite_bf16,
    is_nan_bf16,
    rne_bf16,
)

ALL = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)


def _oracle_bits(v: float) -> int:
    """RNE_bf16 of the exact value of a float, through Fraction, as a bit pattern."""
    if math.isnan(v):
        return BF16_NAN
    r = rne_bf16(Fraction(v)) if math.isfinite(v) else v
    sign = 0x8000 if math.copysign(1.0, v) < 0 else 0
    if math.isinf(r):
        return sign | BF16_POS_INF
    b = int(np.float32(abs(r)).view(np.uint32))
    assert b & 0xFFFF == 0
    return sign | (b >> 16)


def test_decode_is_the_top_half_of_fp32():
    v = bf16_bits_to_f64(ALL)
    f = ALL[is_finite_bf16(ALL)]
    back = (bf16_bits_to_f64(f).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    assert np.array_equal(back, f)
    assert np.array_equal(np.isnan(v), is_nan_bf16(ALL))
    assert bf16_bits_to_f64(BF16_MAX_BITS) == (2 - 2.0**-7) * 2.0**127


def test_every_bf16_value_round_trips():
    f = ALL[~is_nan_bf16(ALL)]
    v = bf16_bits_to_f64(f)
    assert np.array_equal(f64_to_bf16_bits(v), f)
    assert np.array_equal(f32_to_bf16_bits(v.astype(np.float32)), f)
    assert np.all(f64_to_bf16_bits(np.array([np.nan, -np.nan])) == BF16_NAN)
    assert np.all(f32_to_bf16_bits(np.array([np.nan], dtype=np.float32)) == BF16_NAN)


def _hard_values() -> np.ndarray:
    """Midpoints between neighbouring BF16 values (ties), one FP32 ulp either side of them,
    and the overflow/underflow edges, for every finite positive BF16 value."""
    pos = ALL[(ALL < 0x7F80)].astype(np.uint32) << 16
    mid = pos + 0x8000  # exact midpoint to the next BF16 value, as an FP32 pattern
    f32 = np.concatenate([mid, mid - 1, mid + 1]).astype(np.uint32)
    v = f32.view(np.float32).astype(np.float64)
    v = v[np.isfinite(v)]
    edges = [2.0**-134, 2.0**-134 * 1.0000001, 2.0**-135, 3.3961775e38, 3.3961778e38]
    return np.concatenate([v, -v[::7], edges])


def test_f32_rounding_matches_the_fraction_oracle():
    v = _hard_values().astype(np.float32)
    got = f32_to_bf16_bits(v)
    want = np.array([_oracle_bits(float(x)) for x in v], dtype=np.uint16)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("seed", [0, 1])
def test_f64_rounding_matches_the_fraction_oracle(seed):
    rng = np.random.default_rng(seed)
    hard = rng.choice(_hard_values(), 20000, replace=False)
    # doubles that are not FP32 values: a double-rounding trap for float64 -> float32 -> bf16
    nudge = hard * (1 + rng.choice([-1, 1], hard.size) * 2.0**-40)
    wide = rng.standard_normal(20000) * np.exp2(rng.integers(-140, 129, 20000))
    v = np.concatenate([hard, nudge, wide])
    with np.errstate(over="ignore"):
        got = f64_to_bf16_bits(v)
    want = np.array([_oracle_bits(float(x)) for x in v], dtype=np.uint16)
    assert np.array_equal(got, want)
