"""engine.torch_unit / engine.torch_ops: the pure-torch datapath equals hw_sim bit for bit (CPU).

Every shipped table (and the hw_sim stand-ins) in fp32 and fp16 precision over all 65,536
encodings; float32 inputs between FP16 values; Softmax and RMSNorm on seeded and adversarial
rows (hw_sim's own row generators) in both reciprocal modes; the hot-path rounding both ways
(torch's conversion after the per-device probe, and the integer construction); a substituted
tiny model gives identical logits on the torch and numba backends."""

import dataclasses
import functools

import numpy as np
from prescale_rows import adversarial_rows, seeded_rows
from prescale_rows import weights as prescale_weights
import pytest
from sim_tables import op_tables, standin_tables
from test_ops import _rows as fp16_rows
from test_ops import _special_rows as fp16_special_rows
from test_substitute import special_rows
import torch
import torch_unit_helpers as helpers
from torch_unit_helpers import ALL16, ROW_LENGTHS, assert_one_line_value_errors, u32

import engine
from engine import torch_unit
from engine.model import Llama, LlamaConfig, init_weights
from engine.op_sets import UnitOps
from engine.substitution import make_ops
from engine.torch_ops import inverse, rmsnorm_f32, softmax_f32
from engine.torch_unit import decode16, output_bits, rne16, run_elementwise_f32
import hw_sim
import nli
from nli.defaults import default_table, default_table_path
from nli.table import TableError
from nli.unit_checks import SimInputError

SEED = 20261204
MODES = ("direct", "reduced")
SHIPPED = [(f, m) for f, m in nli.default_table_names() if default_table_path(f, m).exists()]
STANDINS = standin_tables()
EPS_EDGES = (0.0, 1e-40, -1e-40, 3.0)  # zero, subnormal of both signs, huge (with 1e-5)


@pytest.fixture(params=["fast", "integer"])
def rounding(request, monkeypatch):
    """Run a test with torch's verified FP16 conversion and again with the integer RNE16."""
    if request.param == "fast":
        assert torch_unit.fast_rounding("cpu")  # the CPU's conversion passes the probe
    else:
        monkeypatch.setitem(torch_unit._FAST_OK, "cpu", False)
    return request.param


def _in_precision(table, precision):
    try:
        return table.with_precision(precision)
    except TableError as e:  # numerics §2: an fp16 unit cannot hold this table's scales
        pytest.skip(f"not a valid {precision} table: {e}")


# ----------------------------------------------------------------------------- bit helpers
def test_rne16_and_decode16_match_numpy():
    """rne16 on the probe set (every rounding boundary) and random patterns == numpy's float32 ->
    float16 (NaNs: the canonical NaN); decode16 of all encodings == hw_sim's decode table."""
    x = torch_unit._probe("cpu")
    rnd = np.random.default_rng(SEED).integers(0, 1 << 32, 1 << 20, dtype=np.uint64)
    x = torch.cat([x, torch.from_numpy(rnd.astype(np.uint32).view(np.float32))])
    with np.errstate(over="ignore", invalid="ignore"):
        want = x.numpy().astype(np.float16).view(np.uint16).astype(np.int32)
    want[np.isnan(x.numpy())] = 0x7E00
    assert np.array_equal(rne16(x).numpy(), want)
    got = decode16(torch.from_numpy(ALL16.astype(np.int32)))
    assert np.array_equal(u32(got), hw_sim.unit._decode32().view(np.uint32))


def test_fast_rounding_is_checked_per_device(monkeypatch):
    monkeypatch.delitem(torch_unit._FAST_OK, "cpu", raising=False)
    assert torch_unit.fast_rounding("cpu") is True
    assert torch_unit._FAST_OK["cpu"] is True


# ----------------------------------------------------------------------------- elementwise
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("fn_mode", SHIPPED, ids="-".join)
def test_shipped_tables_all_encodings(fn_mode, precision):
    t = _in_precision(default_table(*fn_mode), precision)
    assert np.array_equal(output_bits(t, "cpu").numpy().astype(np.uint16), hw_sim.output_lut(t))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", sorted(STANDINS))
def test_standin_tables_all_encodings(name, precision):
    t = _in_precision(STANDINS[name], precision)
    assert np.array_equal(output_bits(t, "cpu").numpy().astype(np.uint16), hw_sim.output_lut(t))


