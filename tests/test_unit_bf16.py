"""hw_sim.unit on bf16 tables (numerics §13): exhaustive over all 65,536 BF16 encodings, bit for
bit against the Fraction oracle of tests/naive.py, for tables that reach the format's corners
(FP32-subnormal dx, intervals and LUT differences near FP32's overflow, zeros of both signs)."""

import numpy as np
import pytest
from sim_tables import ALL_INPUTS, OraclePool

from hw_sim import SimInputError, output_lut, run_elementwise, run_elementwise_f32
from hw_sim.fp import bf16_decode_table, rne_bf16_f32
from hw_sim.unit import _gather_kernel, prepare
import nli
from nli.formats import BF16_NAN
from nli.grid import bf16_bits_to_f64, f32_to_bf16_bits, f64_to_bf16_bits
from nli.table import Table

PAPER_BINS = [1] + [32] * 8 + [1]
SEED = 1813


def _b(values) -> np.ndarray:
    """float64 values that are BF16 values -> their patterns (asserted exact)."""
    v = np.asarray(values, dtype=np.float64)
    bits = f64_to_bf16_bits(v)
    assert np.array_equal(bf16_bits_to_f64(bits), v), "not BF16 values"
    return bits


def _random_table(rng) -> Table:
    """Random finite, increasing cutpoints over many binades (both signs, subnormals included),
    random bins, random LUT entries of moderate magnitude (differences stay finite in FP32)."""
    while True:
        k = int(rng.integers(1, 7))
        mags = rng.uniform(-140, 120, size=k + 1)
        vals = np.sort(np.sign(rng.uniform(-1, 1, k + 1)) * np.exp2(mags))
        cuts = np.unique(f64_to_bf16_bits(vals).view(np.int16).astype(np.int64))
        cv = np.sort(bf16_bits_to_f64(cuts.astype(np.uint16)))
        cv = np.unique(cv)
        if cv.size < 2:
            continue
        bits = f64_to_bf16_bits(cv)
        bins = [int(b) for b in rng.integers(1, 40, cv.size - 1)]
        lut = f64_to_bf16_bits(
            np.sign(rng.uniform(-1, 1, 1 + sum(bins)))
            * np.exp2(rng.uniform(-135, 100, 1 + sum(bins)))
        )
        try:
            return Table("f", bits, bins, lut, int(lut[0]), int(lut[-1]), dtype="bf16")
        except nli.TableError:  # e.g. an interval too narrow for its bins (mul overflows)
            continue


def bf16_tables() -> dict:
    t = {}
    big = 2.0**126
    t["silu_wide"] = nli.table_from_cutpoints(
        "silu", _b([-big, -20, -8, -4, -2, 0, 2, 4, 8, 20, big]), PAPER_BINS, dtype="bf16"
    )
    exp = nli.table_from_cutpoints(
        "exp",
        _b([-96, -40, -12, -7, -5, -3.5, -2.5, -1.5, -0.75, -0.25, 0]),
        PAPER_BINS,
        dtype="bf16",
    )
    t["exp_below0"] = exp.with_lut(exp.lut, below=0)
    grid = np.arange(128, 257) / 128.0  # every BF16 value of [1, 2]: an exact reduced table
    t["recip_reduced_exact"] = nli.table_from_cutpoints(
        "reciprocal", _b(grid), [1] * 128, dtype="bf16"
    )
    t["recip_direct"] = nli.table_from_cutpoints(
        "reciprocal",
        f64_to_bf16_bits(np.geomspace(2.0**-120, 2.0**120, 11)),
        PAPER_BINS,
        dtype="bf16",
    )
    z = nli.table_from_cutpoints(
        "tanh", _b([-8, -1, -(2.0**-126), 0, 2.0**-126, 1, 8]), [4, 4, 1, 1, 4, 4], dtype="bf16"
    )
    lut = z.lut.copy()
    lut[[7, 8, 9, 10]] = [0x8000, 0x0000, 0x0001, 0x8001]  # zeros and subnormals of both signs
    t["subnormal_zero_signs"] = z.with_lut(lut, below=0x8000, above=0x7F80)
    ext = _b([-(2.0**126), 2.0**127])  # width 1.5 * 2^127: just inside FP32's range
    lut = _b([-(2.0**126), 2.0**127, -(2.0**126), 2.0**127])
    t["near_fp32_overflow"] = Table("f", ext, [3], lut, 0xFF80, 0x7F80, dtype="bf16")
    rng = np.random.default_rng(SEED)
    for i in range(2):
        t[f"random{i}"] = _random_table(rng)
    return t


