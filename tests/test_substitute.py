"""engine.substitution: the nli/baseline ops equal hw_sim bit for bit on the same FP16 inputs
(the fused float32 kernels and the model's actual op calls), -inf masks give exact zeros,
the fp16 mode is correctly rounded, and substitution copies without touching the original."""

from engine_tables import engine_tables
from naive import naive_fp16_rmsnorm_bits, naive_fp16_silu_bits, naive_fp16_softmax_bits
import numpy as np
import pytest
import torch

import engine
from engine.model import REF_OPS, OpSet
from engine.op_sets import Fp16Ops, UnitOps
from engine.substitution import make_ops, substitute
import hw_sim
from hw_sim import rmsnorm_f32, run_elementwise_f32, softmax_f32
from nli.prescale import prescale_exponents

MODES = ("reduced", "direct")
ALL16 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
RNG_SEED = 20261123


def bits_of(y) -> np.ndarray:
    """float32 array/tensor holding FP16 values, or float16 -> uint16 bits (exact)."""
    y = y.numpy() if isinstance(y, torch.Tensor) else y
    return np.ascontiguousarray(y).astype(np.float16).view(np.uint16)


def special_rows(n: int, rng) -> np.ndarray:
    """float32[R, n] rows: normal, causal -inf tails, NaN, all -inf, overflow to +-inf,
    FP16 subnormals, +-0, values that need rounding to FP16, huge magnitudes."""
    rows = [rng.standard_normal(n) * s for s in (0.01, 1, 4, 30, 300)]
    r = rng.standard_normal(n) * 3
    r[n // 2 :] = -np.inf
    rows.append(r)
    r = rng.standard_normal(n)
    r[min(1, n - 1)] = np.nan
    rows.append(r)
    rows.append(np.full(n, -np.inf))
    rows.append(np.full(n, -1e6))  # finite, but every FP16 input is -inf
    r = rng.standard_normal(n)
    r[min(2, n - 1)], r[min(3, n - 1)] = 7e4, -7e4  # RNE16 overflows
    rows.append(r)
    rows.append(rng.integers(-1023, 1024, n) * 2.0**-24)  # subnormals and zeros
    r = np.zeros(n)
    r[::2] = -0.0
    rows.append(r)
    rows.append(rng.uniform(2e4, 6e4, n) * rng.choice([-1, 1], n))  # mean square beyond FP16
    rows.append(rng.standard_normal(n) * 1e-4 + 1.0 / 3.0)  # needs rounding; nearly equal values
    return np.asarray(rows, dtype=np.float32)


# ---------------------------------------------------------------------- fused kernels vs hw_sim
def test_elementwise_fused_equals_hw_sim_all_inputs():
    t = engine_tables()["silu"]
    x32 = ALL16.view(np.float16).astype(np.float32)
    assert np.array_equal(
        bits_of(run_elementwise_f32(t, x32)), hw_sim.run_elementwise(t, ALL16).view(np.uint16)
    )
    rng = np.random.default_rng(RNG_SEED)  # float32 inputs between FP16 values: rounded first
    x = (rng.standard_normal(50_000) * rng.choice([1e-6, 1, 100, 1e4], 50_000)).astype(np.float32)
    assert np.array_equal(
        bits_of(run_elementwise_f32(t, x)),
        hw_sim.run_elementwise(t, x.astype(np.float16)).view(np.uint16),
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [1, 7, 64, 300])
def test_softmax_fused_equals_hw_sim(mode, n):
    tb = engine_tables(mode)
    x = special_rows(n, np.random.default_rng(RNG_SEED + n))
    with np.errstate(over="ignore"):
        want = hw_sim.softmax(x.astype(np.float16), tb["exp"], tb["reciprocal"], mode).view(
            np.uint16
        )
    got = bits_of(softmax_f32(x, tb["exp"], tb["reciprocal"], mode))
    assert np.array_equal(got, want)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [1, 7, 64, 576])