def _f32_inputs() -> np.ndarray:
    """Every FP16 value as float32, then float32 values between them, ties, huge, tiny, NaN."""
    rng = np.random.default_rng(SEED)
    scale = rng.choice([1e-7, 1e-5, 1.0, 100.0, 3e4, 1e6], 60_000)
    rnd = (rng.standard_normal(60_000) * scale).astype(np.float32)
    ties = (ALL16[:0x7C00].view(np.float16).astype(np.float32).view(np.uint32) + 0x1000).view(
        np.float32
    )  # halfway between neighbouring FP16 values
    special = np.array([np.nan, -np.nan, np.inf, -np.inf, 65519.99, 65520.0, -0.0, 1e-40], "f4")
    return np.concatenate([ALL16.view(np.float16).astype(np.float32), rnd, ties, special])


@pytest.mark.parametrize("function", ["silu", "gelu_tanh", "exp"])
def test_run_elementwise_f32_equals_hw_sim(function, rounding):
    t = default_table(function, "direct")
    x = _f32_inputs()
    want = hw_sim.run_elementwise_f32(t, x)
    got = run_elementwise_f32(t, torch.from_numpy(x).reshape(2, -1)).reshape(-1)
    assert np.array_equal(u32(got), u32(want))


def test_fp16_table_with_a_wide_interpolation_weight_is_refused():
    """t * dy must be exact in FP32. A valid table keeps t within 13 significant bits (its mul is
    RNE32(bins / width), so u stays near bins); one whose mul bypassed that validation, making
    u run far past bins - 1, is refused rather than answered inexactly."""
    bad = STANDINS["silu_wide"].with_precision("fp16")
    mul = bad.mul.copy()
    mul[1] *= 2048  # interval 1 has 32 bins: t = u - 31 gets up to 16 significant bits
    object.__setattr__(bad, "mul", mul)  # skips Table's validation on purpose
    with pytest.raises(SimInputError, match="13 significant bits"):
        output_bits(bad, "cpu")


# ----------------------------------------------------------------------------- composite ops
@functools.lru_cache(maxsize=None)
def _tables(source, mode, precision):
    """{exp, reciprocal, rsqrt} tables in ``precision`` where valid (one object per key, so each
    table's LUTs are built once)."""
    tb = op_tables(source)
    out = {}
    for f in ("exp", "reciprocal", "rsqrt"):
        try:
            out[f] = tb[(f, mode)].with_precision(precision)
        except TableError:  # this table has no fp16 form: keep it fp32
            out[f] = tb[(f, mode)]
    return out


def _row_sets(n: int) -> np.ndarray:
    """float32 rows: test_substitute's adversarial rows, test_ops' seeded FP16 rows (scales,
    -inf masks, subnormals) and special rows, and one huge/tiny row."""
    rng = np.random.default_rng(SEED + n)
    bits = np.concatenate([fp16_rows(rng, n, 2), fp16_special_rows(n)])
    extra = np.array([np.where(np.arange(n) % 2, 3e38, 1e-40)], dtype=np.float32)
    return np.concatenate(
        [special_rows(n, rng), bits.view(np.float16).astype(np.float32), extra]
    ).astype(np.float32)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("mode", MODES)
def test_reciprocal_and_rsqrt_equal_hw_sim(mode, precision, rounding):
    """Section 5 on float32 values: every FP16 value, random FP32 bit patterns (subnormals,
    negatives, huge), +-0, +-inf, NaN; hw_sim.reciprocal / rsqrt give the reference."""
    rng = np.random.default_rng(SEED)
    pats = rng.integers(0, 1 << 32, 200_000, dtype=np.uint64).astype(np.uint32)
    v = np.concatenate(
        [
            ALL16.view(np.float16).astype(np.float32),
            pats.view(np.float32),
            np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 3e38], np.float32),
        ]
    )
    tb = _tables("shipped", mode, precision)
    for fn, rsqrt in (("reciprocal", False), ("rsqrt", True)):
        want = (hw_sim.rsqrt if rsqrt else hw_sim.reciprocal)(v, tb[fn], mode)
        got = inverse(torch.from_numpy(v), tb[fn], mode, rsqrt)
        assert np.array_equal(u32(got), u32(want.astype(np.float32))), fn


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("source", ["standin", "shipped"])
@pytest.mark.parametrize("mode", MODES)
def test_softmax_equals_hw_sim(mode, source, precision, rounding):
    tb = _tables(source, mode, precision)
    for n in ROW_LENGTHS:
        x = _row_sets(n)
        want = hw_sim.softmax_f32(x, tb["exp"], tb["reciprocal"], mode)
        got = softmax_f32(torch.from_numpy(x), tb["exp"], tb["reciprocal"], mode)
        assert np.array_equal(u32(got), u32(want)), n


