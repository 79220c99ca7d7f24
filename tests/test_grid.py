"""nli.grid and the solver's grid helpers: the grid order, O(1) FP16 index of a real,
double-double prefix sums."""

from fractions import Fraction

import numpy as np
import pytest

from nli.format_rounding import _ceil_index
from nli.functions import get_function
from nli.grid import DomainError, all_finite_f16_bits, f16_bits_to_f64, fp16_grid
from nli.grid_sums import _prefix_dd
from nli.objective import grid_arrays


def test_all_finite_grid_is_sorted_without_minus_zero():
    b = all_finite_f16_bits()
    v = f16_bits_to_f64(b)
    assert b.size == 63487 and np.all(np.diff(v) > 0) and 0x8000 not in set(b.tolist())


@pytest.mark.parametrize(
    "lo,hi,msg",
    [
        (2, 1, "reversed"),
        (-7e4, 0, "outside FP16"),
        (1.0001, 1.0002, "no finite FP16"),
        (0, float("inf"), "not finite"),
    ],
)
def test_bad_domains(lo, hi, msg):
    with pytest.raises(DomainError, match=msg):
        fp16_grid(lo, hi)


@pytest.mark.parametrize("domain", [(-65504.0, 65504.0), (-3.5, -0.001), (2.0**-24, 1.0)])
def test_ceil_index_matches_searchsorted_at_every_encoding_and_between(domain):
    x, _ = fp16_grid(*domain)
    G = grid_arrays(get_function("tanh"), x)
    all_v = f16_bits_to_f64(all_finite_f16_bits())
    rng = np.random.default_rng(3)
    mids = (all_v[1:] + all_v[:-1]) / 2
    probes = np.concatenate(
        [all_v, mids, all_v + rng.uniform(-1e-3, 1e-3, all_v.size) * np.abs(all_v)]
    )
    probes = probes[np.abs(probes) <= 65504.0]
    got = np.array([_ceil_index(G.ord0, G.n, t, 0) for t in probes])
    assert np.array_equal(got, np.searchsorted(x, probes, side="left"))


def test_prefix_dd_is_exact_to_double_double():
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.normal(size=500) * 1e9, rng.normal(size=500) * 1e-9])
    rng.shuffle(v)
    P = _prefix_dd(v)
    exact = Fraction(0)
    for i, a in enumerate(v):
        exact += Fraction(a)
        got = Fraction(P[0, i + 1]) + Fraction(P[1, i + 1])
        assert abs(got - exact) <= Fraction(1, 10**12) * (1 + abs(exact)) * Fraction(1, 10**9)