TABLES = bf16_tables()


@pytest.fixture(scope="module")
def oracle():
    pool = OraclePool()
    yield pool
    pool.close()


@pytest.mark.parametrize("name", sorted(TABLES))
def test_bf16_tables_exhaustive_against_the_oracle(name, oracle):
    table = TABLES[name]
    want = oracle.outputs(table)
    got = run_elementwise(table, ALL_INPUTS)
    assert got.dtype == np.uint16
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, (
        f"{bad.size} mismatches, first: x={ALL_INPUTS[bad[0]]:04x} "
        f"sim={got[bad[0]]:04x} oracle={want[bad[0]]:04x}"
    )
    assert np.array_equal(run_elementwise(table, ALL_INPUTS, method="direct"), want)
    assert np.array_equal(output_lut(table), want)


def test_reduced_reciprocal_with_a_cutpoint_per_value_is_exact():
    """One cutpoint per BF16 value of [1, 2]: the output at each is RNE_bf16(1/m)."""
    t = TABLES["recip_reduced_exact"]
    m = np.arange(128, 257) / 128.0
    got = run_elementwise(t, _b(m))
    assert np.array_equal(got, f64_to_bf16_bits(1.0 / m))


def test_nan_inputs_give_the_canonical_bf16_nan():
    t = TABLES["silu_wide"]
    nans = ALL_INPUTS[((ALL_INPUTS & 0x7F80) == 0x7F80) & ((ALL_INPUTS & 0x7F) != 0)]
    assert nans.size == 254
    assert np.all(run_elementwise(t, nans) == BF16_NAN)


def test_rne_bf16_f32_matches_the_numpy_helper():
    """The kernel's RNE_bf16 of float32 against nli.grid.f32_to_bf16_bits (another
    implementation held to the Fraction rounding in test_bf16_bits), on every pattern whose low
    16 bits are one of the rounding-relevant cases, over every high half."""
    hi = np.arange(1 << 16, dtype=np.uint64) << np.uint64(16)
    for lo in (0x0000, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF, 0x1234):
        f = (hi | np.uint64(lo)).astype(np.uint32).view(np.float32)
        got = np.array([rne_bf16_f32(v) for v in f], dtype=np.uint16)
        assert np.array_equal(got, f32_to_bf16_bits(f)), hex(lo)


def test_f32_entry_rounds_to_bf16_at_the_boundary():
    t = TABLES["silu_wide"]
    rng = np.random.default_rng(SEED)
    pats = rng.integers(0, 1 << 32, 50_000, dtype=np.uint64).astype(np.uint32)
    pats[:6] = [0x7F7FFFFF, 0xFF7F8000, 0x7F800000, 0x7FC00001, 0x00000001, 0x80008000]
    x = pats.view(np.float32).reshape(50, 1000)
    got = run_elementwise_f32(t, x)
    want = bf16_decode_table()[run_elementwise(t, f32_to_bf16_bits(x))]
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    out = np.empty(x.size, np.float32)  # the parallel variant as well
    _gather_kernel(True, True, True)(x.reshape(-1), prepare(t).values, out)
    assert np.array_equal(out.view(np.uint32), want.reshape(-1).view(np.uint32))


def test_bf16_wrappers_validate_dtype_and_shape():
    t = TABLES["exp_below0"]
    with pytest.raises(SimInputError, match="uint16"):
        run_elementwise(t, np.zeros(4, np.float16))  # FP16 values are not BF16 patterns
    with pytest.raises(SimInputError, match="uint16"):
        run_elementwise(t, [0x3F80])
    with pytest.raises(SimInputError, match="float32"):
        run_elementwise_f32(t, np.zeros(3, np.float64))
    x = _b([[-1.0, 0.0], [-0.5, -3.0]])[:, ::-1]  # non-contiguous, 2-D
    y = run_elementwise(t, x)
    assert y.shape == (2, 2) and y.dtype == np.uint16
    assert np.array_equal(y, output_lut(t)[x])
