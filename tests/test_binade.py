"""nli.binade: binade-aligned bf16 tables meet their ulp target on every BF16 input of the
domain (measured by the bit-accurate report), and a 128-bin binade is exact."""

import numpy as np
import pytest

from hw_sim.report import error_report
from nli.binade import binade_table
from nli.grid import bf16_bits_to_f64


@pytest.mark.parametrize(
    "name, domain, target",
    [
        ("reciprocal", (1.0, 2.0), 0),
        ("rsqrt", (1.0, 4.0), 0),
        ("tanh", (-128.0, 128.0), 1),
        ("exp", (-128.0, 0.0), 1),
        ("silu", (-128.0, 2.0**20), 2),
    ],
)
def test_binade_tables_meet_the_target_everywhere(name, domain, target):
    t = binade_table(name, domain, target)
    assert t.dtype == "bf16"
    rep = error_report(t)
    assert rep["inputs"] > 100 and rep["domain"] == list(domain)
    assert rep["max_ulp"] <= target and rep["nan_mismatch"] == 0
    if target == 0:
        assert rep["pct_correctly_rounded"] == 100.0
    c = t.cutpoint_values()
    pos = c[c > 0]
    exps = np.log2(pos[(pos > c[0]) & (pos < c[-1])])
    assert np.all(exps == np.round(exps))  # inner cutpoints are powers of two


def test_reduced_reciprocal_is_one_128_bin_interval():
    t = binade_table("reciprocal", (1.0, 2.0), 0)
    assert t.K == 1 and t.entries == 129
    assert np.array_equal(bf16_bits_to_f64(t.cutpoints), [1.0, 2.0])


def test_min_pct_cr_raises_the_share_of_correctly_rounded_outputs():
    loose = error_report(binade_table("tanh", (-128.0, 128.0), 1))
    tight = error_report(binade_table("tanh", (-128.0, 128.0), 1, 75.0))
    assert loose["max_ulp"] <= 1 and tight["max_ulp"] <= 1
    assert tight["pct_correctly_rounded"] >= 75.0 > loose["pct_correctly_rounded"]


def test_bad_domain():
    with pytest.raises(ValueError, match="domain"):
        binade_table("tanh", (1.0, 1.0), 1)
    with pytest.raises(ValueError, match="min_pct_cr"):
        binade_table("tanh", (-1.0, 1.0), 1, 101.0)
