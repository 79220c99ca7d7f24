"""hw_sim.ops_bf16: BF16 Softmax, RMSNorm and the reciprocal / rsqrt modes (numerics §13), bit
for bit against the Fraction oracle of tests/naive.py on seeded and adversarial inputs."""

from bf16_tables import bf16_op_tables
from naive import NvTable, nv32, nv_encode_bf16, nv_inverse, nv_rmsnorm_row, nv_softmax_row
import numpy as np
import pytest
from sim_tables import standin_tables

import hw_sim
from hw_sim import SimInputError
from hw_sim.fp_bf16 import rne_bf16_f64
from nli.grid import bf16_bits_to_f64, f32_to_bf16_bits, f64_to_bf16_bits

SEED = 4321
MODES = ("direct", "reduced")
EPS = np.float32(1e-6)
ROW_SUM_TOL = 0.02  # |sum of a softmax row - 1|: BF16 outputs (8 bits) on the test tables
SPECIAL_BF16 = [
    0x0000,  # +0
    0x8000,  # -0
    0x0001,  # least subnormal 2^-133
    0x8001,
    0x007F,  # largest subnormal
    0x0080,  # 2^-126
    0x7F7F,  # largest finite
    0xFF7F,
    0x7F80,  # +inf
    0xFF80,  # -inf
    0x7FC0,  # NaN
    0x3F80,  # 1
    0xBF80,
    0x4B00,  # 2^23
    0xCB00,
]


def _tables(mode):
    t = bf16_op_tables()
    suffix = "reduced" if mode == "reduced" else "direct"
    return t["exp"], t[f"recip_{suffix}"], t[f"rsqrt_{suffix}"]


def _f32_inputs(rng) -> np.ndarray:
    """FP32 values for section 5: specials, random patterns over every exponent, FP32
    subnormals, and values whose mantissa (or the value itself) is a BF16 tie."""
    special = np.array(
        [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, 2.0, 4.0, 0.5, 3.0, 1.5, -1.0, -4.0],
        dtype=np.float32,
    )
    pats = rng.integers(0, 1 << 32, size=1500, dtype=np.uint64).astype(np.uint32)
    sub = rng.integers(1, 1 << 23, size=100, dtype=np.uint64).astype(np.uint32)
    tie = (rng.integers(0, 1 << 15, size=300, dtype=np.uint64).astype(np.uint32) << 16) | 0x8000
    ends = np.array([0x7F7FFFFF, 0x00800000, 0x00000001, 0x7F7F8000, 0x3FFF8000], np.uint32)
    bits = np.concatenate([pats, sub, tie, ends])
    return np.concatenate([special, bits.view(np.float32)])


def _nv_inverse_bits(v, table, mode, kind):
    nt = NvTable(table)
    return np.array(
        [
            nv_encode_bf16(nv_inverse(nv32(int(b)), nt, mode, kind, "bf16"))
            for b in v.view(np.uint32)
        ],
        dtype=np.uint16,
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["reciprocal", "rsqrt"])
def test_inverse_matches_oracle(mode, kind):
    _, rt, st = _tables(mode)
    table = rt if kind == "reciprocal" else st
    v = _f32_inputs(np.random.default_rng(SEED))
    fn = hw_sim.reciprocal_bf16 if kind == "reciprocal" else hw_sim.rsqrt_bf16
    got = fn(v, table, mode)
    assert got.dtype == np.uint16 and got.shape == v.shape
    assert np.array_equal(got, _nv_inverse_bits(v, table, mode, kind))


