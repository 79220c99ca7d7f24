"""RMSNorm's row prescale (numerics §4.1): hw_sim.rmsnorm_f32 with rmsnorm_input='scaled' is
bit-exact to the Fraction oracle (tests/naive.py) on seeded and adversarial FP32 rows, in both
reciprocal modes and on both kernel variants (one thread, and the parallel one); 'plain' is
today's RNE16-at-the-boundary bit for bit (inf / NaN on overflowing rows); rows whose largest
finite |x| is below 65520 are unchanged by the prescale. The engine's backends (unit fused and
unfused, fp16) and make_ops / substitute take the same choice."""

from __future__ import annotations

from engine_tables import engine_tables
from naive import naive_fp16_rmsnorm_f32_bits, nv_prescale_exponent, nv_rmsnorm_f32_row
import numpy as np
from prescale_rows import N, adversarial_rows, seeded_rows, weights
import pytest
import torch

import engine
from engine.op_sets import Fp16Ops, UnitOps
from engine.substitution import make_ops, substitute
import hw_sim
from hw_sim import SimInputError
import hw_sim.ops
import nli
from nli.prescale import prescale_exponents

MODES = ("reduced", "direct")
RNG_SEED = 20261204


def oracle(x, w, eps, table, mode, rmsnorm_input="scaled") -> np.ndarray:
    return np.array(
        [nv_rmsnorm_f32_row(r, w.view(np.uint16), eps, table, mode, rmsnorm_input) for r in x],
        dtype=np.uint16,
    )


def bits(y) -> np.ndarray:
    """float32 array or tensor holding FP16 values -> uint16 bits (exact)."""
    y = y.numpy() if isinstance(y, torch.Tensor) else y
    return y.astype(np.float16).view(np.uint16)


@pytest.fixture(params=["serial", "parallel"])
def kernel_variant(request, monkeypatch):
    """Force hw_sim's one-thread or parallel RMSNorm kernel whatever the input size."""
    monkeypatch.setattr(
        hw_sim.ops, "PARALLEL_MIN_ELEMENTS", 1 << 62 if request.param == "serial" else 0
    )
    return request.param


# ----------------------------------------------------------------------------- the exponent
def test_prescale_exponents_match_the_oracle():
    x = adversarial_rows(np.random.default_rng(RNG_SEED))
    got = prescale_exponents(x)
    assert got.dtype == np.int32 and got.shape == (x.shape[0],)
    assert got.tolist() == [nv_prescale_exponent(r) for r in x]
    by_max = {65519.99: 0, 65520: 1, 65536: 2, 131071.99: 2, 1e5: 2, 131072: 3, 3e38: 113}
    for m, s in by_max.items():
        r = np.array([1.0, np.float32(m), -2.0], np.float32)
        assert prescale_exponents(r).item() == s, m
    assert prescale_exponents(np.array([[np.inf, np.nan, -np.inf]], np.float32)).tolist() == [0]
    assert prescale_exponents(np.zeros((2, 3, 4), np.float32)).shape == (2, 3)


# ----------------------------------------------------------------------------- bit-exact
@pytest.mark.parametrize("mode", MODES)
def test_adversarial_rows_equal_the_oracle(mode, kernel_variant):
    rng = np.random.default_rng(RNG_SEED)
    x = adversarial_rows(rng)
    w = weights(rng, N)
    t = engine_tables(mode)["rsqrt"]
    for eps in (1e-6, 1e-5, 0.0, 2.0**-149, 3e38):
        got = bits(hw_sim.rmsnorm_f32(x, w, eps, t, mode))
        want = oracle(x, w, np.float32(eps), t, mode)
        assert np.array_equal(got, want), (mode, eps, np.nonzero((got != want).any(1))[0])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [1, 5, 64])
