"""hw_sim.fp: every rounding primitive against the Fraction oracle in tests/naive.py."""

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st
from naive import (
    NV_FP16,
    NV_FP32,
    NvVal,
    nv16,
    nv32,
    nv_add,
    nv_encode16,
    nv_mul,
    nv_rne16,
    nv_rne32,
    nv_sub,
)
import numpy as np
import pytest

from hw_sim import fp
from nli.grid import rne16, rne32

SEED = 20260214
f16_bits = st.integers(0, 0xFFFF)
any_f64 = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True)
fp16_range_f64 = st.floats(min_value=-70000.0, max_value=70000.0, allow_subnormal=True)


def _exact(v: float) -> NvVal:
    """A Python float as an exact NvVal."""
    if v != v:
        return NvVal("nan")
    if v in (float("inf"), float("-inf")):
        return NvVal("inf", neg=v < 0)
    return NvVal("num", Fraction(v), np.signbit(v))


def _oracle16(v: float) -> int:
    return nv_encode16(nv_rne16(_exact(v)))


def _near_midpoints(rng, n):
    """float64 values at, just below and just above FP16 rounding midpoints (incl. 65520, 2^-25)."""
    b = rng.integers(0, 0x7C00, n).astype(np.uint16)
    lo = b.view(np.float16).astype(np.float64)
    hi = (b + 1).view(np.float16).astype(np.float64)
    hi[b == 0x7BFF] = 65536.0
    mid = (lo + hi) / 2
    out = np.concatenate(
        [mid, np.nextafter(mid, 0), np.nextafter(mid, np.inf), lo, [65520.0, 2.0**-25]]
    )
    sign = rng.choice([-1.0, 1.0], out.size)
    return out * sign


# ----------------------------------------------------------------------------- oracle sanity
def test_oracle_rounding_agrees_with_nli_grid_and_numpy():
    rng = np.random.default_rng(SEED)
    vals = np.concatenate(
        [_near_midpoints(rng, 300), rng.standard_normal(300) * 2.0 ** rng.integers(-40, 20, 300)]
    )
    for v in vals:
        assert float(nv_rne16(_exact(v)).q) == rne16(Fraction(v)) or abs(v) >= 65520
        with np.errstate(over="ignore"):
            assert nv_encode16(nv_rne16(_exact(v))) == int(np.float16(v).view(np.uint16)), v
        w = v * 2.0 ** rng.integers(-140, 100)
        assert float(nv_rne32(_exact(w)).q) == rne32(Fraction(w)) == float(np.float32(w)), w


def test_decode_matches_numpy_for_every_fp16():
    table = fp.f16_decode_table(np.float64)
    ref = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float64)
    assert np.array_equal(
        table.view(np.uint64)[~np.isnan(ref)], ref.view(np.uint64)[~np.isnan(ref)]
    )
    assert np.array_equal(np.isnan(table), np.isnan(ref))
    for b in (0, 0x8000, 1, 0x3FF, 0x400, 0x7BFF, 0x7C00, 0xFC00, 0x3C00):
        assert nv16(b).kind == "inf" or Fraction(table[b]) == nv16(b).q


# ----------------------------------------------------------------------------- rounding to FP16
def test_rne16_f64_on_midpoints_and_specials():
    rng = np.random.default_rng(SEED)
    vals = list(_near_midpoints(rng, 2000)) + [
        0.0,
        -0.0,
        np.inf,
        -np.inf,
        np.nan,
        65519.99,
        1e300,
        -1e-300,
        2.0**-24,
        3 * 2.0**-26,
        2.0**-14 - 2.0**-26,
    ]
    for v in vals:
        assert fp.rne16_f64(v) == _oracle16(v), v


def test_rne16_f32_on_midpoints_and_specials():
    rng = np.random.default_rng(SEED + 1)
    vals = _near_midpoints(rng, 2000).astype(np.float32)  # the nextafter neighbours become f32 ones
    vals = np.concatenate(
        [
            vals,
            np.nextafter(vals, np.float32(0)),
            np.nextafter(vals, np.float32(np.inf)),
            np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 2.0**-149], np.float32),
        ]
    )
    for v in vals:
        assert fp.rne16_f32(v) == _oracle16(float(v)), v


@settings(max_examples=400, deadline=None)
@given(any_f64)
def test_rne16_f64_hypothesis(v):
    assert fp.rne16_f64(v) == _oracle16(v)


@settings(max_examples=400, deadline=None)
@given(st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True))
def test_rne16_f32_hypothesis(v):
    assert fp.rne16_f32(np.float32(v)) == _oracle16(v)


def _assert_is_oracle32(got, want):
    """``got`` (a Python or NumPy float) is the oracle's FP32 result ``want``: NaN, the infinity of
    its sign, or exactly its value with its sign (so -0.0 is not 0.0)."""
    if want.kind == "nan":
        assert got != got
    elif want.kind == "inf":
        assert got == (-np.inf if want.neg else np.inf)
    else:
        assert Fraction(got) == want.q and bool(np.signbit(got)) == want.neg


@settings(max_examples=400, deadline=None)
@given(any_f64)
def test_rne32_f64_hypothesis(v):
    _assert_is_oracle32(fp.rne32_f64(v), nv_rne32(_exact(v)))


def test_rne32_f64_subnormals_and_overflow():
    for v in [
        2.0**-149,
        2.0**-150,
        1.5 * 2.0**-150,
        2.0**-150 * 1.0000001,
        3 * 2.0**-150,
        2.0**-126 - 2.0**-151,
        2.0**128,
        2.0**128 - 2.0**103,
        2.0**128 - 2.0**104 - 1e20,
    ]:
        for s in (1.0, -1.0):
            want = nv_rne32(_exact(s * v))
            got = fp.rne32_f64(s * v)
            if want.kind == "inf":
                assert got == s * np.inf, v
            else:
                assert Fraction(got) == want.q and bool(np.signbit(got)) == want.neg, v


