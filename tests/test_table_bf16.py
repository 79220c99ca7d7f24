"""BF16 tables (numerics §13): the ``dtype`` field, its validation with the field named, and the
table file (``"dtype": "bf16"``, ``"numerics": "1.3"``; fp16 files keep their bytes)."""

import json

import numpy as np
import pytest

from nli.formats import BF16_NAN, BF16_NEG_INF, BF16_POS_INF, TABLE_NUMERICS
from nli.grid import bf16_bits_to_f64, f64_to_bf16_bits
from nli.table import Table, TableError, load_table, save_table, table_from_cutpoints

ONE, TWO, FOUR = 0x3F80, 0x4000, 0x4080  # BF16 1, 2, 4


def _bf16(cut=(0xC080, ONE, FOUR), bins=(2, 3), fn="silu"):
    return table_from_cutpoints(fn, np.array(cut, np.uint16), list(bins), dtype="bf16")


def test_bf16_table_values_are_bf16_roundings():
    t = _bf16()
    assert t.dtype == "bf16" and t.precision == "fp32"
    assert np.array_equal(t.cutpoint_values(), [-4.0, 1.0, 4.0])
    x = t.points()
    ref = f64_to_bf16_bits(x / (1 + np.exp(-x)))
    assert np.array_equal(t.lut, ref)
    assert (t.below, t.above) == (int(ref[0]), int(ref[-1]))
    # mul = RNE32(bins / width): 2/5 and 3/3
    assert np.array_equal(t.mul.view(np.uint32), np.float32([0.4, 1.0]).view(np.uint32))


def test_bf16_file_round_trip_records_dtype_and_numerics(tmp_path):
    t = _bf16().with_lut(_bf16().lut, objective="paper")
    p = tmp_path / "t.json"
    save_table(t, p)
    d = json.loads(p.read_text())
    assert d["dtype"] == "bf16" and d["numerics"] == TABLE_NUMERICS["bf16"] == "1.3"
    u = load_table(p)
    assert u.dtype == "bf16" and u.meta == {"objective": "paper"}
    for f in ("cutpoints", "bins", "base", "lut"):
        assert np.array_equal(getattr(t, f), getattr(u, f))
    assert np.array_equal(t.mul.view(np.uint32), u.mul.view(np.uint32))
    assert (t.below, t.above) == (u.below, u.above)
    assert u.to_json_dict() == d


def test_fp16_file_has_no_dtype_key_and_numerics_1_1(tmp_path):
    t = table_from_cutpoints("silu", np.array([0xC400, 0x3C00, 0x4400], np.uint16), [2, 3])
    d = t.to_json_dict()
    assert "dtype" not in d and d["numerics"] == "1.1" and t.dtype == "fp16"
    assert Table.from_json_dict(d).dtype == "fp16"
    d["dtype"] = "fp16"  # explicit fp16 is accepted and means the same
    assert Table.from_json_dict(d).dtype == "fp16"


def test_same_bits_mean_different_values_per_dtype():
    """0x7c01 is an FP16 NaN but a finite BF16 value (about 2.6e36)."""
    cut = np.array([ONE, 0x7C01], np.uint16)
    assert bf16_bits_to_f64(0x7C01) > 2.0**120
    Table("id", cut, [1], np.array([ONE, ONE], np.uint16), ONE, ONE, dtype="bf16")
    with pytest.raises(TableError, match="cutpoints"):
        Table("id", cut, [1], np.array([0x3C00, 0x3C00], np.uint16), 0, 0)


def _lut(n, v=ONE):
    return np.full(n, v, np.uint16)


@pytest.mark.parametrize(
    "field, kwargs",
    [
        ("dtype", dict(dtype="fp8")),
        ("dtype", dict(dtype=None)),
        ("precision", dict(precision="fp16")),  # bf16 is defined for fp32 registers only
        ("cutpoints", dict(cutpoints=[ONE, BF16_NAN])),  # NaN
        ("cutpoints", dict(cutpoints=[ONE, BF16_POS_INF])),  # infinite
        ("cutpoints", dict(cutpoints=[TWO, ONE])),  # decreasing
        ("cutpoints", dict(cutpoints=[0x8000, 0x0000])),  # -0, +0: equal values
        ("cutpoints", dict(cutpoints=[0xFF00, 0x7F00])),  # -2^127 .. 2^127: width overflows FP32
        ("mul", dict(cutpoints=[0x0001, 0x0002])),  # width 2^-133: 1 / width overflows FP32
        ("lut", dict(lut=[ONE, 0x7FC1])),  # NaN entry
        ("lut", dict(lut=[ONE, BF16_NEG_INF])),  # infinite entry
        ("lut", dict(lut=[0xFF00, 0x7F00])),  # neighbour difference 2^128 overflows FP32
        ("below", dict(below=0xFFC1)),  # NaN
        ("above", dict(above=0x10000)),  # not 16 bits
    ],
)
def test_bf16_rule_violations_name_the_field(field, kwargs):
    args = dict(cutpoints=[ONE, TWO], lut=[ONE, TWO], below=ONE, above=TWO, dtype="bf16")
    args |= kwargs
    with pytest.raises(TableError, match=f"^{field}"):
        Table(
            "f",
            np.array(args["cutpoints"], np.uint16),
            [1],
            np.array(args["lut"], np.uint16),
            args["below"],
            args["above"],
            args.get("precision", "fp32"),
            dtype=args["dtype"],
        )


def test_bf16_limits_just_inside_are_valid():
    """Width 1.5 * 2^127 and a neighbour difference of the same size are below FP32's overflow
    threshold; +-inf below/above are allowed; a width of 2^-126 keeps mul finite."""
    wide = np.array([0xFE80, 0x7F00], np.uint16)  # -2^126 .. 2^127
    t = Table("f", wide, [1], wide.copy(), BF16_NEG_INF, BF16_POS_INF, dtype="bf16")
    assert np.isfinite(t.mul[0]) and t.mul[0] > 0
    Table("f", np.array([0x0080, 0x0100], np.uint16), [1], _lut(2), ONE, ONE, dtype="bf16")


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda d: d.update(dtype="bfloat16"), "dtype"),
        (lambda d: d.update(dtype=16), "dtype"),
        (lambda d: d.update(numerics="1.1"), "numerics"),
        (lambda d: d.pop("numerics"), "numerics"),  # bf16 files exist from 1.3: required
        (lambda d: d.update(precision="fp16"), "precision"),
        (lambda d: d["cutpoints"].__setitem__(1, "7fc0"), "cutpoints"),
        (lambda d: d["lut"].__setitem__(1, "ff80"), "lut"),
        (lambda d: d.update(below="7f81"), "below"),
    ],
)
def test_bf16_file_rejections_name_the_field(change, field):
    d = _bf16().to_json_dict()
    change(d)
    with pytest.raises(TableError, match=f"^{field}"):
        Table.from_json_dict(d)


def test_fp16_file_with_bf16_numerics_or_dtype_is_rejected():
    d = table_from_cutpoints("silu", np.array([0xC400, 0x3C00], np.uint16), [2]).to_json_dict()
    with pytest.raises(TableError, match="^numerics"):
        Table.from_json_dict({**d, "numerics": "1.3"})
    with pytest.raises(TableError, match="^numerics"):  # bf16 dtype with the fp16 version
        Table.from_json_dict({**d, "dtype": "bf16"})


def test_copies_keep_the_dtype():
    t = _bf16()
    assert t.with_lut(t.lut).dtype == "bf16"
    assert t.with_precision("fp32").dtype == "bf16"
    with pytest.raises(TableError, match="^precision"):
        t.with_precision("fp16")
