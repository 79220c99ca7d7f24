"""Integer fields of a table are bounded before any int64 arithmetic, so a table that
validation accepts can never make a kernel index out of range.

The overflow cases are crafted explicitly (bins that wrap int64 sums to a valid
total, 2**63 - 1, > 2**64, negative, just past the documented limit), and a
property test runs every table-indexing kernel on tables validation accepts,
each kernel rebuilt with Numba ``boundscheck=True`` (callees too), so an out-of-range
index raises IndexError instead of reading memory.
"""

from fractions import Fraction
import json
import types

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
import numba
from numba.core.registry import CPUDispatcher
import numpy as np
import pytest

import hw_sim.ops
import hw_sim.refine
from hw_sim.report import error_report
import hw_sim.unit
from nli.grid import f16_hex, f32_hex, rne32
from nli.table import MAX_ENTRIES, Table, TableError, load_table, table_from_cutpoints

C2 = np.array([1.0, 2.0], dtype=np.float16).view(np.uint16)


# ----------------------------------------------------------------------------- crafted overflows
def _crafted(bins, base=None):
    """A table file dict whose mul matches bins exactly (as an attacker would write it), base
    the int64 running sum (wrapped) and lut sized for the wrapped 1 + sum(bins)."""
    k = len(bins)
    cuts = np.arange(k + 1, dtype=np.float64) + 1.0
    if base is None:
        base = [0]
        for b in bins[:-1]:  # int64 wraparound, as the old np.cumsum computed it
            base.append((base[-1] + b + 2**63) % 2**64 - 2**63)
    wrapped = (sum(bins) + 2**63) % 2**64 - 2**63
    n = max(2, min(1 + wrapped, 64))
    mul = [
        f32_hex(np.float32(rne32(Fraction(b) / Fraction(1)))) if b > 0 else "3f800000" for b in bins
    ]
    return {
        "format": "nli-table",
        "version": 1,
        "function": "silu",
        "precision": "fp32",
        "cutpoints": [f16_hex(int(np.float16(c).view(np.uint16))) for c in cuts],
        "bins": list(bins),
        "base": base,
        "mul": mul,
        "lut": ["3c00"] * n,
        "below": "0000",
        "above": "3c00",
    }