def test_rmsnorm_fused_equals_hw_sim(mode, n):
    tb = engine_tables(mode)
    rng = np.random.default_rng(RNG_SEED + 7 * n)
    x = special_rows(n, rng)
    w = np.concatenate([[0.0, -0.0, 65504.0], rng.uniform(-2, 2, n)])[:n].astype(np.float16)
    keep = prescale_exponents(x) == 0  # rows the prescale (numerics §4.1) leaves alone
    assert keep.any() and not keep.all()
    for eps in (1e-5, 1e-6, 0.0):
        with np.errstate(over="ignore"):
            want = hw_sim.rmsnorm(x.astype(np.float16), w, eps, tb["rsqrt"], mode).view(np.uint16)
        plain = rmsnorm_f32(x, w, eps, tb["rsqrt"], mode, rmsnorm_input="plain")
        assert np.array_equal(bits_of(plain), want)
        scaled = bits_of(rmsnorm_f32(x, w, eps, tb["rsqrt"], mode))
        assert np.array_equal(scaled[keep], want[keep])


# ----------------------------------------------------------------------------- the model's op calls
class Capture(OpSet):
    """Records (op, input float32, weight, eps, output) of every call, delegating to ``inner``."""

    def __init__(self, inner):
        self.inner, self.calls, self.name = inner, [], "capture"

    def act(self, x, fn):
        y = self.inner.act(x, fn)
        self.calls.append((fn, x.clone(), None, None, y))
        return y

    def rmsnorm(self, x, w, eps):
        y = self.inner.rmsnorm(x, w, eps)
        self.calls.append(("rmsnorm", x.clone(), w, eps, y))
        return y

    def softmax(self, x):
        y = self.inner.softmax(x)
        self.calls.append(("softmax", x.clone(), None, None, y))
        return y


@pytest.mark.parametrize("mode", MODES)
def test_model_ops_equal_hw_sim_bits(mode):
    """Every op call of a tiny-model forward on the nli mode == hw_sim on RNE16 of its input."""
    tb = engine_tables(mode)
    model, tok = engine.load_model("tiny")
    sub = substitute(model, variant="nli", tables=tb, reciprocal_mode=mode)
    cap = Capture(sub.ops)
    sub.set_ops(cap)
    ids = torch.tensor([tok.encode("The NLI unit, bit for bit: 0123456789.").ids])
    with torch.no_grad():
        sub(ids * 1)
    seen = {c[0] for c in cap.calls}
    assert (
        seen == {"silu", "rmsnorm", "softmax"} and len(cap.calls) == 2 * 4 + 1
    )  # per layer: 2 norms, softmax, silu; final norm
    for op, x, w, eps, y in cap.calls:
        x16 = x.numpy().astype(np.float16)
        if op == "silu":
            want = hw_sim.run_elementwise(tb["silu"], x16)
        elif op == "softmax":
            want = hw_sim.softmax(x16, tb["exp"], tb["reciprocal"], mode)
            masked = torch.isneginf(x)
            assert masked.any() and (y[masked] == 0).all() and not torch.signbit(y[masked]).any()
        else:
            want = hw_sim.rmsnorm(
                x16, w.detach().numpy().astype(np.float16), eps, tb["rsqrt"], mode
            )
        assert y.dtype == torch.float32
        assert np.array_equal(bits_of(y), want.view(np.uint16)), op


def test_unfused_path_is_the_same_function():
    tb = engine_tables()
    x = torch.from_numpy(special_rows(64, np.random.default_rng(RNG_SEED)))
    w = torch.linspace(-2, 2, 64)
    for rmsnorm_input in ("scaled", "plain"):
        fused = UnitOps(tb, fused=True, rmsnorm_input=rmsnorm_input)
        unfused = UnitOps(tb, fused=False, rmsnorm_input=rmsnorm_input)
        with np.errstate(over="ignore"):
            for f in (
                lambda o: o.act(x, "silu"),
                lambda o: o.softmax(x),
                lambda o: o.rmsnorm(x, w, 1e-5),
            ):
                assert np.array_equal(bits_of(f(fused)), bits_of(f(unfused)))


def test_softmax_mask_gives_exact_zeros():
    ops = make_ops(variant="nli", tables=engine_tables())
    x = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
    x[:, 9:] = float("-inf")
    y = ops.softmax(x)
    assert torch.equal(y[:, 9:], torch.zeros(3, 7)) and not torch.signbit(y[:, 9:]).any()
    assert (y[:, :9] > 0).all()


