"""hw_sim.unit: the elementwise datapath, exhaustive over all 65,536 FP16 inputs,
bit for bit against the Fraction oracle, in both unit precisions."""

import numpy as np
import pytest
from sim_tables import ALL_INPUTS, OraclePool, shipped_tables, standin_tables

from hw_sim import SimInputError, output_lut, run_elementwise
import nli
from nli.table import TableError

PRECISIONS = ("fp32", "fp16")
STANDINS = standin_tables()
SHIPPED = shipped_tables()


@pytest.fixture(scope="module")
def oracle():
    pool = OraclePool()
    yield pool
    pool.close()


def _check_exhaustive(table, oracle):
    want = oracle.outputs(table)
    lut_path = run_elementwise(table, ALL_INPUTS).view(np.uint16)
    direct = run_elementwise(table, ALL_INPUTS, method="direct").view(np.uint16)
    bad = np.flatnonzero(lut_path != want)
    assert bad.size == 0, (
        f"{bad.size} mismatches, first: x={ALL_INPUTS[bad[0]]:04x} "
        f"sim={lut_path[bad[0]]:04x} oracle={want[bad[0]]:04x}"
    )
    assert np.array_equal(direct, want)


def _in_precision(table, precision):
    try:
        return table.with_precision(precision)
    except TableError as e:  # numerics §2: an fp16 unit cannot hold this table's scales
        pytest.skip(f"not a valid {precision} table: {e}")


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", sorted(STANDINS))
def test_standin_tables_exhaustive(name, precision, oracle):
    _check_exhaustive(_in_precision(STANDINS[name], precision), oracle)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("fn_mode", nli.default_table_names(), ids="-".join)
def test_default_tables_exhaustive(fn_mode, precision, oracle):
    assert fn_mode in SHIPPED, f"shipped table {fn_mode} missing: a broken install"
    _check_exhaustive(_in_precision(nli.default_table(*fn_mode), precision), oracle)


def test_default_tables_are_all_shipped():
    """Every (function, mode) pair has its table under nli/tables/ (a missing one is a broken
    install)."""
    assert sorted(SHIPPED) == sorted(nli.default_table_names())


# ----------------------------------------------------------------------------- the wrapper
def test_shapes_dtypes_and_views():
    t = STANDINS["silu_wide"]
    lut = output_lut(t)
    rng = np.random.default_rng(7)
    x = rng.integers(0, 1 << 16, (3, 4, 5)).astype(np.uint16)
    y = run_elementwise(t, x)
    assert y.dtype == np.float16 and y.shape == x.shape
    assert np.array_equal(y.view(np.uint16), lut[x])
    assert np.array_equal(run_elementwise(t, x.view(np.float16)).view(np.uint16), lut[x])
    xt = x.transpose(2, 0, 1)  # non-contiguous input
    assert np.array_equal(run_elementwise(t, xt).view(np.uint16), lut[xt])
    assert run_elementwise(t, np.array(0x3C00, np.uint16)).shape == ()
    assert run_elementwise(t, np.float16(1.0)).shape == ()
    assert run_elementwise(t, np.zeros((0, 3), np.float16)).shape == (0, 3)
    big = rng.integers(0, 1 << 16, 100_000).astype(np.uint16)  # the parallel path
    assert np.array_equal(run_elementwise(t, big).view(np.uint16), lut[big])
    assert np.array_equal(run_elementwise(t, big, method="direct").view(np.uint16), lut[big])


def test_nan_inputs_give_canonical_nan_and_infinities_clamp():
    t = STANDINS["exp_below0"]
    x = np.array([0x7E00, 0xFE01, 0x7C01, 0xFC00, 0x7C00], np.uint16)
    y = run_elementwise(t, x).view(np.uint16)
    assert list(y) == [0x7E00, 0x7E00, 0x7E00, 0x0000, t.above]


@pytest.mark.parametrize(
    "bad", [np.zeros(3, np.float32), np.zeros(3, np.int16), [0, 1], np.zeros(3, bool)]
)
def test_rejects_non_fp16_inputs(bad):
    with pytest.raises(SimInputError, match="float16 or uint16"):
        run_elementwise(STANDINS["silu_wide"], bad)


def test_rejects_bad_method_and_table():
    with pytest.raises(ValueError, match="method"):
        run_elementwise(STANDINS["silu_wide"], np.zeros(2, np.uint16), method="fast")
    with pytest.raises(TypeError, match="Table"):
        run_elementwise({"function": "silu"}, np.zeros(2, np.uint16))