@pytest.mark.parametrize("mode", MODES)
def test_softmax_exp_table_with_nonzero_output_at_minus_inf(mode, rounding):
    """An exp table whose output at -inf is not +0: -inf inputs still give e = +0 (the
    extended-LUT path), finite inputs far below the maximum give the table's value."""
    tb = _tables("standin", mode, "fp32")
    exp = tb["exp"].with_lut(tb["exp"].lut, below=0x3C00)
    x = _row_sets(64)
    x[0, :3] = [-6e4, 6e4, -np.inf]  # x - m rounds to -inf, and a true -inf
    want = hw_sim.softmax_f32(x, exp, tb["reciprocal"], mode)
    got = softmax_f32(torch.from_numpy(x), exp, tb["reciprocal"], mode)
    assert np.array_equal(u32(got), u32(want))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("source", ["standin", "shipped"])
@pytest.mark.parametrize("mode", MODES)
def test_rmsnorm_equals_hw_sim(mode, source, precision, rounding):
    tb = _tables(source, mode, precision)
    for n in ROW_LENGTHS:
        x = _row_sets(n)
        rng = np.random.default_rng(SEED + 3 * n)
        w = np.concatenate([[0.0, -0.0, 65504.0, 1e-7], rng.uniform(-2, 2, n)])[:n]
        w = w.astype(np.float16)
        for eps in (1e-5, *(EPS_EDGES if n == 64 else ())):
            want = hw_sim.rmsnorm_f32(x, w, eps, tb["rsqrt"], mode)
            got = rmsnorm_f32(
                torch.from_numpy(x), torch.from_numpy(w), eps, tb["rsqrt"], mode
            )  # weight float16
            assert np.array_equal(u32(got), u32(want)), (n, eps)
        got32 = rmsnorm_f32(  # weight float32 (rounded RNE16 like x)
            torch.from_numpy(x), torch.from_numpy(w.astype(np.float32)), 1e-5, tb["rsqrt"], mode
        )
        assert np.array_equal(u32(got32), u32(hw_sim.rmsnorm_f32(x, w, 1e-5, tb["rsqrt"], mode)))


@pytest.mark.parametrize("rmsnorm_input", ["scaled", "plain"])
@pytest.mark.parametrize("source", ["standin", "shipped"])
@pytest.mark.parametrize("mode", MODES)
def test_rmsnorm_prescale_rows_equal_hw_sim(mode, source, rmsnorm_input, rounding):
    """numerics §4.1: the prescale's adversarial rows (around 65520, up to FP32's largest,
    huge beside tiny, inf/NaN) and seeded rows at magnitudes up to 1e7, both input handlings,
    several eps (the prescaled eps 2^(-2s) included)."""
    tb = _tables(source, mode, "fp32")
    rng = np.random.default_rng(SEED)
    for x in (adversarial_rows(rng), seeded_rows(rng, 40, 96)):
        w = prescale_weights(rng, x.shape[1])
        for eps in (1e-6, 0.0, 1e-40, 3e30):
            want = hw_sim.rmsnorm_f32(x, w, eps, tb["rsqrt"], mode, rmsnorm_input)
            got = rmsnorm_f32(
                torch.from_numpy(x), torch.from_numpy(w), eps, tb["rsqrt"], mode, rmsnorm_input
            )
            assert np.array_equal(u32(got), u32(want)), eps


def test_shapes_and_non_contiguous_inputs():
    tb = _tables("shipped", "reduced", "fp32")
    x = np.random.default_rng(SEED).standard_normal((3, 5, 40)).astype(np.float32)
    xt = torch.from_numpy(x).transpose(0, 1)  # (5, 3, 40), not contiguous
    want = hw_sim.softmax_f32(
        np.ascontiguousarray(x.transpose(1, 0, 2)), tb["exp"], tb["reciprocal"], "reduced"
    )
    got = softmax_f32(xt, tb["exp"], tb["reciprocal"], "reduced")
    assert got.shape == (5, 3, 40) and np.array_equal(u32(got), u32(want))
    y = run_elementwise_f32(default_table("silu", "direct"), xt)
    assert y.shape == xt.shape and y.device == xt.device


