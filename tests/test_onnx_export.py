"""ONNX export of the NLI ops (engine/onnx_export.py, engine/onnx_ops.py, `nli export ...`).

The exported graphs run in stock onnxruntime (CPU provider, default and
disabled graph optimizations) and must equal hw_sim bit for bit: the
elementwise op over all 65,536 FP16 inputs, section 5 on FP32 bit patterns,
softmax / RMSNorm on seeded rows with -inf masks, NaN, inf and sums whose
order matters. The whole model's export: tests/test_onnx_model_export.py.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx_graphs import LEVELS, rounding_model, session
import pytest
from sim_tables import ALL_INPUTS, standin_tables

from engine.onnx_export import (
    export_composite,
    export_elementwise,
    export_inverse,
    save_onnx,
)
from engine.onnx_ops import round_fp16_function
import hw_sim
import nli
from nli.cli import main as nli_main


@pytest.fixture(scope="module")
def tables():
    return standin_tables()


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint16)


# ----------------------------------------------------------------------------- elementwise
@pytest.mark.parametrize("name", ["silu_wide", "exp_below0", "zero_signs", "rsqrt_single"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_elementwise_equals_hw_sim_on_all_inputs(tables, name, precision):
    table = tables[name].with_precision(precision)
    model = export_elementwise(table)
    want = _bits(hw_sim.run_elementwise(table, ALL_INPUTS))
    for level in LEVELS:
        got = session(model, level).run(None, {"x": ALL_INPUTS.view(np.float16)})[0]
        assert got.dtype == np.float16
        assert np.array_equal(_bits(got), want), (
            f"{name}/{precision}/{level}: {np.sum(_bits(got) != want)} differ"
        )


@pytest.mark.parametrize("bins,precision", [([1], "fp32"), ([8], "fp16"), ([300], "fp32")])
def test_elementwise_single_macro_interval(bins, precision):
    """K = 1: no inner comparator (an empty ReduceSum), one LUT segment."""
    table = nli.table_from_cutpoints(
        "tanh", np.array([-1.0, 1.5], np.float16).view(np.uint16), bins, precision=precision
    )
    got = session(export_elementwise(table)).run(None, {"x": ALL_INPUTS.view(np.float16)})[0]
    assert np.array_equal(_bits(got), _bits(hw_sim.run_elementwise(table, ALL_INPUTS)))


def test_elementwise_shipped_default_tables():
    # a missing shipped table is a broken install: nli.default_table raises, the test fails
    for f, m in nli.default_table_names():
        table = nli.default_table(f, m)
        got = session(export_elementwise(table)).run(None, {"x": ALL_INPUTS.view(np.float16)})[0]
        assert np.array_equal(_bits(got), _bits(hw_sim.run_elementwise(table, ALL_INPUTS))), (f, m)


def test_elementwise_graph_keeps_table_structure(tables):
    table = tables["silu_wide"]
    model = export_elementwise(table)
    onnx.checker.check_model(model, full_check=True)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    assert np.array_equal(inits["silu.cutpoints"].view(np.uint16), table.cutpoints)
    assert np.array_equal(inits["silu.lut"].view(np.uint16), table.lut)
    assert np.array_equal(inits["silu.mul"].view(np.uint32), table.mul.view(np.uint32))
    assert np.array_equal(inits["silu.base"], table.base) and np.array_equal(
        inits["silu.bins"], table.bins
    )
    (node,) = model.graph.node
    assert (node.domain, node.op_type) == ("nli", "Interp")
    assert {(f.domain, f.name) for f in model.functions} >= {
        ("nli", "Interp"),
        ("nli", "RoundFP16"),
    }
    assert [i.name for i in model.graph.input] == ["x"] and [
        o.name for o in model.graph.output
    ] == ["y"]


# ----------------------------------------------------------------------------- RoundFP16
def test_round_fp16_matches_numpy_rne():
    """RoundFP16 (FP32 -> FP32 on the FP16 grid) against numpy's float32 -> float16 RNE."""
    model = rounding_model("RoundFP16", round_fp16_function())
    rng = np.random.default_rng(7)
    halves = ALL_INPUTS.view(np.float16).astype(np.float32).view(np.uint32)
    v = np.concatenate(
        [
            rng.integers(0, 2**32, 1 << 20, dtype=np.uint64).astype(np.uint32),
            halves,
            halves + 1,
            halves - 1,
            halves + 0x1000,
            halves + 0xFFF,  # grid points, +-1 ulp, midpoints
            np.array(
                [0x477FF000, 0x477FEFFF, 0x33000000, 0x33000001, 0x32FFFFFF, 1, 0x80000001],
                np.uint32,
            ),
        ]
    ).view(np.float32)
    got = session(model).run(None, {"v": v})[0]
    with np.errstate(over="ignore"):
        want = v.astype(np.float16)
    nan = np.isnan(want)
    assert np.array_equal(got[~nan].astype(np.float16).view(np.uint16), want[~nan].view(np.uint16))
    assert np.array_equal(got[~nan], want[~nan].astype(np.float32))  # on the grid, exactly
    assert np.all(got[nan].view(np.uint32) == 0x7FC00000)  # canonical NaN