def test_seeded_rows_equal_the_oracle(mode, n, kernel_variant):
    rng = np.random.default_rng(RNG_SEED + n)
    x = seeded_rows(rng, 40, n)
    w = weights(rng, n)
    t = engine_tables(mode)["rsqrt"]
    got = bits(hw_sim.rmsnorm_f32(x, w, 1e-6, t, mode))
    assert np.array_equal(got, oracle(x, w, np.float32(1e-6), t, mode))
    assert (prescale_exponents(x) > 0).sum() >= 3  # the prescale is really exercised


@pytest.mark.parametrize("mode", MODES)
def test_shipped_tables_equal_the_oracle(mode):
    rng = np.random.default_rng(RNG_SEED + 1)
    x = np.concatenate([adversarial_rows(rng), seeded_rows(rng, 8, N)])
    w = weights(rng, N)
    t = nli.default_table("rsqrt", mode)
    got = bits(hw_sim.rmsnorm_f32(x, w, 1e-6, t, mode))
    assert np.array_equal(got, oracle(x, w, np.float32(1e-6), t, mode))


# ----------------------------------------------------------------------------- plain and scaled
@pytest.mark.parametrize("mode", MODES)
def test_plain_is_rne16_at_the_boundary(mode, kernel_variant):
    """'plain' = today's path: the same bits as the FP16-input kernel on x.astype(float16),
    and as the oracle's 'plain'; overflowing rows come out inf / NaN as before."""
    rng = np.random.default_rng(RNG_SEED + 2)
    x = np.concatenate([adversarial_rows(rng), seeded_rows(rng, 16, N)])
    w = weights(rng, N)
    t = engine_tables(mode)["rsqrt"]
    got = bits(hw_sim.rmsnorm_f32(x, w, 1e-6, t, mode, rmsnorm_input="plain"))
    with np.errstate(over="ignore"):
        today = hw_sim.rmsnorm(x.astype(np.float16), w, 1e-6, t, mode).view(np.uint16)
    assert np.array_equal(got, today)
    assert np.array_equal(got, oracle(x, w, np.float32(1e-6), t, mode, "plain"))
    over = prescale_exponents(x) > 0
    finite = np.isfinite(got.view(np.float16))
    assert over.sum() >= 10 and not finite[over].all(axis=1).any()  # the collapse
    scaled = bits(hw_sim.rmsnorm_f32(x, w, 1e-6, t, mode))
    clean = over & np.isfinite(x).all(axis=1)  # overflowing rows without inf / NaN inputs
    assert np.isfinite(scaled.view(np.float16)[clean]).all()  # the prescale keeps them finite


@pytest.mark.parametrize("mode", MODES)
def test_rows_below_the_threshold_keep_their_bits(mode):
    """Every row whose largest finite |x| is below 65520 (65519.99 included) gives the same
    bits scaled and plain: the default changes no row that worked before."""
    rng = np.random.default_rng(RNG_SEED + 3)
    x = np.concatenate([seeded_rows(rng, 200, N), adversarial_rows(rng)])
    keep = prescale_exponents(x) == 0
    assert keep.sum() >= 50 and (~keep).sum() >= 20
    w = weights(rng, x.shape[1])
    t = engine_tables(mode)["rsqrt"]
    s = bits(hw_sim.rmsnorm_f32(x, w, 1e-5, t, mode))
    p = bits(hw_sim.rmsnorm_f32(x, w, 1e-5, t, mode, rmsnorm_input="plain"))
    assert np.array_equal(s[keep], p[keep])
    assert not np.array_equal(s[~keep], p[~keep])


def test_shapes_and_bad_rmsnorm_input():
    t = engine_tables()["rsqrt"]
    x = np.full((2, 3, 4), 1e5, np.float32)
    w = np.ones(4, np.float16)
    y = hw_sim.rmsnorm_f32(x, w, 1e-6, t, "reduced")
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    for bad in ("Scaled", "", None, 1, "fp16"):
        with pytest.raises(SimInputError, match="rmsnorm_input: must be one of scaled, plain"):
            hw_sim.rmsnorm_f32(x, w, 1e-6, t, "reduced", rmsnorm_input=bad)