def test_bad_inputs_are_one_line_value_errors():
    tb = _tables("shipped", "direct", "fp32")
    x = torch.zeros(2, 8)
    w = torch.ones(8)
    cases = [
        (lambda: softmax_f32(x.double(), tb["exp"], tb["reciprocal"]), "float32"),
        (lambda: softmax_f32(x.numpy(), tb["exp"], tb["reciprocal"]), "torch tensor"),
        (lambda: softmax_f32(torch.zeros(()), tb["exp"], tb["reciprocal"]), "scalar"),
        (lambda: softmax_f32(torch.zeros(2, 0), tb["exp"], tb["reciprocal"]), "empty"),
        (lambda: softmax_f32(x, tb["exp"], tb["reciprocal"], "fast"), "mode"),
        (lambda: softmax_f32(x, tb["reciprocal"], tb["reciprocal"]), "exp"),
        (lambda: rmsnorm_f32(x, torch.ones(7), 1e-5, tb["rsqrt"]), "shape"),
        (lambda: rmsnorm_f32(x, w.to("meta"), 1e-5, tb["rsqrt"]), "meta"),
        (lambda: rmsnorm_f32(x, w.int(), 1e-5, tb["rsqrt"]), "float16 or float32"),
        (lambda: rmsnorm_f32(x, w, float("inf"), tb["rsqrt"]), "eps"),
        (lambda: rmsnorm_f32(x, w, 1e-5, tb["rsqrt"], "reduced"), "reduced"),
        (lambda: rmsnorm_f32(x, w, 1e-5, tb["rsqrt"], "direct", "fp16"), "rmsnorm_input"),
        (lambda: run_elementwise_f32("silu", x), "Table"),
        (lambda: run_elementwise_f32(tb["exp"], x.half()), "float32"),
    ]
    assert_one_line_value_errors(cases)


# ----------------------------------------------------------------------------- the model
@pytest.mark.parametrize("activation", ["silu", "gelu_tanh"])
@pytest.mark.parametrize("mode", ["reduced", "direct"])
def test_tiny_model_logits_equal_on_both_backends(mode, activation):
    """A tiny model (weights scaled up so activations use more of the range, causal -inf
    masks in every softmax) with act, rmsnorm and softmax substituted: torch == numba."""
    cfg = dataclasses.replace(LlamaConfig.tiny(vocab_size=257), activation=activation)
    model = init_weights(Llama(cfg), seed=engine.TINY_SEED).eval()
    ids = helpers.tiny_ids()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0)
        logits = helpers.logits_on_both_backends(
            model, ids, ops="act,rmsnorm,softmax", reciprocal_mode=mode
        )
        ref = model(ids)
    assert bool(torch.isfinite(logits["numba"]).all())
    assert torch.equal(logits["torch"], logits["numba"])
    assert not torch.equal(logits["torch"], ref)  # the substitution did something


@pytest.mark.parametrize("rmsnorm_input", ["scaled", "plain"])
def test_tiny_model_with_a_huge_residual_stream_equal_on_both_backends(rmsnorm_input):
    """Embeddings scaled so RMSNorm's inputs pass 65520 (numerics §4.1's prescale, or inf and
    NaN with 'plain'): the two backends still agree bit for bit."""
    model, _ = engine.load_tiny()
    with torch.no_grad():
        model.embed.weight.mul_(3e6)
        logits = helpers.logits_on_both_backends(
            model, helpers.tiny_ids(), rmsnorm_input=rmsnorm_input
        )
    assert torch.equal(logits["numba"].view(torch.int32), logits["torch"].view(torch.int32))


def test_backend_choice():
    ops = make_ops(backend="auto").routes["act"]
    cpu = torch.zeros(3)
    assert isinstance(ops, UnitOps) and not ops._torch(cpu)  # auto: numba on the CPU
    assert make_ops(backend="torch").routes["act"]._torch(cpu)
    assert not make_ops(backend="numba").routes["act"]._torch(torch.zeros(3, device="meta"))
    with pytest.raises(ValueError, match="backend must be"):
        make_ops(backend="cuda")


def test_cli_eval_ppl_backend(tmp_path, capsys):
    """``nli eval ppl --backend torch`` gives the numba backend's numbers exactly; a bad
    backend is a one-line usage error (exit 2)."""
    from nli.cli import main

    base = helpers.eval_ppl_argv(
        tmp_path, "The quick brown fox jumps over the lazy dog. 0123456789. " * 3
    )
    res = helpers.eval_ppl_on_both_backends(base, tmp_path)
    assert res["torch"]["backend"] == "torch" and res["numba"]["backend"] == "numba"
    capsys.readouterr()
    assert main([*base, "--backend", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--backend" in err and len(err.splitlines()) == 1


def test_torch_backend_does_not_import_hw_sim():
    """A model substituted on the torch backend runs without importing the simulator."""
    assert helpers.hw_sim_modules_after_torch_run("backend='torch'") == "[]"
