"""ONNX export of bf16 tables (numerics §13 and §8; engine/onnx_bf16.py).

The exported graphs run in stock onnxruntime (CPU provider, default and disabled graph
optimizations) with bfloat16 inputs and outputs, fed and read as uint16 bit patterns through
OrtValues (onnxruntime's numpy bridge has no bfloat16). They must equal hw_sim's bf16 unit bit
for bit: the elementwise op over all 65,536 BF16 inputs, section 5 on FP32 bit patterns,
Softmax / RMSNorm on seeded and adversarial rows. Mixed formats are refused with one line.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx_bf16_graphs import ALL, BF16, bits, bits16, run, standin_tables
from onnx_graphs import LEVELS, rounding_model, session
import pytest

from engine.onnx_bf16 import round_bf16_function
from engine.onnx_export import ExportError, export_composite, export_elementwise, export_inverse
import hw_sim
import nli
from nli.grid import bf16_bits_to_f64, f32_to_bf16_bits


@pytest.fixture(scope="module")
def tables() -> dict:
    return standin_tables()


# ----------------------------------------------------------------------------- RoundBF16
def test_round_bf16_matches_grid_rounding():
    """nli.RoundBF16 (FP32 -> FP32 on the BF16 grid) against nli.grid.f32_to_bf16_bits on random
    patterns, every BF16 value, its neighbours, every midpoint and the overflow edge."""
    model = rounding_model("RoundBF16", round_bf16_function())
    rng = np.random.default_rng(7)
    grid = ALL.astype(np.uint32) << 16
    v = np.concatenate(
        [
            rng.integers(0, 2**32, 1 << 20, dtype=np.uint64).astype(np.uint32),
            grid,
            grid + 1,
            grid - 1,
            grid + 0x8000,  # midpoints
            grid + 0x7FFF,
            grid + 0x8001,
            np.array([0x7F7F8000, 0x7F7F7FFF, 0xFF7F8000, 0x7FFFFFFF, 0xFFC00001], np.uint32),
        ]
    ).view(np.float32)
    for level in LEVELS:
        got = session(model, level).run(None, {"v": v})[0].view(np.uint32)
        want = f32_to_bf16_bits(v).astype(np.uint32) << 16
        assert np.array_equal(got, want), (level, int(np.sum(got != want)))


# ----------------------------------------------------------------------------- elementwise
@pytest.mark.parametrize(
    "name",
    ["silu_wide", "exp_below0", "zero_signs", "tanh_tiny", "tanh_single", "recip_direct"],
)
def test_elementwise_equals_hw_sim_on_all_inputs(tables, name):
    table = tables[name]
    model = export_elementwise(table)
    want = hw_sim.run_elementwise(table, ALL)
    assert want.dtype == np.uint16
    for level in LEVELS:
        got = run(session(model, level), {"x": ALL}, ALL.shape)
        assert np.array_equal(got, want), f"{name}/{level}: {np.sum(got != want)} differ"


def test_elementwise_graph_is_bfloat16_and_keeps_table_structure(tables):
    table = tables["silu_wide"]
    model = export_elementwise(table)
    onnx.checker.check_model(model, full_check=True)
    assert model.graph.input[0].type.tensor_type.elem_type == BF16
    assert model.graph.output[0].type.tensor_type.elem_type == BF16
    inits = {i.name: i for i in model.graph.initializer}
    for f in ("cutpoints", "lut", "below", "above"):
        init = inits[f"silu.{f}"]
        assert init.data_type == BF16
        stored = np.frombuffer(init.raw_data, "<u2")
        assert np.array_equal(stored, np.atleast_1d(np.asarray(getattr(table, f), np.uint16)))
    mul = onnx.numpy_helper.to_array(inits["silu.mul"])
    assert np.array_equal(mul.view(np.uint32), table.mul.view(np.uint32))
    (node,) = model.graph.node
    assert (node.domain, node.op_type) == ("nli", "InterpBF16")
    assert {f.name for f in model.functions} == {"InterpBF16", "RoundBF16"}
    # nothing but BitCast touches bfloat16 inside the functions (no ORT kernel would exist)
    for fn in model.functions:
        for n in fn.node:
            if n.op_type == "Cast":
                (to,) = [a.i for a in n.attribute if a.name == "to"]
                assert to != BF16, (fn.name, n.name)


def test_shipped_bf16_tables():
    shipped = nli.default_table_names("bf16")
    assert shipped  # a missing shipped table is a broken install: default_table raises
    for f, m in shipped:
        table = nli.default_table(f, m, "bf16")
        got = run(session(export_elementwise(table)), {"x": ALL}, ALL.shape)
        assert np.array_equal(got, hw_sim.run_elementwise(table, ALL)), (f, m)


# ----------------------------------------------------------------------------- section 5
def _fp32_probe(rng) -> np.ndarray:
    special = np.array(
        [0.0, np.inf, np.nan, 1e-45, 2.0**-149 * 3, 1.1754942e-38, 1.1754944e-38, 2.0**-127,
         1.0, 2.0, 4.0, 3.9999998, 1.9999999, 2.0**127, 3.4028235e38, 3.3895e38, 2.0**-133,
         2.0**-134, 65520, 2.0**63, 2.0**64, 2.0**-75],
        np.float32,
    )  # fmt: skip
    grid = (ALL.astype(np.uint32) << 16).view(np.float32)
    return np.concatenate(
        [
            rng.integers(0, 2**32, 100_000, dtype=np.uint64).astype(np.uint32).view(np.float32),
            special,
            -special,
            grid,  # every BF16 value, and the FP32 values next to it
            (grid.view(np.uint32) + 0x8000).view(np.float32),
            (grid.view(np.uint32) + 1).view(np.float32),
        ]
    )


@pytest.mark.parametrize(
    "name,function,mode",
    [
        ("recip_reduced", "reciprocal", "reduced"),
        ("recip_reduced_extreme", "reciprocal", "reduced"),
        ("recip_direct", "reciprocal", "direct"),
        ("rsqrt_reduced", "rsqrt", "reduced"),
        ("rsqrt_reduced_extreme", "rsqrt", "reduced"),
        ("rsqrt_direct", "rsqrt", "direct"),
    ],
)
def test_inverse_equals_hw_sim(tables, name, function, mode):
    table = tables[name]
    v = _fp32_probe(np.random.default_rng(3))
    want = getattr(hw_sim, f"{function}_bf16")(v, table, mode)
    for level in LEVELS:
        got = run(session(export_inverse(table, mode), level), {"v": v}, v.shape)
        assert np.array_equal(got, want), (name, level, int(np.sum(got != want)))


# ----------------------------------------------------------------------------- section 4
def _rows(rng, R: int, n: int, scale: float) -> np.ndarray:
    """uint16[R, n] BF16 rows: seeded values and the corners of Softmax / RMSNorm."""
    x = f32_to_bf16_bits((rng.standard_normal((R, n)) * scale).astype(np.float32))
    ninf, pinf, nan = 0xFF80, 0x7F80, 0x7FC0
    x[0] = ninf  # a fully masked row -> NaN
    x[1, n // 2] = nan
    x[1, 0] = 0xFFC1  # a negative NaN with a payload
    x[2, ::2] = ninf  # causal-style masks
    x[3, np.tril(np.ones((n, n), bool))[min(3, n - 1)] == 0] = ninf
    x[4, -1] = pinf
    x[5] = 0x0000
    x[5, ::3] = 0x8000
    x[6] = rng.integers(0, 0x80, n).astype(np.uint16) | np.uint16(0x8000) * (np.arange(n) % 2)
    x[7, : 2 * (n // 2)] = np.array([0x7F7F, 0xFF7F] * (n // 2), np.uint16)  # +-BF16 max
    # order-sensitive sums: one dominant element and many small ones
    x[8] = f32_to_bf16_bits(rng.uniform(-16.0, -6.0, n).astype(np.float32))
    x[8, 0] = 0x0000
    x[9] = bits(0.01)
    x[9, 0] = bits(1000.0)
    # RMSNorm: squares past FP32's range, and squares that are FP32 subnormals or underflow
    x[10] = f32_to_bf16_bits((rng.standard_normal(n) * 1e20).astype(np.float32))
    x[11] = f32_to_bf16_bits((rng.standard_normal(n) * 2.0**-70).astype(np.float32))
    x[12] = f32_to_bf16_bits((rng.standard_normal(n) * 2.0**-100).astype(np.float32))
    x[13] = f32_to_bf16_bits((rng.standard_normal(n) * 1e18).astype(np.float32))
    return x


def _sequential_differs_from_pairwise(e: np.ndarray) -> bool:
    seq = np.float32(0)
    for v in e.astype(np.float32):
        seq = np.float32(seq + v)
    return seq != np.sum(e.astype(np.float32))


SIZES = ((1, 1.0), (7, 3.0), (64, 10.0), (1500, 4.0))


@pytest.mark.parametrize("mode", ["direct", "reduced"])
def test_softmax_equals_hw_sim(tables, mode):
    tabs = {"exp": tables["exp_below0"], "reciprocal": tables[f"recip_{mode}"]}
    model = export_composite("softmax", tabs, mode)
    assert model.graph.input[0].type.tensor_type.elem_type == BF16
    rng = np.random.default_rng(11)
    for level in LEVELS:
        sess = session(model, level)
        for n, scale in SIZES:
            x = _rows(rng, 24, n, scale)
            got = run(sess, {"x": x}, x.shape)
            want = hw_sim.softmax_bf16(x, tabs["exp"], tabs["reciprocal"], mode)
            assert np.array_equal(got, want), (level, n, int(np.sum(got != want)))
    # these rows really need the sequential sum: pairwise order gives another s on some
    xv = bf16_bits_to_f64(x[8:10]).astype(np.float32)
    d = f32_to_bf16_bits(xv - xv.max(-1, keepdims=True))  # RNE_bf16(x_i - m)
    e = bf16_bits_to_f64(hw_sim.run_elementwise(tabs["exp"], d))
    assert any(_sequential_differs_from_pairwise(row) for row in e)


@pytest.mark.parametrize("mode", ["direct", "reduced"])
def test_rmsnorm_equals_hw_sim(tables, mode):
    table = tables[f"rsqrt_{mode}"]
    model = export_composite("rmsnorm", {"rsqrt": table}, mode)
    rng = np.random.default_rng(12)
    for level in LEVELS:
        sess = session(model, level)
        for n, scale in SIZES:
            x = _rows(rng, 24, n, scale)
            w = f32_to_bf16_bits(rng.standard_normal(n).astype(np.float32))
            for eps in (1e-5, 1e-6, 0.0, 2.0**-149):
                feeds = {"x": x, "weight": w, "eps": np.array(eps, np.float32)}
                got = run(sess, feeds, x.shape)
                want = hw_sim.rmsnorm_bf16(x, w, eps, table, mode)
                assert np.array_equal(got, want), (level, n, eps, int(np.sum(got != want)))
    sq = bf16_bits_to_f64(x[8:10]).astype(np.float32) ** 2
    assert any(_sequential_differs_from_pairwise(row) for row in sq)
    with np.errstate(over="ignore"):  # the corner rows are there
        sq = bf16_bits_to_f64(x[10:12]).astype(np.float32) ** 2
    assert np.isinf(sq[0]).any() and ((sq[1] != 0) & (np.abs(sq[1]) < 2.0**-126)).any()


@pytest.mark.parametrize("mode", ["direct", "reduced"])
def test_fp32_input_rmsnorm_equals_hw_sim(tables, mode):
    """FP32 rows enter a bf16 RMSNorm by RNE_bf16 alone ('plain': numerics §13 has no
    prescale), as hw_sim.rmsnorm_bf16_f32 rounds them."""
    table = tables[f"rsqrt_{mode}"]
    model = export_composite("rmsnorm", {"rsqrt": table}, mode, "plain")
    assert "RMSNormPrescale" not in {f.name for f in model.functions}
    rng = np.random.default_rng(15)
    x = (rng.standard_normal((32, 48)) * np.geomspace(1e-30, 1e30, 32)[:, None]).astype(np.float32)
    x[0, 3], x[1, 5], x[2, 7] = np.nan, np.inf, -np.inf
    w = f32_to_bf16_bits(rng.standard_normal(48).astype(np.float32))
    for level in LEVELS:
        got = run(session(model, level), {"x": x, "weight": w, "eps": np.float32(1e-6)}, x.shape)
        want = hw_sim.rmsnorm_bf16_f32(x, w, 1e-6, table, mode)
        assert want.dtype == np.float32
        assert np.array_equal(got, f32_to_bf16_bits(want)), level


# ----------------------------------------------------------------------------- bad input
def test_mixed_formats_are_refused(tables):
    fp16_recip = nli.table_from_cutpoints(
        "reciprocal", bits16(np.linspace(1, 2, 11)), [32] * 10, domain=["3c00", "4000"]
    )
    with pytest.raises(
        ExportError, match=r"the exp table is bf16 but the reciprocal table is fp16"
    ):
        export_composite("softmax", {"exp": tables["exp_below0"], "reciprocal": fp16_recip})
    with pytest.raises(ExportError, match=r"bf16 tables have none \(numerics §13\), use 'plain'"):
        export_composite("rmsnorm", {"rsqrt": tables["rsqrt_reduced"]}, "reduced", "scaled")