def test_reduced_inverse_is_exact_on_exact_tables():
    """Tables with a cutpoint at every BF16 mantissa give RNE_bf16(1/v) (1/sqrt(v)) for every
    v that is itself a BF16 power-of-two multiple of a mantissa with an exact table entry: the
    powers of two, where 1/v and 1/sqrt(v) (even k) are exact."""
    _, rt, st = _tables("reduced")
    k = np.arange(-140, 127)
    v = np.ldexp(np.float32(1), k).astype(np.float32)
    r = bf16_bits_to_f64(hw_sim.reciprocal_bf16(v, rt, "reduced"))
    assert np.array_equal(r, bf16_bits_to_f64(f64_to_bf16_bits(1.0 / v.astype(np.float64))))
    even = v[k % 2 == 0]
    q = bf16_bits_to_f64(hw_sim.rsqrt_bf16(even, st, "reduced"))
    assert np.array_equal(q, 1.0 / np.sqrt(even.astype(np.float64)))


def _rows(rng, count, n_max, finite_only=False):
    """BF16 rows: random patterns, values near one scale, ties, specials."""
    rows = []
    for j in range(count):
        n = int(rng.integers(1, n_max + 1))
        kind = j % 4
        if kind == 0:  # any pattern
            b = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
        elif kind == 1:  # logits-like values
            b = f64_to_bf16_bits(rng.normal(0.0, 4.0, size=n))
        elif kind == 2:  # equal values (ties of the max) and exact repeats
            b = np.full(n, f64_to_bf16_bits(np.array([rng.normal()]))[0], dtype=np.uint16)
        else:  # specials mixed with ordinary values
            b = f64_to_bf16_bits(rng.normal(0.0, 2.0, size=n))
            pick = rng.integers(0, len(SPECIAL_BF16), size=n)
            put = rng.random(n) < 0.4
            b[put] = np.array(SPECIAL_BF16, dtype=np.uint16)[pick[put]]
        if finite_only:
            b[(b & 0x7F80) == 0x7F80] = 0x3F80
        rows.append(b.astype(np.uint16))
    return rows


ADVERSARIAL_SOFTMAX = [
    [0xFF80, 0xFF80, 0xFF80],  # only -inf
    [0x3F80, 0x7FC0, 0x3F80],  # a NaN
    [0x3F80, 0xFF80, 0xFF80],  # a -inf tail
    [0x7F80, 0x3F80],  # +inf (inf - inf)
    [0x7F7F, 0xFF7F, 0x0000],  # the extremes: x - m overflows to -inf
    [0x0001, 0x8001, 0x0000, 0x8000],  # subnormals and zeros
    [0x42C8, 0x42C8, 0x42C8, 0x42C8],  # ties of the maximum
    [0x4300, 0x0000, 0xC300],  # 128, 0, -128: tiny exps
]

ADVERSARIAL_RMSNORM = [
    [0x7F7F, 0x3F80],  # the largest BF16: its square overflows FP32 -> q = inf
    [0x5F80, 0x5F80, 0x3F80],  # 2^64: squares 2^128 overflow FP32
    [0x5F7F, 0x0000],  # (2 - 2^-7) 2^63: square just below FP32's overflow
    [0x0001, 0x0001, 0x8001],  # 2^-133: squares below FP32's subnormals -> q = 0
    [0x1F80, 0x1F80],  # 2^-64: square 2^-128, an FP32 subnormal
    [0x0000, 0x8000],  # zeros: v = eps
    [0x3F80, 0x7FC0],  # NaN
    [0xFF80, 0x3F80],  # -inf
    [0x3F81, 0x3F81, 0x3F81],  # ties in the products
]


def _softmax_oracle(rows, et, rt, mode):
    return [np.array(nv_softmax_row(r, et, rt, mode, "bf16"), dtype=np.uint16) for r in rows]


@pytest.mark.parametrize("mode", MODES)
def test_softmax_matches_oracle(mode):
    et, rt, _ = _tables(mode)
    rng = np.random.default_rng(SEED)
    rows = _rows(rng, 24, 12) + [np.array(r, dtype=np.uint16) for r in ADVERSARIAL_SOFTMAX]
    want = _softmax_oracle(rows, et, rt, mode)
    for r, w in zip(rows, want):
        got = hw_sim.softmax_bf16(r, et, rt, mode)
        assert np.array_equal(got, w), (r, got, w)


