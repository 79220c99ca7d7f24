"""The pure-torch BF16 datapath (engine.torch_unit's bf16 tables, engine.torch_ops_bf16) equals
hw_sim bit for bit (CPU), numerics §13.

Every shipped bf16 table and the test tables over all 65,536 BF16 encodings (bit-pattern and
bfloat16 tensors); float32 inputs between BF16 values; the reciprocal / rsqrt in both modes;
Softmax and RMSNorm on seeded and adversarial rows (ties, -inf, NaN payloads of both signs,
+-max, values rounding to inf, subnormals, squares past FP32's range and squares falling to FP32
subnormals); mixing dtypes refused; a substituted tiny model and ``nli eval ppl --dtype bf16``
give identical numbers on the torch and numba backends."""

import functools

from bf16_tables import bf16_engine_tables, bf16_op_tables
import numpy as np
import pytest
from sim_tables import standin_tables
from test_ops_bf16 import ADVERSARIAL_RMSNORM, ADVERSARIAL_SOFTMAX
from test_ops_bf16 import _rows as bf16_rows
import torch
import torch_unit_helpers as helpers
from torch_unit_helpers import ALL16, ROW_LENGTHS, assert_one_line_value_errors, u32

import engine
from engine.op_sets import UnitOps
from engine.substitution import make_ops
from engine.torch_ops import softmax_f32
from engine.torch_ops_bf16 import (
    reciprocal_bf16,
    rmsnorm_bf16,
    rmsnorm_bf16_f32,
    rsqrt_bf16,
    run_elementwise_bf16,
    softmax_bf16,
    softmax_bf16_f32,
)
from engine.torch_unit import decode_bf16, output_bits, rne_bf16, run_elementwise_f32
import hw_sim
import nli
from nli.defaults import BF16_DEFAULT_TABLES
from nli.formats import BF16_NAN, BF16_OVERFLOW, BF16_POS_INF, MODES
from nli.grid import f32_to_bf16_bits, f64_to_bf16_bits

SEED = 20261205
NAN_INPUTS = (ALL16 & 0x7FFF) > BF16_POS_INF
EPS_VALUES = (1e-6, 0.0, 1e-40, -1e-40, 3e30)  # usual, zero, FP32 subnormal of both signs, huge
NEG_NAN = np.array([0xFFC00001, 0xFF800001, 0x7F800001], np.uint32).view(np.float32)  # payloads


def u16(y: torch.Tensor) -> np.ndarray:
    """bfloat16 / int16 / uint16 tensor -> uint16 numpy bit patterns."""
    if y.dtype == torch.bfloat16:
        y = y.view(torch.int16)
    return y.to(torch.int32).numpy().astype(np.uint16)


def _tables():
    """name -> bf16 Table: the shipped ones and tests/bf16_tables.py's (direct-mode inverses)."""
    t = {f"{f}_{m}": nli.default_table(f, m, "bf16") for f, m in BF16_DEFAULT_TABLES}
    return {**t, **{f"test_{k}": v for k, v in bf16_op_tables().items()}}


TABLES = _tables()


@functools.lru_cache(maxsize=None)
def _op_tables(source: str, mode: str) -> dict:
    """{exp, reciprocal, rsqrt} bf16 tables: 'test' (tests/bf16_tables.py, both modes) or
    'shipped' (reduced mode only: the shipped bf16 inverses are reduced)."""
    if source == "shipped":
        return {
            f: nli.default_table(f, "direct" if f == "exp" else mode, "bf16")
            for f in ("exp", "reciprocal", "rsqrt")
        }
    t = bf16_engine_tables(mode)
    return {"exp": t["exp"], "reciprocal": t["reciprocal"], "rsqrt": t["rsqrt"]}


SOURCES = [("test", "direct"), ("test", "reduced"), ("shipped", "reduced")]


# ----------------------------------------------------------------------------- bit helpers
def test_rne_bf16_and_decode_match_nli_grid():
    """rne_bf16 == nli.grid.f32_to_bf16_bits on every tie and near-tie of all 2^16 prefixes and
    random patterns (NaNs of both signs -> 0x7fc0); decode_bf16 == hw_sim's decode table."""
    hi = ALL16.astype(np.uint32) << 16
    low = np.array([0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF], np.uint32)
    rnd = np.random.default_rng(SEED).integers(0, 1 << 32, 1 << 20, dtype=np.uint64)
    pats = np.concatenate([(hi[:, None] | low[None, :]).reshape(-1), rnd.astype(np.uint32)])
    x = pats.view(np.float32)
    got = rne_bf16(torch.from_numpy(x)).numpy()
    assert np.array_equal(got.astype(np.uint16), f32_to_bf16_bits(x))
    assert got.min() >= 0 and got.max() <= 0xFFFF
    assert np.all(got[np.isnan(x)] == BF16_NAN)
    dec = decode_bf16(torch.from_numpy(ALL16.astype(np.int32)))
    assert np.array_equal(u32(dec), hw_sim.unit._decode32_bf16().view(np.uint32))


