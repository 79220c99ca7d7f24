"""Strict parsing of table files and layout arguments: exactly the documented forms.

Loose hex (``0x``, sign, whitespace, ``_``, Unicode digits), duplicate keys,
``version: true``, odd JSON types, NaN/Infinity, oversized and non-regular files are
refused with a one-line TableError naming the field or the path; every shipped table
still loads.
"""

import json
import os
from pathlib import Path
import threading

import numpy as np
import pytest

import nli
from nli.grid import parse_f16_hex, parse_f32_hex
from nli.solver import Layout
from nli.table import (
    MAX_TABLE_FILE_BYTES,
    TableError,
    load_table,
    save_table,
    table_from_cutpoints,
)

TABLES = sorted((Path(nli.__file__).parent / "tables").glob("*.json"))


@pytest.fixture(scope="module")
def good():
    c = np.array([1.0, 1.5, 2.0], dtype=np.float16).view(np.uint16)
    return table_from_cutpoints("silu", c, [1, 4], objective="paper").to_json_dict()


def _write(tmp_path, d, raw=None):
    p = tmp_path / "t.json"
    p.write_text(raw if raw is not None else json.dumps(d))
    return p


def _rejects(p, match):
    with pytest.raises(TableError, match=match) as e:
        load_table(p)
    assert "\n" not in str(e.value) and len(str(e.value)) < 300 + len(str(p))


def test_every_shipped_table_loads():
    assert len(TABLES) >= 10
    for p in TABLES:
        t = load_table(p)
        if p.stem.endswith("_bf16"):  # numerics §13: binade layouts (tests/test_bf16_defaults.py)
            assert t.dtype == "bf16"
        else:
            assert t.dtype == "fp16" and t.entries == 259


@pytest.mark.parametrize(
    "text",
    [
        "0x3c",
        "+3c0",
        "3c0 ",
        " 3c0",
        "3c_0",
        "٣c00",
        "３c00",
        "3c00\n",
        "-3c0",
        "3C0g",
        "",
        "3c000",
    ],
)
def test_loose_hex_is_rejected(text):
    with pytest.raises(ValueError, match="cutpoints"):
        parse_f16_hex(text, "cutpoints")
    with pytest.raises(ValueError, match="mul"):
        parse_f32_hex(text + "0000", "mul")


def test_exact_hex_in_either_case_is_accepted():
    assert parse_f16_hex("3c00") == parse_f16_hex("3C00") == 0x3C00
    assert parse_f32_hex("3F800000") == np.float32(1.0)


@pytest.mark.parametrize(
    "field,value",
    [
        ("lut", "0x3c"),
        ("lut", " 3c0"),
        ("cutpoints", "+3c0"),
        ("mul", "0x3f8000"),
        ("below", "3c00 "),
    ],
)
def test_loose_hex_in_a_file_is_rejected_naming_the_field(tmp_path, good, field, value):
    d = json.loads(json.dumps(good))
    if isinstance(d[field], list):
        d[field][0] = value
    else:
        d[field] = value
    _rejects(_write(tmp_path, d), field)


def test_duplicate_keys_are_rejected(tmp_path, good):
    raw = json.dumps(good)[:-1] + ', "lut": ' + json.dumps(good["lut"]) + "}"
    _rejects(_write(tmp_path, None, raw), "duplicate key 'lut'")


@pytest.mark.parametrize(
    "field,value",
    [
        ("version", True),
        ("version", 1.0),
        ("version", "1"),
        ("function", ["silu"]),
        ("function", {"a": 1}),
        ("precision", ["fp32"]),
        ("precision", None),
        ("format", {"nli-table": 1}),
        ("bins", [1, True]),
        ("bins", [1, [4]]),
        ("bins", [1, 4.0]),
        ("bins", "14"),
        ("bins", {"0": 1}),
        ("base", [0, "1"]),
        ("base", [False, 1]),
        ("cutpoints", [[1], "3e00", "4000"]),
        ("lut", [15360] * 6),
        ("mul", [1.0, 2.0]),
        ("below", 0),
        ("above", None),
        ("above", ["7c00"]),
    ],
)
def test_odd_json_types_are_rejected_naming_the_field(tmp_path, good, field, value):
    d = dict(good)
    d[field] = value
    _rejects(_write(tmp_path, d), field)


@pytest.mark.parametrize("const", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_constants_are_rejected(tmp_path, good, const):
    raw = json.dumps(good)[:-1] + f', "cost": {const}' + "}"
    _rejects(_write(tmp_path, None, raw), const)


def test_a_table_with_non_finite_meta_is_not_written(tmp_path, good):
    t = table_from_cutpoints("silu", np.array([0x3C00, 0x4000], np.uint16), [2], cost=float("nan"))
    with pytest.raises(TableError, match="meta"):
        save_table(t, tmp_path / "t.json")
    assert not (tmp_path / "t.json").exists()


def test_deep_nesting_and_bad_utf8_are_one_line_errors(tmp_path, good):
    _rejects(
        _write(
            tmp_path, None, json.dumps(good)[:-1] + ', "x": ' + "[" * 100000 + "]" * 100000 + "}"
        ),
        "t.json",
    )
    p = tmp_path / "t.json"
    p.write_bytes(b'{"format": "\xff"}')
    _rejects(p, "UTF-8")


def test_oversized_table_file_is_refused_before_it_is_read(tmp_path, good):
    p = tmp_path / "t.json"
    with open(p, "wb") as fh:  # sparse: the size is what counts
        fh.truncate(MAX_TABLE_FILE_BYTES + 1)
    _rejects(p, r"t\.json: .*larger than the limit")


def test_non_regular_files_are_refused_without_hanging(tmp_path):
    _rejects(tmp_path, "not a regular file")  # a directory
    if os.path.exists("/dev/zero"):
        _rejects("/dev/zero", "/dev/zero: not a regular file")
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo.json"
        os.mkfifo(fifo)
        errors = []
        th = threading.Thread(
            target=lambda: errors.append(pytest.raises(TableError, load_table, fifo))
        )
        th.daemon = True
        th.start()
        th.join(10)
        assert not th.is_alive(), "loading a FIFO hung"
        assert "not a regular file" in str(errors[0].value)


def test_missing_file_is_named(tmp_path):
    _rejects(tmp_path / "nope.json", "nope.json: no such table file")


@pytest.mark.parametrize(
    "text",
    [
        "single:+5",
        "single: 5",
        "single:٥",
        "single:1_0",
        "single:65537",
        "single:99999999999",
        "two-level:4:65535",
        "two-level:100000:1",
        "two-level:-1:4",
        "two-level:4:0x20",
    ],
)
def test_layout_arguments_are_strict_and_bounded(text):
    with pytest.raises(ValueError, match="layout"):
        Layout.parse(text)


def test_largest_layouts_parse():
    assert Layout.parse("single:65536").entries == 65536
    assert Layout.parse("two-level:2:32766").entries == 65535
