"""Exports and reports of bf16 tables (numerics §13): the C header, $readmemh files and npz carry
the dtype and round-trip to the same table; `nli table report` measures in BF16 ulps."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from hw_sim.report import error_report, table_domain
from hw_sim.report_checks import table_report
from hw_sim.unit import output_lut
from nli.export import c_header, export_table, readmemh_files
from nli.grid import bf16_grid, f64_to_bf16_bits
from nli.table import Table, TableError, save_table, table_from_cutpoints


@pytest.fixture(scope="module")
def table():
    cut = f64_to_bf16_bits(np.array([-8.0, -2.0, -0.5, 0.0, 0.5, 2.0, 8.0]))
    t = table_from_cutpoints("tanh", cut, [1, 8, 8, 8, 8, 1], dtype="bf16")
    return t.with_lut(t.lut, domain=["c100", "4100"])  # [-8, 8] as BF16 patterns


def _c_values(text, name):
    m = re.search(rf"{name}\[(\d+)\] = {{(.*?)}};", text, re.S)
    vals = [int(v, 16) for v in re.findall(r"0x([0-9a-f]+)", m.group(2))]
    assert len(vals) == int(m.group(1))
    return vals


def _same(a: Table, b: Table):
    assert a.dtype == b.dtype
    for f in ("cutpoints", "bins", "lut"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert np.array_equal(a.mul.view(np.uint32), b.mul.view(np.uint32))
    assert (a.below, a.above) == (b.below, b.above)


def test_c_header_round_trip(table):
    h = c_header(table)
    assert "#define NLI_TANH_DTYPE_BF16 1" in h and "BF16 values are bfloat16" in h

    def define(n):
        return int(re.search(rf"#define NLI_TANH_{n} \(\(uint16_t\)0x([0-9a-f]+)\)", h)[1], 16)  # noqa: E731

    dtype = "bf16" if "#define NLI_TANH_DTYPE_BF16 1" in h else "fp16"
    back = Table(
        "tanh",
        np.array(_c_values(h, "NLI_TANH_CUTPOINTS"), np.uint16),
        _c_values(h, "NLI_TANH_BINS"),
        np.array(_c_values(h, "NLI_TANH_LUT"), np.uint16),
        define("BELOW"),
        define("ABOVE"),
        base=_c_values(h, "NLI_TANH_BASE"),
        mul=np.array(_c_values(h, "NLI_TANH_MUL"), np.uint32).view(np.float32),
        dtype=dtype,
    )
    _same(table, back)
    fp16 = table_from_cutpoints("tanh", np.array([0xC000, 0x4000], np.uint16), [4])
    assert "#define NLI_TANH_DTYPE_BF16 0" in c_header(fp16)


def test_readmemh_round_trip(table):
    files = readmemh_files(table)
    for name in ("cutpoints.hex", "lut.hex", "clamps.hex"):
        assert "BF16 bits" in files[name].splitlines()[0]
    words = lambda name: [int(w, 16) for w in files[name].splitlines()[1:]]  # noqa: E731
    dtype = "bf16" if "BF16 bits" in files["lut.hex"].splitlines()[0] else "fp16"
    below, above = words("clamps.hex")
    back = Table(
        "tanh",
        np.array(words("cutpoints.hex"), np.uint16),
        words("bins.hex"),
        np.array(words("lut.hex"), np.uint16),
        below,
        above,
        base=words("base.hex"),
        mul=np.array(words("mul.hex"), np.uint32).view(np.float32),
        dtype=dtype,
    )
    _same(table, back)


def test_npz_carries_the_dtype(table, tmp_path):
    (p,) = export_table(table, "npz", tmp_path / "t.npz")
    with np.load(p, allow_pickle=False) as z:
        assert str(z["dtype"]) == "bf16"
        back = Table(
            "tanh",
            z["cutpoints"],
            z["bins"],
            z["lut"],
            int(z["below"][0]),
            int(z["above"][0]),
            base=z["base"],
            mul=z["mul"].view(np.float32),
            dtype=str(z["dtype"]),
        )
    _same(table, back)


def test_rtl_refuses_a_bf16_table(table):
    from hw_sim.rtl.emit import constants

    with pytest.raises(TableError, match="dtype"):
        constants(table)


def test_report_measures_in_bf16(table):
    lo, hi = table_domain(table)
    assert (lo, hi) == (-8.0, 8.0)
    rep = error_report(table)
    x, bits = bf16_grid(-8.0, 8.0)
    assert rep["inputs"] == x.size and rep["dtype"] == "bf16"
    assert rep["reference"].startswith("RNE_bf16") and rep["rel_floor"] == 2.0**-126
    # independently: BF16 ordinals of the unit's outputs against RNE_bf16(tanh(x))
    y = output_lut(table)[bits].astype(np.int64)
    ref = f64_to_bf16_bits(np.tanh(x)).astype(np.int64)
    o = lambda b: np.where(b & 0x8000, -(b & 0x7FFF), b)  # noqa: E731
    ulp = np.abs(o(y) - o(ref))
    assert rep["max_ulp"] == ulp.max() > 0
    assert rep["pct_correctly_rounded"] == pytest.approx(100 * np.mean(ulp == 0), abs=1e-9)
    # tiny negative x: dx = RNE32(x + 0.5) loses x entirely, the output is 0 (numerics §3)
    assert rep["worst_input"]["x"] < 0 and rep["worst_input"]["output"] == "0000"
    full = table_report(table)
    assert full["tails_check"]["ok"] and full["sign_check"]["wrong_sign"] == 0


def test_report_ulp_counts_bf16_neighbours():
    """One LUT entry moved by one BF16 ulp moves the output at that cutpoint by exactly 1 ulp."""
    cut = f64_to_bf16_bits(np.array([1.0, 2.0]))
    t = table_from_cutpoints("rsqrt", cut, [128], dtype="bf16")  # exact: a point per BF16 value
    assert error_report(t, (1.0, 2.0))["max_ulp"] == 0
    lut = t.lut.copy()
    lut[5] += 1
    rep = error_report(t.with_lut(lut), (1.0, 2.0))
    assert (
        rep["max_ulp"] == 1
        and rep["inputs"] - round(rep["inputs"] * rep["pct_correctly_rounded"] / 100) == 1
    )


def test_cli_report_and_export_of_a_bf16_table(table, tmp_path):
    path = tmp_path / "t.json"
    save_table(table, path)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "nli.cli", *a], capture_output=True, text=True, env=env
    )
    p = run("table", "report", str(path), "--json", str(tmp_path / "r.json"))
    assert p.returncode == 0, p.stderr
    assert "BF16 inputs" in p.stdout
    assert json.loads((tmp_path / "r.json").read_text())["dtype"] == "bf16"
    p = run("table", "report", str(path), "--precision", "fp16")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    p = run("table", "refine", str(path), "--output", str(tmp_path / "o.json"))
    assert (
        p.returncode == 2 and "fp16 tables only" in p.stderr and not (tmp_path / "o.json").exists()
    )
    p = run("table", "export", str(path), "--format", "c", "-o", str(tmp_path / "t.h"))
    assert p.returncode == 0 and "DTYPE_BF16 1" in (tmp_path / "t.h").read_text()