OVERFLOWS = {
    "sum wraps to 3": [2**62, 2**62, 2**62, 2**62 + 3],
    "int64 max": [2**63 - 1, 2],
    "2**63 - 1 alone": [2**63 - 1],
    "beyond int64": [2**64 + 1],
    "2**62": [2**62],
    "negative": [-1, 4],
    "wraps negative to 1": [2**63 - 1, 2**63 - 1, 3],
    "one past the limit": [MAX_ENTRIES],
    "sum one past the limit": [MAX_ENTRIES // 2, MAX_ENTRIES // 2],
}


@pytest.mark.parametrize("name", OVERFLOWS)
def test_crafted_integer_overflow_is_rejected_naming_bins(tmp_path, name):
    p = tmp_path / "t.json"
    p.write_text(json.dumps(_crafted(OVERFLOWS[name])))
    with pytest.raises(TableError, match=r"t\.json: bins"):
        load_table(p)


def test_in_memory_overflowing_bins_are_rejected():
    b = np.array([2**62] * 3 + [2**62 + 3], dtype=np.int64)  # np.sum wraps to 3
    c = np.arange(1, 6, dtype=np.float16).view(np.uint16)
    with pytest.raises(TableError, match="bins"):
        Table("silu", c, b, np.zeros(4, np.uint16), 0, 0)
    with pytest.raises(TableError, match="bins"):
        table_from_cutpoints("silu", c, b)
    with pytest.raises(TableError, match="bins"):
        Table("silu", C2, np.array([1.0]), np.zeros(2, np.uint16), 0, 0)  # float bins
    with pytest.raises(TableError, match="cutpoints"):
        Table("silu", np.array([0x3C00, 0x14000]), [1], np.zeros(2, np.uint16), 0, 0)  # > 16 bits
    with pytest.raises(TableError, match="base"):
        Table("silu", C2, [3], np.zeros(4, np.uint16), 0, 0, base=[2**64])


def test_largest_table_is_accepted_one_more_entry_is_not():
    t = table_from_cutpoints("silu", C2, [MAX_ENTRIES - 1])
    assert t.entries == MAX_ENTRIES
    with pytest.raises(TableError, match="bins"):
        table_from_cutpoints("silu", C2, [MAX_ENTRIES])


# ---------------------------------------------------------------------- bounds-checked kernels
def bounds_checked(disp, memo=None):
    """A serial, boundscheck=True, uncached rebuild of the Numba dispatcher ``disp`` whose
    global Numba callees are rebuilt the same way (boundscheck is a per-function flag)."""
    memo = {} if memo is None else memo
    if disp in memo:
        return memo[disp]
    f = disp.py_func
    g = dict(f.__globals__)
    new = types.FunctionType(f.__code__, g, f.__name__, f.__defaults__, f.__closure__)
    opts = {
        k: v
        for k, v in disp.targetoptions.items()
        if k not in ("cache", "parallel", "boundscheck", "nopython")
    }
    memo[disp] = checked = numba.njit(boundscheck=True, **opts)(new)
    for name, v in f.__globals__.items():
        if isinstance(v, CPUDispatcher):
            g[name] = bounds_checked(v, memo)
    return checked


TABLE_KERNELS = {  # every kernel that indexes a table array with a table-derived index
    hw_sim.refine: ("_locate_all", "_interp_subset"),
}
# kernel factories (flag -> dispatcher) whose every variant indexes a table array
TABLE_KERNEL_FACTORIES = {
    hw_sim.unit: {"_direct_kernel": (True, False), "_direct_kernel_bf16": (True, False)},
}


@pytest.fixture(scope="module")
def checked_kernels():
    memo = {}
    patched = []
    for mod, names in TABLE_KERNELS.items():
        for name in names:
            patched.append((mod, name, getattr(mod, name)))
            setattr(mod, name, bounds_checked(getattr(mod, name), memo))
    for mod, factories in TABLE_KERNEL_FACTORIES.items():
        for name, flags in factories.items():
            orig = getattr(mod, name)
            patched.append((mod, name, orig))
            built = {flag: bounds_checked(orig(flag), memo) for flag in flags}
            setattr(mod, name, lambda flag, built=built: built[flag])
    yield memo
    for mod, name, orig in patched:
        setattr(mod, name, orig)


def test_bounds_checked_build_raises_on_an_out_of_range_index(checked_kernels):
    """The harness can fail: a kernel given bins that run past the LUT raises IndexError."""
    t = table_from_cutpoints("silu", C2, [4])
    p = hw_sim.unit.prepare(t)
    bad = np.array([8], dtype=np.int64)  # as if bins[0] were 8 with a 5-entry LUT
    xs = np.array([0x3FFF], dtype=np.uint16)  # just below 2: u = 7.99 -> a = 7, g + 1 = 8
    with pytest.raises(IndexError):
        hw_sim.unit._direct_kernel(False)(
            xs,
            np.empty(1, np.uint16),
            p.cut32,
            p.cut64,
            bad,
            p.base,
            p.mul32 * 2,
            p.mul16 * 2,
            p.lut32,
            p.lut64,
            np.uint16(0),
            np.uint16(0),
            False,
        )


def _ord_to_bits(o: int) -> int:
    return o if o >= 0 else 0x8000 | -o


@st.composite
def accepted_tables(draw):
    k = draw(st.integers(1, 6))
    function = draw(st.sampled_from(["silu", "exp", "tanh", "gelu"]))
    ords = sorted(
        draw(st.lists(st.integers(-0x7BFF, 0x7BFF), min_size=k + 1, max_size=k + 1, unique=True))
    )
    cuts = np.array([_ord_to_bits(o) for o in ords], dtype=np.uint16)
    if k == 1:
        bins = [draw(st.one_of(st.integers(1, 64), st.integers(1, MAX_ENTRIES - 1)))]
    else:
        bins = draw(
            st.lists(
                st.one_of(st.integers(1, 64), st.integers(1, (MAX_ENTRIES - 1) // 6)),
                min_size=k,
                max_size=k,
            )
        )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lim = 0x7BD0  # |lut| <= 31,232: neighbouring differences cannot overflow FP16
    lut = np.array(
        [_ord_to_bits(int(o)) for o in rng.integers(-lim, lim + 1, 1 + sum(bins))], np.uint16
    )
    nan = st.integers(0, 0xFFFF).filter(lambda b: not ((b & 0x7C00) == 0x7C00 and b & 0x3FF))
    try:
        return Table(
            function, cuts, bins, lut, draw(nan), draw(nan), draw(st.sampled_from(["fp32", "fp16"]))
        )
    except TableError:
        assume(False)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(t=accepted_tables())
def test_every_accepted_table_stays_in_bounds_in_every_kernel(checked_kernels, t):
    xs = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    p = hw_sim.unit.prepare(t)  # all 65,536 inputs through the checked _direct_kernel(True)
    y = hw_sim.unit.run_elementwise(t, xs[::7], method="direct").view(np.uint16)
    assert np.array_equal(y, p.outputs[::7])
    g = np.empty(xs.size, np.int64)
    tt = np.empty(xs.size, np.float64)
    fp16 = t.precision == "fp16"
    hw_sim.refine._locate_all(xs, p.cut32, p.cut64, p.bins, p.base, p.mul32, p.mul16, fp16, g, tt)
    inner = np.flatnonzero(g >= 0)
    assert inner.size == 0 or g[inner].max() + 1 < t.entries
    out = np.empty(inner.size, np.uint16)
    hw_sim.refine._interp_subset(inner, g, tt, p.lut64, fp16, out)
    assert np.array_equal(out, p.outputs[xs[inner]])
    error_report(t)  # the report's path, on the table's own domain
    if t.function == "exp":  # softmax reads the exp table through its output LUT
        recip = table_from_cutpoints("reciprocal", np.array([0x3C00, 0x4000], np.uint16), [32])
        # a reduced-domain reciprocal ([1, 2]): softmax in reduced mode accepts it
        hw_sim.ops.softmax(np.array([[0.0, -1.0, 2.0]], np.float16), t, recip, mode="reduced")


@st.composite
def accepted_bf16_tables(draw):
    """Random valid bf16 tables (numerics §13): cutpoints anywhere in BF16's finite range,
    LUT entries of any finite magnitude; those the rules reject are skipped."""
    k = draw(st.integers(1, 6))
    ords = sorted(
        draw(st.lists(st.integers(-0x7F7F, 0x7F7F), min_size=k + 1, max_size=k + 1, unique=True))
    )
    cuts = np.array([_ord_to_bits(o) for o in ords], dtype=np.uint16)
    bins = draw(st.lists(st.integers(1, 64), min_size=k, max_size=k))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lut = np.array(
        [_ord_to_bits(int(o)) for o in rng.integers(-0x7F7F, 0x7F80, 1 + sum(bins))], np.uint16
    )
    end = st.integers(0, 0xFFFF).filter(lambda b: not ((b & 0x7F80) == 0x7F80 and b & 0x7F))
    try:
        return Table("f", cuts, bins, lut, draw(end), draw(end), dtype="bf16")
    except TableError:
        assume(False)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(t=accepted_bf16_tables())
def test_every_accepted_bf16_table_stays_in_bounds(checked_kernels, t):
    xs = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    p = hw_sim.unit.prepare(t)  # all 65,536 inputs through the checked _direct_kernel_bf16(True)
    y = hw_sim.unit.run_elementwise(t, xs[::7], method="direct")
    assert np.array_equal(y, p.outputs[::7])