# ----------------------------------------------------------------------------- sticky rounding
@settings(max_examples=400, deadline=None)
@given(fp16_range_f64, st.floats(min_value=-1e-3, max_value=1e-3, allow_subnormal=True))
def test_rne16_sum_rounds_the_exact_sum_once(a, b):
    s, err = fp.two_sum(a, b)
    want = nv_encode16(nv_rne16(nv_add(_exact(a), _exact(b))))
    assert fp.rne16_sum(s, err) == want


def test_rne16_sum_breaks_midpoint_ties_by_the_error():
    # s is an FP16 midpoint, the tiny b is lost by float64 addition but not by the unit
    for mid in (2049.0, 65520.0, 3 * 2.0**-26, 1.0 + 2.0**-11, -2049.0):
        for b in (abs(mid) * 2.0**-60, -abs(mid) * 2.0**-60, 0.0):
            s, err = fp.two_sum(mid, b)
            assert s == mid
            assert fp.rne16_sum(s, err) == nv_encode16(nv_rne16(nv_add(_exact(mid), _exact(b)))), (
                mid,
                b,
            )


# ----------------------------------------------------------------------------- ops on bits
@settings(max_examples=500, deadline=None)
@given(f16_bits, f16_bits)
def test_add_sub_mul16(a, b):
    assert fp.add16(a, b) == nv_encode16(nv_rne16(nv_add(nv16(a), nv16(b))))
    assert fp.sub16(a, b) == nv_encode16(nv_rne16(nv_sub(nv16(a), nv16(b))))
    assert fp.mul16(a, b) == nv_encode16(nv_rne16(nv_mul(nv16(a), nv16(b))))


@settings(max_examples=500, deadline=None)
@given(f16_bits, f16_bits, f16_bits)
def test_fma16_single_rounding(a, b, c):
    assert fp.fma16(a, b, c) == nv_encode16(nv_rne16(nv_add(nv_mul(nv16(a), nv16(b)), nv16(c))))


def test_zero_signs_follow_spec_section_1():
    pz, nz, one = 0x0000, 0x8000, 0x3C00
    assert fp.add16(nz, nz) == nz and fp.add16(pz, nz) == pz and fp.add16(nz, pz) == pz
    assert fp.sub16(one, one) == pz and fp.sub16(nz, pz) == nz
    assert fp.mul16(nz, one) == nz and fp.mul16(nz, 0xBC00) == pz
    assert fp.fma16(nz, one, nz) == nz and fp.fma16(nz, one, pz) == pz
    assert fp.add16(0x7C00, 0xFC00) == 0x7E00 and fp.mul16(pz, 0x7C00) == 0x7E00
    assert fp.add16(0xFE01, one) == 0x7E00  # any NaN in -> the canonical NaN out


@settings(max_examples=400, deadline=None)
@given(
    st.floats(width=32, allow_nan=False, allow_subnormal=True),
    st.floats(width=32, allow_nan=False, allow_subnormal=True),
)
def test_fp32_add_mul_and_the_float64_route(a, b):
    fa, fb = np.float32(a), np.float32(b)
    want_add = nv_rne32(nv_add(_exact(float(fa)), _exact(float(fb))))
    want_mul = nv_rne32(nv_mul(_exact(float(fa)), _exact(float(fb))))
    for got, want in (
        (float(fp.add32(fa, fb)), want_add),
        (fp.add32_via_f64(float(fa), float(fb)), want_add),
        (float(fp.mul32(fa, fb)), want_mul),
    ):
        _assert_is_oracle32(got, want)


def test_oracle_formats_are_the_ieee_ones():
    assert nv16(0x3C00).q == 1 and nv16(0x0001).q == Fraction(1, 2**24) and nv16(0x7BFF).q == 65504
    assert nv32(0x3F800000).q == 1 and nv32(0x00000001).q == Fraction(1, 2**149)
    assert NV_FP16[0] == 10 and NV_FP32[0] == 23
    with pytest.raises(AssertionError):
        nv_encode16(NvVal("num", Fraction(1, 3)))


# ---------------------------------------------------------------------- exhaustive unary paths
def test_f16_to_f32_vec_every_encoding():
    import numba

    @numba.njit
    def run(bits, out):
        for i in range(bits.size):
            out[i] = fp.f16_to_f32_vec(bits[i])

    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    got = np.empty(bits.size, np.float32)
    run(bits, got)
    want = fp.f16_decode_table(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(got.view(np.uint32)[~nan], want.view(np.uint32)[~nan])
    assert np.isnan(got[nan]).all()


def test_rne16_f32_every_float32_pattern():
    """All 2^32 float32 encodings: the branch-free rne16_f32 (float-add trick for
    subnormals) against the integer rne16_f64 of the same value (checked against the
    Fraction oracle above)."""
    import numba

    @numba.njit(parallel=True)
    def first_mismatch(lo, n):
        bad = np.full(n >> 16, -1, np.int64)
        for blk in numba.prange(n >> 16):
            for k in range(1 << 16):
                i = lo + (blk << 16) + k
                x = fp.i32_as_f32(np.int32(np.uint32(i)))
                if fp.rne16_f32(x) != fp.rne16_f64(np.float64(x)) and bad[blk] < 0:
                    bad[blk] = i
        for b in bad:
            if b >= 0:
                return b
        return -1

    for lo in range(0, 1 << 32, 1 << 28):
        b = first_mismatch(lo, 1 << 28)
        assert b < 0, f"float32 bits {b:08x}"