def test_softmax_batched_and_parallel_rows_match_single_rows():
    """Rows in one call (serial and parallel kernels, groups of 8 and a remainder) give each
    row's own bits; checked against the oracle on a few rows."""
    et, rt, _ = _tables("reduced")
    rng = np.random.default_rng(SEED + 1)
    x = f64_to_bf16_bits(rng.normal(0.0, 3.0, size=(2100, 13)))
    x[5, 9:] = 0xFF80  # a -inf tail
    x[7, 2] = 0x7FC0
    got = hw_sim.softmax_bf16(x, et, rt, "reduced")  # >= 2^14 elements: parallel
    for i in (0, 5, 7, 2099):
        assert np.array_equal(got[i], hw_sim.softmax_bf16(x[i : i + 1], et, rt, "reduced")[0])
        want = nv_softmax_row(x[i], et, rt, "reduced", "bf16")
        assert np.array_equal(got[i], np.array(want, dtype=np.uint16))
    sums = bf16_bits_to_f64(got[np.arange(2100) != 7]).sum(axis=-1)
    assert np.all(np.abs(sums - 1.0) < ROW_SUM_TOL)


def test_softmax_f32_is_the_bits_path_on_rounded_inputs():
    et, rt, _ = _tables("reduced")
    rng = np.random.default_rng(SEED + 2)
    x = (rng.normal(0.0, 5.0, size=(300, 17)) * 1.0001).astype(np.float32)  # off the BF16 grid
    x[3, 10:] = -np.inf
    x[4, :] = -np.inf
    x[6, 1] = np.nan
    x[8, 0] = np.float32(3.4e38)
    for xx in (x, x[:2]):  # parallel and serial kernels
        got = hw_sim.softmax_bf16_f32(xx, et, rt, "reduced")
        want = hw_sim.softmax_bf16(f32_to_bf16_bits(xx), et, rt, "reduced")
        assert got.dtype == np.float32
        assert np.array_equal(got.view(np.uint32), want.astype(np.uint32) << 16)


def _rmsnorm_oracle(rows, w, et_mode):
    _, _, st = _tables(et_mode)
    return [np.array(nv_rmsnorm_row(r, w, EPS, st, et_mode, "bf16"), np.uint16) for r in rows]


@pytest.mark.parametrize("mode", MODES)
def test_rmsnorm_matches_oracle(mode):
    _, _, st = _tables(mode)
    rng = np.random.default_rng(SEED + 3)
    for n in (1, 2, 3, 9):
        rows = _rows(rng, 10, n)
        rows = [np.resize(r, n).astype(np.uint16) for r in rows]
        rows += [np.resize(np.array(r, np.uint16), n) for r in ADVERSARIAL_RMSNORM]
        w = f64_to_bf16_bits(rng.normal(1.0, 0.5, size=n))
        w[0] = 0x8000 if n > 1 else w[0]  # a -0 weight
        for r in rows:
            got = hw_sim.rmsnorm_bf16(r, w, EPS, st, mode)
            want = nv_rmsnorm_row(r, w, EPS, st, mode, "bf16")
            assert np.array_equal(got, np.array(want, np.uint16)), (r, got, want)


def test_rmsnorm_square_overflow_and_underflow_reach_the_oracle():
    """The adversarial rows are not vacuous: a square that overflows FP32 makes q = inf, r = +0
    and every output 0; squares below FP32's subnormals make q = 0, so with eps = 0 r = +inf
    and every output inf (an exact FP16-style square would have kept q > 0)."""
    _, _, st = _tables("reduced")
    w = np.full(2, 0x3F80, np.uint16)
    big = hw_sim.rmsnorm_bf16(np.array([0x5F80, 0x3F80], np.uint16), w, EPS, st, "reduced")
    assert np.array_equal(big, np.array([0x0000, 0x0000], np.uint16))  # 2^64 * 0, 1 * 0
    tiny = hw_sim.rmsnorm_bf16(np.array([0x0001, 0x0001], np.uint16), w, 0.0, st, "reduced")
    assert np.array_equal(tiny, np.array([0x7F80, 0x7F80], np.uint16))  # 2^-133 * inf