# ----------------------------------------------------------------------------- engine
@pytest.mark.parametrize("mode", MODES)
def test_unit_ops_fused_and_unfused_equal_the_oracle(mode):
    """UnitOps' fused path (rmsnorm_f32) and its unfused one (FP16 kernel per group of equal s,
    eps 2^(-2s) rounded to FP32 by hw_sim, even to 0 at s = 113: numerics §4.1's argument)."""
    rng = np.random.default_rng(RNG_SEED + 4)
    x = np.concatenate([adversarial_rows(rng), seeded_rows(rng, 8, N)])
    w = weights(rng, N)
    tb = engine_tables(mode)
    want = oracle(x, w, np.float32(1e-6), tb["rsqrt"], mode)
    xt, wt = torch.from_numpy(x), torch.from_numpy(w.astype(np.float32))
    for fused in (True, False):
        got = bits(UnitOps(tb, mode, fused=fused).rmsnorm(xt, wt, 1e-6))
        assert np.array_equal(got, want), fused
    with np.errstate(over="ignore"):
        for fused in (True, False):
            got = bits(UnitOps(tb, mode, fused=fused, rmsnorm_input="plain").rmsnorm(xt, wt, 1e-6))
            assert np.array_equal(got, oracle(x, w, np.float32(1e-6), tb["rsqrt"], mode, "plain"))


def test_fp16_ops_prescale_is_correctly_rounded():
    """The fp16 reference gets the same x' and eps' (scaled), or RNE16 alone (plain)."""
    rng = np.random.default_rng(RNG_SEED + 5)
    x = np.concatenate([adversarial_rows(rng), seeded_rows(rng, 8, N)])
    x = x[np.isfinite(x).all(axis=1) & (np.abs(x).max(axis=1) > 0)]  # the oracle's domain
    w = weights(rng, N)
    xt, wt = torch.from_numpy(x), torch.from_numpy(w.astype(np.float32))
    got = bits(Fp16Ops().rmsnorm(xt, wt, 1e-6))
    want = np.array([naive_fp16_rmsnorm_f32_bits(r, w, 1e-6) for r in x], np.uint16)
    assert np.array_equal(got, want)
    assert (prescale_exponents(x) > 0).sum() >= 10
    low = prescale_exponents(x) == 0
    plain = bits(Fp16Ops("plain").rmsnorm(xt[low], wt, 1e-6))
    want = np.array([naive_fp16_rmsnorm_f32_bits(r, w, 1e-6, "plain") for r in x[low]], np.uint16)
    assert np.array_equal(plain, want) and np.array_equal(plain, got[low])


def test_make_ops_and_substitute_take_the_choice():
    tb = engine_tables()
    x = torch.tensor([[1e5, -3.0, 2.0, 0.5]])
    w = torch.ones(4)
    for variant, tables in (("nli", tb), ("fp16", None)):
        scaled = make_ops(("rmsnorm",), variant, tables)
        plain = make_ops(("rmsnorm",), variant, tables, rmsnorm_input="plain")
        assert "plain" in plain.name and "plain" not in scaled.name
        with np.errstate(over="ignore", invalid="ignore"):
            assert torch.isfinite(scaled.rmsnorm(x, w, 1e-6)).all()
            assert not torch.isfinite(plain.rmsnorm(x, w, 1e-6)).all()
    with pytest.raises(ValueError, match="rmsnorm_input must be one of scaled, plain"):
        make_ops(("rmsnorm",), "nli", tb, rmsnorm_input="fp32")
    with pytest.raises(ValueError, match="rmsnorm_input must be one of scaled, plain"):
        Fp16Ops("half")
    model, _ = engine.load_model("tiny")
    sub = substitute(model, ("rmsnorm",), "nli", tb, rmsnorm_input="plain")
    assert sub.ops.routes["rmsnorm"].rmsnorm_input == "plain"
    assert substitute(model, ("rmsnorm",), "nli", tb).ops.routes["rmsnorm"].rmsnorm_input == (
        "scaled"
    )
