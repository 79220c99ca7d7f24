"""The cost kernels' LUT rounding (nli.format_rounding._rne_q) against RNE by exact rational
arithmetic (nli.grid.rne16 / rne_bf16, round_fraction), bit for bit: every finite FP16 value,
the midpoints between neighbours and one float64 step either side of each, float64 subnormals,
values at the overflow threshold, and random values over the whole exponent range; a sample
of the BF16 encodings and their midpoints likewise."""

import numba
import numpy as np

from nli.format_rounding import _rne_q
from nli.grid import all_finite_bf16_bits, all_finite_f16_bits, bits_to_f64, rne16, rne_bf16


@numba.njit(cache=False)
def _rne_all(v, fmt):
    out = np.empty(v.size)
    for i in range(v.size):
        out[i] = _rne_q(v[i], fmt)
    return out


def _probes(vals, rng):
    vals = np.unique(vals[np.isfinite(vals)])
    mid = (vals[:-1] + vals[1:]) / 2  # exact: neighbours differ in their last bits only
    near = np.concatenate([np.nextafter(mid, -np.inf), mid, np.nextafter(mid, np.inf)])
    edge = np.array([5e-324, 1e-310, 2.0**-1022, 2.0**-30, 2.0**-25, 65504.0, 65519.99, 65520.0])
    rand = np.ldexp(rng.random(20_000) + 0.5, rng.integers(-160, 140, 20_000))
    out = np.concatenate([vals, near, edge, rand])
    out = out[out != 0]  # zeros: below (the Fraction reference drops their sign)
    return np.concatenate([out, -out])


def test_rne16_kernel_matches_exact_rounding():
    v = _probes(bits_to_f64(all_finite_f16_bits(), "fp16"), np.random.default_rng(1))
    got = _rne_all(v, 0)
    want = np.array([rne16(float(x)) for x in v])
    assert np.array_equal(got.view(np.int64), want.view(np.int64))


def test_rne_bf16_kernel_matches_exact_rounding():
    bits = all_finite_bf16_bits()[::7]
    v = _probes(bits_to_f64(bits, "bf16"), np.random.default_rng(2))
    got = _rne_all(v, 1)
    want = np.array([rne_bf16(float(x)) for x in v])
    assert np.array_equal(got.view(np.int64), want.view(np.int64))


def test_zeros_keep_their_sign():
    got = _rne_all(np.array([0.0, -0.0]), 0)
    assert got.view(np.int64).tolist() == np.array([0.0, -0.0]).view(np.int64).tolist()