def test_rmsnorm_batched_and_f32_entry():
    _, _, st = _tables("direct")
    rng = np.random.default_rng(SEED + 4)
    x = (rng.normal(0.0, 1e3, size=(1500, 11)) * 1.0003).astype(np.float32)
    x[0, 0] = np.float32(3e38)  # stays finite in BF16 (no prescale), its square overflows FP32
    x[1, :] = np.float32(1e-42)  # FP32 subnormals
    x[2, 3] = np.nan
    w = f64_to_bf16_bits(rng.normal(1.0, 0.3, size=11))
    for xx in (x, x[:3]):  # parallel and serial kernels
        got = hw_sim.rmsnorm_bf16_f32(xx, w, EPS, st, "direct")
        bits = hw_sim.rmsnorm_bf16(f32_to_bf16_bits(xx), w, EPS, st, "direct")
        assert np.array_equal(got.view(np.uint32), bits.astype(np.uint32) << 16)
    bits = hw_sim.rmsnorm_bf16(f32_to_bf16_bits(x), w, EPS, st, "direct")
    for i in (0, 1, 2, 1499):
        want = nv_rmsnorm_row(f32_to_bf16_bits(x[i]), w, EPS, st, "direct", "bf16")
        assert np.array_equal(bits[i], np.array(want, np.uint16))


def test_mixing_formats_is_an_error_naming_both_tables():
    et, rt, st = _tables("reduced")
    fp16 = standin_tables()
    x = np.zeros((1, 4), np.uint16)
    with pytest.raises(SimInputError, match="exp table is bf16 but the reciprocal table is fp16"):
        hw_sim.softmax_bf16(x, et, fp16["recip_reduced"], "reduced")
    with pytest.raises(SimInputError, match="exp table is fp16 but the reciprocal table is bf16"):
        hw_sim.softmax(x.view(np.float16), fp16["exp_below0"], rt, "reduced")
    with pytest.raises(SimInputError, match="fp16 rows need fp16 tables, but the rsqrt table"):
        hw_sim.rmsnorm(x.view(np.float16), x[0], 1e-6, st, "reduced")
    with pytest.raises(SimInputError, match="bf16 rows need bf16 tables"):
        hw_sim.rsqrt_bf16(np.ones(3, np.float32), fp16["rsqrt_single"], "reduced")
    with pytest.raises(SimInputError, match="uint16 numpy array of BF16 bit patterns"):
        hw_sim.softmax_bf16(x.view(np.float16), et, rt, "reduced")
    with pytest.raises(SimInputError, match="reduced mode needs"):
        hw_sim.softmax_bf16(x, et, _tables("direct")[1], "reduced")


def test_rne_bf16_f64_matches_the_fraction_rounding():
    """rne_bf16_f64 (reduced mode's rounding) against nli.grid.f64_to_bf16_bits on doubles with
    more bits than FP32 (ties, near-ties, subnormal and overflow edges)."""
    import numba

    @numba.njit
    def run(v, out):
        for i in range(v.size):
            out[i] = rne_bf16_f64(v[i])

    rng = np.random.default_rng(SEED + 5)
    b = bf16_bits_to_f64(np.arange(0x7F80, dtype=np.uint32).astype(np.uint16))
    nxt = bf16_bits_to_f64(np.arange(1, 0x7F81, dtype=np.uint32).astype(np.uint16))
    mid = (b + nxt) / 2  # exact midpoints (float64), the overflow threshold included
    v = np.concatenate([mid, np.nextafter(mid, 0), np.nextafter(mid, np.inf), b * (1 + 2**-40)])
    v = np.concatenate([v, -v, rng.normal(size=1000) * 2.0 ** rng.integers(-140, 128, 1000)])
    v = v[np.isfinite(v)]
    out = np.empty(v.size, np.uint16)
    run(v, out)
    assert np.array_equal(out, f64_to_bf16_bits(v))
