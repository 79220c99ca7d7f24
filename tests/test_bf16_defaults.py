"""The shipped bf16 tables (numerics §13, nli/tables/<name>_bf16.json): present, bf16, on their
function's default BF16 domain, within the ulp targets of the build (benchmarks/build_tables.py
--dtype bf16) over every finite BF16 input, and bit-exact against the Fraction oracle."""

import json

import numpy as np
import pytest
from sim_tables import ALL_INPUTS, OraclePool

from hw_sim import run_elementwise
from hw_sim.report import error_report
import nli
from nli.defaults import BF16_DEFAULT_TABLES, default_table, default_table_path
from nli.functions import get_function
from nli.table import TableError

TARGET_MAX_ULP = {"direct": 1, "reduced": 0}  # the build's targets (reduced: exact)


@pytest.mark.parametrize("fn_mode", BF16_DEFAULT_TABLES, ids="-".join)
def test_shipped_bf16_table_meets_its_target(fn_mode):
    name, mode = fn_mode
    path = default_table_path(name, mode, "bf16")
    assert path.name == (f"{name}_bf16.json" if mode == "direct" else f"{name}_{mode}_bf16.json")
    d = json.loads(path.read_text())
    assert d["dtype"] == "bf16" and d["numerics"] == "1.3"
    t = default_table(name, mode, "bf16")
    rep = error_report(t)
    assert rep["domain"] == list(get_function(name).bf16_domains[mode])
    assert rep["max_ulp"] <= TARGET_MAX_ULP[mode] and rep["nan_mismatch"] == 0


def test_bf16_names_and_errors():
    assert nli.default_table_names("bf16") == list(BF16_DEFAULT_TABLES)
    assert ("silu", "direct") in nli.default_table_names()  # fp16 unchanged
    with pytest.raises(ValueError, match="dtype"):
        default_table_path("silu", "direct", "fp8")
    with pytest.raises(TableError, match="--dtype bf16"):
        default_table("erf", "direct", "bf16")  # not shipped
    assert default_table("silu").dtype == "fp16"


@pytest.fixture(scope="module")
def oracle():
    pool = OraclePool()
    yield pool
    pool.close()


@pytest.mark.parametrize("fn_mode", [("tanh", "direct"), ("reciprocal", "reduced")], ids="-".join)
def test_shipped_bf16_tables_exhaustive_against_the_oracle(fn_mode, oracle):
    t = default_table(*fn_mode, "bf16")
    assert np.array_equal(run_elementwise(t, ALL_INPUTS), oracle.outputs(t))
