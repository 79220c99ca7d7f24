"""hw_sim.ops: Softmax, RMSNorm (numerics §4) and the reciprocal/rsqrt modes
(section 5), bit for bit against the Fraction oracle on seeded and hypothesis rows. What the
ops refuse: tests/test_ops_input_checks.py."""

from hypothesis import given, settings
from hypothesis import strategies as st
from naive import NvTable, nv32, nv_encode16, nv_inverse, nv_rmsnorm_row, nv_softmax_row
import numpy as np
import pytest
from sim_tables import op_tables

import hw_sim

SEED = 1234
MODES = ("direct", "reduced")
SPECIAL16 = [
    0x0000,
    0x8000,
    0x0001,
    0x8001,
    0x03FF,
    0x0400,
    0x7BFF,
    0xFBFF,
    0x7C00,
    0xFC00,
    0x7E00,
    0x3C00,
    0xBC00,
    0x5800,
    0xD800,
]
bits16 = st.one_of(st.integers(0, 0xFFFF), st.sampled_from(SPECIAL16))
finite16 = st.integers(0, 0xFFFF).filter(lambda b: (b & 0x7C00) != 0x7C00)


def _sources():
    out = ["standin"]
    try:
        op_tables("shipped")
        out.append("shipped")
    except LookupError:
        pass
    return out


SOURCES = _sources()
TABLES = {s: op_tables(s) for s in SOURCES}


def _rows(rng, n, count):
    """Seeded FP16 rows (uint16[count, n]) mixing scales, masks and specials."""
    kinds = []
    kinds.append((rng.standard_normal((count, n)) * 3).astype(np.float16).view(np.uint16))
    kinds.append((rng.standard_normal((count, n)) * 2000).astype(np.float16).view(np.uint16))
    anyb = rng.integers(0, 1 << 16, (count, n)).astype(np.uint16)
    anyb[((anyb & 0x7C00) == 0x7C00) & ((anyb & 0x3FF) != 0)] = 0x3C00  # drop NaNs here
    kinds.append(anyb)
    sub = rng.integers(0, 0x400, (count, n)).astype(np.uint16) | (
        rng.integers(0, 2, (count, n)) << 15
    ).astype(np.uint16)
    kinds.append(sub)  # subnormals and zeros
    rows = np.concatenate(kinds)
    masked = rows.copy()
    masked[rng.random(masked.shape) < 0.4] = 0xFC00  # causal-style -inf masks
    return np.concatenate([rows, masked])


def _special_rows(n):
    rows = [
        np.full(n, 0x3C00),
        np.full(n, 0xFC00),
        np.full(n, 0x0000),
        np.full(n, 0x7BFF),
        np.full(n, 0x0001),
    ]
    r = np.full(n, 0x3C00)
    r[n // 2] = 0x7E00
    rows.append(r)  # NaN
    r = np.full(n, 0x4000)
    r[0] = 0x7C00
    rows.append(r)  # +inf
    r = np.full(n, 0xFC00)
    r[-1] = 0x8000
    rows.append(r)  # one -0, rest -inf
    r = np.full(n, 0xFBFF)
    r[0] = 0x7BFF
    rows.append(r)  # -65504 vs 65504
    return np.array(rows, dtype=np.uint16)


def _softmax_oracle(rows, t, mode):
    return np.array(
        [nv_softmax_row(r, t[("exp", mode)], t[("reciprocal", mode)], mode) for r in rows],
        np.uint16,
    )


def _rmsnorm_oracle(rows, w, eps, t, mode):
    return np.array(
        [nv_rmsnorm_row(r, w, np.float32(eps), t[("rsqrt", mode)], mode) for r in rows], np.uint16
    )


def _softmax(rows, t, mode):
    return hw_sim.softmax(rows, t[("exp", mode)], t[("reciprocal", mode)], mode).view(np.uint16)


def _rmsnorm(rows, w, eps, t, mode):
    return hw_sim.rmsnorm(rows, w, eps, t[("rsqrt", mode)], mode).view(np.uint16)


# ----------------------------------------------------------------------------- softmax
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_softmax_seeded_rows(source, mode, n):
    t = TABLES[source]
    rng = np.random.default_rng(SEED + n)
    rows = np.concatenate([_rows(rng, n, 3), _special_rows(n)])
    assert np.array_equal(_softmax(rows, t, mode), _softmax_oracle(rows, t, mode))


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [1024, 4096])
def test_softmax_long_rows(source, mode, n):
    t = TABLES[source]
    rng = np.random.default_rng(SEED + n)
    rows = (rng.standard_normal((2, n)) * 4).astype(np.float16).view(np.uint16)
    rows[1, n // 3 :] = 0xFC00
    assert np.array_equal(_softmax(rows, t, mode), _softmax_oracle(rows, t, mode))


@settings(max_examples=60, deadline=None)
@given(st.lists(bits16, min_size=1, max_size=48), st.sampled_from(MODES), st.sampled_from(SOURCES))
def test_softmax_hypothesis(row, mode, source):
    t = TABLES[source]
    rows = np.array([row], np.uint16)
    assert np.array_equal(_softmax(rows, t, mode), _softmax_oracle(rows, t, mode))


def test_softmax_many_rows_parallel_path_and_shapes():
    t = TABLES["standin"]
    rng = np.random.default_rng(SEED)
    x = (rng.standard_normal((4, 40, 128)) * 3).astype(np.float16)
    y = hw_sim.softmax(x, t[("exp", "direct")], t[("reciprocal", "direct")], "direct")
    assert y.dtype == np.float16 and y.shape == x.shape
    flat = x.reshape(-1, 128).view(np.uint16)  # (4, 40, 128) -> (160, 128)
    serial = np.concatenate([_softmax(flat[i : i + 1], t, "direct") for i in range(0, 160, 37)])
    assert np.array_equal(y.reshape(-1, 128).view(np.uint16)[::37], serial)
    pick = flat[::53]
    assert np.array_equal(
        y.reshape(-1, 128).view(np.uint16)[::53], _softmax_oracle(pick, t, "direct")
    )


# ----------------------------------------------------------------------------- rmsnorm
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [1, 3, 64])
@pytest.mark.parametrize("eps", [1e-5, 0.0, 1e-45, 1e6])
def test_rmsnorm_seeded_rows(source, mode, n, eps):
    t = TABLES[source]
    rng = np.random.default_rng(SEED + n)
    rows = np.concatenate([_rows(rng, n, 2), _special_rows(n)])
    w = (rng.standard_normal(n) * 2).astype(np.float16).view(np.uint16)
    w[0] = 0x8000 if n > 1 else w[0]
    assert np.array_equal(_rmsnorm(rows, w, eps, t, mode), _rmsnorm_oracle(rows, w, eps, t, mode))


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [576, 4096])
def test_rmsnorm_long_rows(source, mode, n):
    t = TABLES[source]
    rng = np.random.default_rng(SEED + n)
    rows = (rng.standard_normal((2, n)) * 30).astype(np.float16).view(np.uint16)
    rows[1] = (rng.standard_normal(n) * 1e-5).astype(np.float16).view(np.uint16)
    w = (1 + rng.standard_normal(n) * 0.1).astype(np.float16).view(np.uint16)
    assert np.array_equal(_rmsnorm(rows, w, 1e-5, t, mode), _rmsnorm_oracle(rows, w, 1e-5, t, mode))