# ----------------------------------------------------------------------------- section 5
def _fp32_probe(rng) -> np.ndarray:
    special = np.array(
        [
            0.0,
            -0.0,
            np.inf,
            -np.inf,
            np.nan,
            1e-45,
            1.1754942e-38,
            1.1754944e-38,
            65504,
            65520,
            1e6,
            2.0**40,
            2.0**-40,
            2.0**127,
            2.0**-126,
            1.0,
            2.0,
            4.0,
            3.9999998,
        ],
        np.float32,
    )
    return np.concatenate(
        [
            rng.integers(0, 2**32, 100_000, dtype=np.uint64).astype(np.uint32).view(np.float32),
            special,
            -special,
            np.abs(rng.standard_normal(20_000)).astype(np.float32) * 1e3,
        ]
    )


@pytest.mark.parametrize(
    "name,fn",
    [
        ("recip_reduced", hw_sim.reciprocal),
        ("recip_direct", hw_sim.reciprocal),
        ("rsqrt_single", hw_sim.rsqrt),
        ("rsqrt_direct", hw_sim.rsqrt),
    ],
)
@pytest.mark.parametrize("mode", ["reduced", "direct"])
def test_inverse_equals_hw_sim(tables, name, fn, mode):
    v = _fp32_probe(np.random.default_rng(3))
    for precision in ("fp32", "fp16"):
        try:
            table = tables[name].with_precision(precision)
        except nli.TableError:
            continue  # an fp16 unit cannot hold this table's mul (numerics §2)
        got = session(export_inverse(table, mode)).run(None, {"v": v})[0]
        want = fn(v, table, mode)
        assert np.array_equal(_bits(got), _bits(want)), f"{name}/{mode}/{precision}"