# ----------------------------------------------------------------------------- fp16 mode
def test_fp16_silu_correctly_rounded_all_inputs():
    got = (
        Fp16Ops()
        .act(torch.from_numpy(ALL16.view(np.float16).astype(np.float32)), "silu")
        .numpy()
        .astype(np.float16)
    )
    want = naive_fp16_silu_bits(ALL16)
    both_nan = np.isnan(got) & np.isnan(want.view(np.float16))
    assert np.array_equal(got.view(np.uint16)[~both_nan], want[~both_nan])
    assert np.array_equal(np.isnan(got), np.isnan(want.view(np.float16)))


def test_fp16_softmax_and_rmsnorm_correctly_rounded():
    rng = np.random.default_rng(RNG_SEED)
    x = (rng.standard_normal((6, 24)) * [[0.1], [1], [5], [20], [100], [1e4]]).astype(np.float16)
    x[2, 10:] = -np.inf
    w = rng.uniform(-2, 2, 24).astype(np.float16)
    ops = Fp16Ops()
    sm = bits_of(ops.softmax(torch.from_numpy(x.astype(np.float32))))
    rms = bits_of(
        ops.rmsnorm(
            torch.from_numpy(x[[0, 1, 3, 4, 5]].astype(np.float32)),
            torch.from_numpy(w.astype(np.float32)),
            1e-5,
        )
    )
    for i, row in enumerate(x):
        assert np.array_equal(sm[i], naive_fp16_softmax_bits(row))
    for i, row in enumerate(x[[0, 1, 3, 4, 5]]):
        assert np.array_equal(rms[i], naive_fp16_rmsnorm_bits(row, w, 1e-5))


# ----------------------------------------------------------------------------- substitution
def test_substitute_copies_and_routes():
    model, tok = engine.load_model("tiny")
    ids = torch.tensor([tok.encode("routing test").ids])
    with torch.no_grad():
        ref = model(ids)
        sub = substitute(model, ops=("silu",), variant="fp16")
        assert model.ops is REF_OPS and all(
            m.ops is REF_OPS for m in model.modules() if hasattr(m, "ops")
        )
        assert sub.embed.weight is model.embed.weight  # weights shared, not copied
        assert sub.layers[0].attn.ops.routes.keys() == {"act"}
        x = torch.randn(2, 5)
        assert torch.equal(sub.ops.softmax(x), REF_OPS.softmax(x))  # unnamed ops stay on ref
        assert not torch.equal(sub(ids), ref)
        assert torch.equal(
            engine.substitute(model, variant="ref")(ids), ref
        )  # the package-level API
        assert torch.equal(model(ids), ref)


def test_substitute_errors():
    model, _ = engine.load_model("tiny")
    with pytest.raises(ValueError, match="unknown op"):
        substitute(model, ops=("gelu",))
    with pytest.raises(ValueError, match="variant must be"):
        substitute(model, variant="int8")
    with pytest.raises(ValueError, match="unknown baseline"):
        substitute(model, variant="baseline:magic")
    with pytest.raises(ValueError, match="reciprocal_mode"):
        substitute(model, variant="nli", tables=engine_tables(), reciprocal_mode="exact")
    with pytest.raises(ValueError, match="only used by"):
        substitute(model, variant="fp16", tables=engine_tables())
    tb = engine_tables()
    tb["exp"] = tb["silu"]
    with pytest.raises(ValueError, match="not a exp table"):
        substitute(model, variant="nli", tables=tb)


def test_published_mode_uses_nli_published_tables():
    from nli.published import published_table

    ops = make_ops(variant="published", reciprocal_mode="direct")
    unit = ops.routes["softmax"]
    assert set(unit.tables) == {"silu", "exp", "reciprocal", "rsqrt"}
    for f, t in unit.tables.items():
        assert np.array_equal(t.cutpoints, published_table(f).cutpoints) and np.array_equal(
            t.lut, published_table(f).lut
        )
    x = torch.randn(4, 33, generator=torch.Generator().manual_seed(5)) * 8
    want = hw_sim.softmax(
        x.numpy().astype(np.float16), unit.tables["exp"], unit.tables["reciprocal"], "direct"
    )
    assert np.array_equal(bits_of(ops.softmax(x)), want.view(np.uint16))