@settings(max_examples=60, deadline=None)
@given(
    st.data(),
    st.integers(1, 40),
    st.sampled_from(MODES),
    st.sampled_from(SOURCES),
    st.floats(width=32, min_value=0.0, max_value=2.0**100, allow_subnormal=True),
)
def test_rmsnorm_hypothesis(data, n, mode, source, eps):
    t = TABLES[source]
    row = data.draw(st.lists(bits16, min_size=n, max_size=n))
    w = data.draw(st.lists(bits16, min_size=n, max_size=n))
    rows, w = np.array([row], np.uint16), np.array(w, np.uint16)
    assert np.array_equal(_rmsnorm(rows, w, eps, t, mode), _rmsnorm_oracle(rows, w, eps, t, mode))


# ----------------------------------------------------------------------------- section 5
FP32_SPECIAL = np.array(
    [
        0.0,
        -0.0,
        np.inf,
        -np.inf,
        np.nan,
        1.0,
        2.0,
        4.0,
        1.9999999,
        3.9999998,
        2.0**-149,
        2.0**-126,
        3.4028235e38,
        65504.0,
        65520.0,
        1e-8,
        -1.0,
        -2.5,
        0.5,
        0.25,
    ],
    np.float32,
)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fn", ["reciprocal", "rsqrt"])
def test_inverse_seeded(source, mode, fn):
    t = TABLES[source][(fn, mode)]
    rng = np.random.default_rng(SEED)
    v = np.concatenate(
        [
            FP32_SPECIAL,
            (2.0 ** rng.uniform(-150, 128, 600)).astype(np.float32),
            rng.uniform(0.9, 4.1, 300).astype(np.float32),
        ]
    )
    got = getattr(hw_sim, fn)(v, t, mode).view(np.uint16)
    nt = NvTable(t)
    want = [nv_encode16(nv_inverse(nv32(int(b)), nt, mode, fn)) for b in v.view(np.uint32)]
    assert np.array_equal(got, np.array(want, np.uint16))


@settings(max_examples=200, deadline=None)
@given(
    st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True),
    st.sampled_from(MODES),
    st.sampled_from(["reciprocal", "rsqrt"]),
)
def test_inverse_hypothesis(v, mode, fn):
    t = TABLES["standin"][(fn, mode)]
    v32 = np.array([v], np.float32)
    got = int(getattr(hw_sim, fn)(v32, t, mode).view(np.uint16)[0])
    assert got == nv_encode16(nv_inverse(nv32(int(v32.view(np.uint32)[0])), NvTable(t), mode, fn))