# ----------------------------------------------------------------------------- elementwise
@pytest.mark.parametrize("name", sorted(TABLES))
def test_bf16_tables_all_encodings(name):
    """Every table over all 65,536 BF16 encodings: output_bits and run_elementwise_bf16 (as
    uint16, int16 and bfloat16 tensors) == hw_sim; every NaN input gives the canonical NaN."""
    t = TABLES[name]
    want = hw_sim.run_elementwise(t, ALL16)
    assert np.array_equal(output_bits(t, "cpu").numpy().astype(np.uint16), want)
    x = torch.from_numpy(ALL16.astype(np.int32))
    for kind in (torch.uint16, torch.int16, torch.bfloat16):
        xin = x.to(torch.uint16) if kind != torch.int16 else x.to(torch.uint16).view(torch.int16)
        xin = xin.view(torch.bfloat16) if kind == torch.bfloat16 else xin
        got = run_elementwise_bf16(t, xin)
        assert got.dtype == kind and got.shape == xin.shape
        assert np.array_equal(u16(got), want), kind
    assert np.all(want[NAN_INPUTS] == BF16_NAN)


def _f32_inputs() -> np.ndarray:
    """float32 values: every BF16 value, random values over many scales, the exact midpoints
    between neighbouring BF16 values (ties) and their neighbours, NaNs of both signs with
    payloads, +-inf, the BF16 overflow threshold, FP32 subnormals."""
    rng = np.random.default_rng(SEED)
    scale = rng.choice([1e-38, 1e-20, 1e-3, 1.0, 100.0, 1e20, 1e38], 60_000)
    with np.errstate(over="ignore"):  # a few overflow to +-inf: inputs too
        rnd = (rng.standard_normal(60_000) * scale).astype(np.float32)
    finite = ALL16[(ALL16 & 0x7F80) != 0x7F80].astype(np.uint32) << 16
    ties = np.concatenate([finite | 0x8000, finite | 0x7FFF, finite | 0x8001]).view(np.float32)
    special = np.array(
        [np.nan, np.inf, -np.inf, BF16_OVERFLOW, -BF16_OVERFLOW, 3.4e38, 1e-40, -1e-45, -0.0],
        np.float32,
    )
    return np.concatenate(
        [(ALL16.astype(np.uint32) << 16).view(np.float32), rnd, ties, special, NEG_NAN]
    )


@pytest.mark.parametrize("name", ["silu_direct", "exp_direct", "gelu_tanh_direct", "test_silu"])
def test_run_elementwise_f32_equals_hw_sim(name):
    t = TABLES[name]
    x = _f32_inputs()
    want = hw_sim.run_elementwise_f32(t, x)
    got = run_elementwise_f32(t, torch.from_numpy(x).reshape(2, -1))
    assert np.array_equal(u32(got).reshape(-1), u32(want))


# ----------------------------------------------------------------------------- section 5
@pytest.mark.parametrize("source, mode", SOURCES)
def test_reciprocal_and_rsqrt_equal_hw_sim(source, mode):
    """Every BF16 value as float32, random FP32 patterns (subnormals, negatives, huge), BF16 ties
    of the mantissa, +-0, +-inf, NaNs: torch == hw_sim.reciprocal_bf16 / rsqrt_bf16."""
    rng = np.random.default_rng(SEED + 1)
    pats = rng.integers(0, 1 << 32, 300_000, dtype=np.uint64).astype(np.uint32)
    sub = rng.integers(1, 1 << 23, 20_000, dtype=np.uint64).astype(np.uint32)
    v = np.concatenate(
        [
            (ALL16.astype(np.uint32) << 16).view(np.float32),
            pats.view(np.float32),
            sub.view(np.float32),
            ((ALL16.astype(np.uint32) << 16) | 0x8000).view(np.float32),
            np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 3.4e38], np.float32),
            NEG_NAN,
        ]
    )
    tb = _op_tables(source, mode)
    for fn, ours, ref in (
        ("reciprocal", reciprocal_bf16, hw_sim.reciprocal_bf16),
        ("rsqrt", rsqrt_bf16, hw_sim.rsqrt_bf16),
    ):
        want = ref(v, tb[fn], mode)
        got = ours(torch.from_numpy(v), tb[fn], mode)
        assert got.dtype == torch.bfloat16 and np.array_equal(u16(got), want), fn