# ----------------------------------------------------------------------------- section 4
def _rows(rng, R: int, n: int, scale: float) -> np.ndarray:
    x = (rng.standard_normal((R, n)) * scale).astype(np.float16)
    x[0] = -np.inf  # a fully masked row -> NaN
    x[1, n // 2] = np.nan
    x[2, ::2] = -np.inf  # causal-style masks
    x[3, np.tril(np.ones((n, n), bool))[min(3, n - 1)] == 0] = -np.inf
    x[4, -1] = np.inf
    x[5] = 0.0
    x[5, ::3] = -0.0
    x[6] = np.array(rng.integers(0, 1024, n), np.uint16).view(np.float16)  # subnormals
    x[7, : 2 * (n // 2)] = np.array([65504, -65504] * (n // 2), np.float16)
    # order-sensitive sums: one dominant element and many small ones
    x[8] = rng.uniform(-16.0, -6.0, n).astype(np.float16)  # e in [1e-7, 2.5e-3] against a sum ~ 1
    x[8, 0] = 0.0
    x[9] = np.float16(0.01)
    x[9, 0] = 1000.0
    return x


def _sequential_differs_from_pairwise(e: np.ndarray) -> bool:
    seq = np.float32(0)
    for v in e.astype(np.float32):
        seq = np.float32(seq + v)
    return seq != np.sum(e.astype(np.float32))


@pytest.mark.parametrize("mode,recip", [("direct", "recip_direct"), ("reduced", "recip_reduced")])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_softmax_equals_hw_sim(tables, mode, recip, precision):
    tabs = {
        "exp": tables["exp_below0"].with_precision(precision),
        "reciprocal": tables[recip].with_precision(precision),
    }
    sess = session(export_composite("softmax", tabs, mode))
    rng = np.random.default_rng(11)
    for n, scale in ((1, 1.0), (7, 3.0), (64, 10.0), (1500, 4.0)):
        x = _rows(rng, 24, n, scale)
        got = sess.run(None, {"x": x})[0]
        assert np.array_equal(
            _bits(got), _bits(hw_sim.softmax(x, tabs["exp"], tabs["reciprocal"], mode))
        ), n
    # these rows really need the sequential sum: pairwise order gives another s on some
    with np.errstate(over="ignore", invalid="ignore"):
        d = (x - x.max(-1, keepdims=True))[8:]  # RNE16(x_i - m)
    e = hw_sim.run_elementwise(tabs["exp"], d).astype(np.float32)
    assert any(_sequential_differs_from_pairwise(row) for row in e)


@pytest.mark.parametrize("mode,rsqrt", [("direct", "rsqrt_direct"), ("reduced", "rsqrt_single")])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_rmsnorm_equals_hw_sim(tables, mode, rsqrt, precision):
    try:
        table = tables[rsqrt].with_precision(precision)
    except nli.TableError:
        pytest.skip("an fp16 unit cannot hold this table's mul (numerics §2)")
    sess = session(export_composite("rmsnorm", {"rsqrt": table}, mode))
    rng = np.random.default_rng(12)
    for n, scale in ((1, 1.0), (7, 3.0), (64, 300.0), (1500, 2.0)):
        x = _rows(rng, 24, n, scale)
        w = rng.standard_normal(n).astype(np.float16)
        for eps in (1e-5, 1e-6):
            got = sess.run(None, {"x": x, "weight": w, "eps": np.array(eps, np.float32)})[0]
            want = hw_sim.rmsnorm(x, w, eps, table, mode)
            assert np.array_equal(_bits(got), _bits(want)), (n, eps)
    sq = x[8:].astype(np.float32) ** 2
    assert any(_sequential_differs_from_pairwise(row) for row in sq)


def test_cli_exports_and_reports_bad_input(tables, tmp_path, capsys):
    silu, exp = tmp_path / "silu.json", tmp_path / "exp.json"
    nli.save_table(tables["silu_wide"], silu)
    nli.save_table(tables["exp_below0"], exp)
    out = tmp_path / "op.onnx"
    assert nli_main(["export", "onnx-op", str(silu), "-o", str(out)]) == 0
    got = session(onnx.load(out)).run(None, {"x": ALL_INPUTS.view(np.float16)})[0]
    assert np.array_equal(
        _bits(got), _bits(hw_sim.run_elementwise(tables["silu_wide"], ALL_INPUTS))
    )
    assert nli_main(["export", "onnx-op", str(tmp_path / "missing.json"), "-o", str(out)]) == 2
    assert "no such table file" in capsys.readouterr().err
    model_out = tmp_path / "tiny.onnx"
    assert (
        nli_main(
            [
                "export",
                "onnx",
                "--model",
                "tiny",
                "--ops",
                "silu",
                "--table",
                f"silu={silu}",
                "-o",
                str(model_out),
            ]
        )
        == 0
    )
    onnx.checker.check_model(str(model_out))
    assert (
        nli_main(
            [
                "export",
                "onnx",
                "--model",
                "tiny",
                "--ops",
                "silu",
                "--table",
                f"silu={exp}",
                "-o",
                str(model_out),
            ]
        )
        == 2
    )
    assert "holds a 'exp' table, not 'silu'" in capsys.readouterr().err
    assert (
        nli_main(["export", "onnx", "--model", "tiny", "--ops", "silu,gelu", "-o", str(model_out)])
        == 2
    )
    assert "unknown op(s) gelu" in capsys.readouterr().err


def test_save_is_atomic_and_leaves_no_temp_files(tables, tmp_path):
    path = tmp_path / "sub" / "op.onnx"
    save_onnx(export_elementwise(tables["silu_wide"]), path)
    save_onnx(export_elementwise(tables["exp_below0"]), path)  # overwrite in place
    assert [p.name for p in path.parent.iterdir()] == ["op.onnx"]
    assert onnx.load(path).graph.initializer[0].name.startswith("exp.")