@pytest.mark.parametrize("kind", ["uniform", "curvature", "nnlut"])
def test_baseline_mode_equals_hw_sim_bits(kind):
    from nli.baselines import baseline_table
    from nli.functions import get_function

    ops = make_ops(variant=f"baseline:{kind}", reciprocal_mode="reduced")
    unit = ops.routes["act"]
    want_silu = baseline_table(kind, "silu", get_function("silu").domains["direct"])
    assert np.array_equal(unit.tables["silu"].cutpoints, want_silu.cutpoints)
    x = (
        torch.randn(3, 40, generator=torch.Generator().manual_seed(9)) * 30
    )  # outliers beyond [-5, 5]
    x[:, 30:] = float("-inf")
    x16 = x.numpy().astype(np.float16)
    assert np.array_equal(
        bits_of(ops.act(x, "silu")),
        hw_sim.run_elementwise(unit.tables["silu"], x16).view(np.uint16),
    )
    assert np.array_equal(
        bits_of(ops.softmax(x)),
        hw_sim.softmax(x16, unit.tables["exp"], unit.tables["reciprocal"], "reduced").view(
            np.uint16
        ),
    )
    w = torch.linspace(0.5, 1.5, 30)
    xr = x[:, :30] * 100
    assert np.array_equal(
        bits_of(ops.rmsnorm(xr, w, 1e-5)),
        hw_sim.rmsnorm(
            xr.numpy().astype(np.float16),
            w.numpy().astype(np.float16),
            1e-5,
            unit.tables["rsqrt"],
            "reduced",
        ).view(np.uint16),
    )


@pytest.mark.parametrize("mode", MODES)
def test_nli_mode_uses_shipped_default_tables(mode):
    from nli.defaults import default_table

    unit = make_ops(variant="nli", reciprocal_mode=mode).routes["rmsnorm"]
    for f, t in unit.tables.items():
        want = default_table(f, mode if f in ("reciprocal", "rsqrt") else "direct")
        assert np.array_equal(t.cutpoints, want.cutpoints) and np.array_equal(t.lut, want.lut), f
    x = torch.randn(2, 50, generator=torch.Generator().manual_seed(2)) * 3000
    w = torch.linspace(-1, 1, 50)
    want = hw_sim.rmsnorm(
        x.numpy().astype(np.float16), w.numpy().astype(np.float16), 1e-5, unit.tables["rsqrt"], mode
    )
    assert np.array_equal(bits_of(unit.rmsnorm(x, w, 1e-5)), want.view(np.uint16))


@pytest.mark.parametrize("mode", MODES)
def test_tables_that_do_not_fit_reciprocal_mode_are_rejected(mode):
    """Reduced-domain reciprocal/rsqrt tables in direct mode (and direct ones in reduced mode)
    are refused when the backend is built, naming the table's function, its role and the mode."""
    model, _ = engine.load_model("tiny")
    other = "direct" if mode == "reduced" else "reduced"
    for f in ("reciprocal", "rsqrt"):
        tb = engine_tables(mode)
        tb[f] = engine_tables(other)[f]
        with pytest.raises(ValueError, match=rf"{f} table: the '{f}' table spans .*{mode} mode"):
            substitute(model, variant="nli", tables=tb, reciprocal_mode=mode)
        with pytest.raises(ValueError, match=rf"{f} table: the '{f}' table spans .*{mode} mode"):
            UnitOps(tb, mode)
    x = np.zeros((2, 4), np.float32)
    tb = engine_tables(mode)
    with pytest.raises(ValueError, match=rf"reciprocal table: .*'reciprocal'.*{other} mode"):
        softmax_f32(x, tb["exp"], tb["reciprocal"], other)


def test_published_variant_without_published_cutpoints_is_a_value_error():
    # NLI publishes no gelu_tanh cutpoints: a one-line ValueError (the CLI's exit-2 path), and
    # the benchmark's available_variants lists the variant as unavailable instead of crashing
    from engine.demo import available_variants

    with pytest.raises(ValueError, match="no published NLI cutpoints for 'gelu_tanh'"):
        make_ops(("act",), "published", None, "reduced", "gelu_tanh")
    ok, missing = available_variants(
        (("published", "published", "reduced"),), ("act",), "gelu_tanh"
    )
    assert ok == [] and "published" in missing
    make_ops(("act",), "published", None, "reduced", "silu")  # silu's are published