# ----------------------------------------------------------------------------- rows
def _f32_rows(n: int) -> np.ndarray:
    """float32 rows of length n: several scales, -inf masks, NaNs (both signs, payloads), an
    all -inf row, ties of the maximum, +-max and values rounding to inf, subnormals, zeros of
    both signs, squares past FP32's range and squares that fall to FP32 subnormals, BF16 ties,
    random FP32 patterns."""
    rng = np.random.default_rng(SEED + n)
    rows = [rng.standard_normal(n) * s for s in (1e-30, 1e-3, 1.0, 4.0, 300.0, 3e4, 1e25)]
    r = rng.standard_normal(n) * 3
    r[rng.random(n) < 0.4] = -np.inf
    rows.append(r)
    rows.append(np.where(np.arange(n) == n - 1, 1.0, -np.inf))  # a -inf run before the max
    rows += [np.full(n, -np.inf), np.full(n, 2.5), np.full(n, -7.0)]
    rows.append(np.resize([3.38e38, -3.38e38, 0.0], n))  # +-max: x - m overflows
    rows.append(np.resize([3.4e38, 1.0, -2.0], n))  # rounds to +inf in BF16
    rows.append(np.resize([1e-40, -1e-42, 0.0, -0.0, 9e-41], n))  # FP32 (BF16) subnormals
    rows.append(np.resize([0.0, -0.0], n))
    rows.append(rng.uniform(2e19, 1e30, n) * rng.choice([-1, 1], n))  # squares overflow FP32
    rows.append(rng.uniform(1e-23, 1e-19, n) * rng.choice([-1, 1], n))  # squares subnormal
    rows.append(np.resize([2.0**-64, 2.0**-75, 2.0**-80], n))  # 2^-128, 2^-150, 2^-160
    rows.append(np.resize([1.5e19, 1.0], n))  # square just below FP32's overflow
    out = np.asarray(rows, dtype=np.float32)
    nans = np.repeat(rng.standard_normal((1, n)).astype(np.float32), NEG_NAN.size, 0)
    nans[:, n // 2] = NEG_NAN  # set as float32 bits: payloads and signs kept
    out = np.concatenate([out, nans])
    ties = (f64_to_bf16_bits(rng.normal(0, 5, n)).astype(np.uint32) << 16) | 0x8000
    pats = rng.integers(0, 1 << 32, (4, n), dtype=np.uint64).astype(np.uint32)
    return np.concatenate([out, ties.view(np.float32)[None], pats.view(np.float32)])


def _weights(n: int, rng) -> np.ndarray:
    """uint16 BF16 weights: ordinary values and specials (zeros, the largest, a subnormal)."""
    w = f64_to_bf16_bits(rng.uniform(-2, 2, n))
    w[: min(n, 4)] = np.array([0x0000, 0x8000, 0x7F7F, 0x0001], np.uint16)[: min(n, 4)]
    return w


def _bits_rows(rows):
    """(uint16 row, ...) of any lengths -> list of uint16 arrays (per-row calls)."""
    return [np.asarray(r, np.uint16) for r in rows]


@pytest.mark.parametrize("source, mode", SOURCES)
def test_softmax_equals_hw_sim(source, mode):
    tb = _op_tables(source, mode)
    e, r = tb["exp"], tb["reciprocal"]
    for n in ROW_LENGTHS:
        x = _f32_rows(n)
        want = hw_sim.softmax_bf16_f32(x, e, r, mode)
        got = softmax_bf16_f32(torch.from_numpy(x), e, r, mode)
        assert np.array_equal(u32(got), u32(want)), n
        bits = f32_to_bf16_bits(x)
        for kind in (torch.uint16, torch.bfloat16):
            xin = torch.from_numpy(bits.astype(np.int32)).to(torch.uint16)
            xin = xin.view(torch.bfloat16) if kind == torch.bfloat16 else xin
            got = softmax_bf16(xin, e, r, mode)
            assert got.dtype == kind
            assert np.array_equal(u16(got), hw_sim.softmax_bf16(bits, e, r, mode)), n
    rows = _bits_rows(ADVERSARIAL_SOFTMAX) + bf16_rows(np.random.default_rng(SEED), 120, 40)
    for b in rows:
        got = softmax_bf16(torch.from_numpy(b.astype(np.int32)).to(torch.uint16), e, r, mode)
        assert np.array_equal(u16(got), hw_sim.softmax_bf16(b, e, r, mode)), b


@pytest.mark.parametrize("mode", MODES)
def test_softmax_exp_table_with_nonzero_output_at_minus_inf(mode):
    """An exp table whose output at -inf is not +0: -inf inputs still give e = +0 (the
    extended-LUT path), finite inputs far below the maximum (x - m overflowing to -inf) give
    the table's value."""
    tb = _op_tables("test", mode)
    exp = tb["exp"].with_lut(tb["exp"].lut, below=0x3F80)
    x = _f32_rows(64)
    x[0, :3] = [-3e38, 3e38, -np.inf]
    want = hw_sim.softmax_bf16_f32(x, exp, tb["reciprocal"], mode)
    got = softmax_bf16_f32(torch.from_numpy(x), exp, tb["reciprocal"], mode)
    assert np.array_equal(u32(got), u32(want))


@pytest.mark.parametrize("source, mode", SOURCES)
def test_rmsnorm_equals_hw_sim(source, mode):
    st = _op_tables(source, mode)["rsqrt"]
    for n in ROW_LENGTHS:
        rng = np.random.default_rng(SEED + 3 * n)
        x = _f32_rows(n)
        w = _weights(n, rng)
        wt = torch.from_numpy(w.astype(np.int32)).to(torch.uint16)
        for eps in EPS_VALUES if n == 64 else EPS_VALUES[:1]:
            want = hw_sim.rmsnorm_bf16_f32(x, w, eps, st, mode)
            for weight in (wt, wt.view(torch.bfloat16), decode_bf16(wt)):  # bits, bf16, f32
                got = rmsnorm_bf16_f32(torch.from_numpy(x), weight, eps, st, mode)
                assert np.array_equal(u32(got), u32(want)), (n, eps, weight.dtype)
        bits = f32_to_bf16_bits(x)
        got = rmsnorm_bf16(
            torch.from_numpy(bits.astype(np.int32)).to(torch.uint16), wt, 1e-6, st, mode
        )
        assert np.array_equal(u16(got), hw_sim.rmsnorm_bf16(bits, w, 1e-6, st, mode)), n
    rng = np.random.default_rng(SEED)
    rows = _bits_rows(ADVERSARIAL_RMSNORM) + bf16_rows(rng, 120, 40)
    for b in rows:
        w = _weights(b.size, rng)
        for eps in (1e-6, 0.0):
            got = rmsnorm_bf16(
                torch.from_numpy(b.astype(np.int32)).to(torch.uint16).view(torch.bfloat16),
                torch.from_numpy(w.astype(np.int32)).to(torch.uint16).view(torch.int16),
                eps,
                st,
                mode,
            )
            assert np.array_equal(u16(got), hw_sim.rmsnorm_bf16(b, w, eps, st, mode)), b


def test_rmsnorm_square_overflow_and_underflow_are_reached():
    """The adversarial squares are not vacuous on the torch path either: a square past FP32's
    range makes every output 0 (r = +0), squares below FP32's subnormals with eps = 0 make every
    output inf (r = +inf)."""
    st = _op_tables("shipped", "reduced")["rsqrt"]
    w = torch.full((2,), 0x3F80, dtype=torch.int32).to(torch.uint16)
    big = rmsnorm_bf16(torch.tensor([0x5F80, 0x3F80]).to(torch.uint16), w, 1e-6, st, "reduced")
    assert u16(big).tolist() == [0x0000, 0x0000]
    tiny = rmsnorm_bf16(torch.tensor([0x0001, 0x0001]).to(torch.uint16), w, 0.0, st, "reduced")
    assert u16(tiny).tolist() == [0x7F80, 0x7F80]


def test_mixing_dtypes_and_bad_inputs_are_refused():
    """One dtype per op, as hw_sim: fp16 tables on the bf16 ops (and bf16 tables on the fp16
    ones) are one-line errors naming both; so are inputs of a wrong kind."""
    tb = _op_tables("shipped", "reduced")
    fp16 = standin_tables()
    x = torch.zeros(2, 8)
    bits = torch.zeros(2, 8, dtype=torch.int16)
    w = torch.ones(8)
    cases = [
        (
            lambda: softmax_bf16_f32(x, tb["exp"], fp16["recip_reduced"], "reduced"),
            "exp table is bf16 but the reciprocal table is fp16",
        ),
        (
            lambda: softmax_bf16(bits, fp16["exp_below0"], fp16["recip_reduced"], "reduced"),
            "bf16 rows need bf16 tables",
        ),
        (
            lambda: rmsnorm_bf16_f32(x, w, 1e-6, fp16["rsqrt_single"], "reduced"),
            "bf16 rows need bf16 tables",
        ),
        (lambda: rsqrt_bf16(x, fp16["rsqrt_single"], "reduced"), "bf16 rows need bf16 tables"),
        (lambda: run_elementwise_bf16(fp16["exp_below0"], bits), "bf16 rows need bf16 tables"),
        (
            lambda: softmax_f32(x, tb["exp"], tb["reciprocal"], "reduced"),
            "fp16 rows need fp16 tables",
        ),
        (lambda: softmax_bf16(x.half(), tb["exp"], tb["reciprocal"], "reduced"), "bfloat16"),
        (lambda: softmax_bf16_f32(x.double(), tb["exp"], tb["reciprocal"], "reduced"), "float32"),
        (lambda: softmax_bf16_f32(x, tb["exp"], tb["reciprocal"], "fast"), "mode"),
        (lambda: rmsnorm_bf16_f32(x, torch.ones(7), 1e-6, tb["rsqrt"], "reduced"), "shape"),
        (lambda: rmsnorm_bf16_f32(x, w.half(), 1e-6, tb["rsqrt"], "reduced"), "weight"),
        (lambda: rmsnorm_bf16_f32(x, w, float("nan"), tb["rsqrt"], "reduced"), "eps"),
        (lambda: rmsnorm_bf16_f32(x, w, 1e-6, tb["rsqrt"], "direct"), "rsqrt"),
        (lambda: reciprocal_bf16(x.half(), tb["reciprocal"], "reduced"), "float32"),
    ]
    assert_one_line_value_errors(cases)


# ----------------------------------------------------------------------------- the model
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_tiny_model_logits_equal_on_both_backends(mode, scale):
    """engine.load_model('tiny') with act, rmsnorm and softmax on a bf16 unit (shipped tables in
    reduced mode, the test tables in direct mode): torch == numba bit for bit."""
    model, _ = engine.load_model("tiny")
    ids = helpers.tiny_ids()
    tables = None if mode == "reduced" else bf16_engine_tables("direct")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
        logits = helpers.logits_on_both_backends(
            model, ids, tables=tables, reciprocal_mode=mode, dtype="bf16"
        )
        ref = model(ids)
    assert bool(torch.isfinite(logits["numba"]).all())
    assert torch.equal(logits["torch"].view(torch.int32), logits["numba"].view(torch.int32))
    assert not torch.equal(logits["torch"], ref)  # the substitution did something


def test_tiny_model_with_a_huge_residual_stream_equal_on_both_backends():
    """Embeddings scaled so RMSNorm's squares overflow FP32 (BF16 keeps the values finite,
    there is no prescale): the two backends still agree bit for bit."""
    model, _ = engine.load_model("tiny")
    with torch.no_grad():
        model.embed.weight.mul_(1e21)
        logits = helpers.logits_on_both_backends(model, helpers.tiny_ids(), dtype="bf16")
    assert torch.equal(logits["numba"].view(torch.int32), logits["torch"].view(torch.int32))


def test_backend_choice_bf16():
    """bf16 runs on the torch backend when asked (and auto off the CPU); auto keeps numba on
    the CPU."""
    cpu, meta = torch.zeros(3), torch.zeros(3, device="meta")
    auto = make_ops(backend="auto", dtype="bf16").routes["act"]
    assert isinstance(auto, UnitOps) and auto.dtype == "bf16"
    assert not auto._torch(cpu) and auto._torch(meta)
    assert make_ops(backend="torch", dtype="bf16").routes["act"]._torch(cpu)
    assert not make_ops(backend="numba", dtype="bf16").routes["act"]._torch(meta)


def test_cli_eval_ppl_bf16_backend_torch(tmp_path):
    """``nli eval ppl --dtype bf16 --backend torch`` runs (exit 0) and gives the numba backend's
    numbers exactly."""
    base = helpers.eval_ppl_argv(tmp_path, "Bit for bit, BF16 from end to end. 0123456789. " * 4)
    res = helpers.eval_ppl_on_both_backends(base, tmp_path, "--dtype", "bf16")
    assert res["torch"]["backend"] == "torch" and res["torch"]["dtype"] == "bf16"


def test_bf16_torch_backend_does_not_import_hw_sim():
    """A model substituted with dtype bf16 on the torch backend runs without the simulator."""
    assert helpers.hw_sim_modules_after_torch_run("backend='torch', dtype='bf16'") == "[]"
