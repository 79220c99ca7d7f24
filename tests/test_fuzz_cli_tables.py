"""Fuzzing the `nli` commands that read a table file (tests/fuzz_cli_helpers.py has the rules):
broken JSON structure, integer extremes in every numeric field, hex forms, special paths.
"""

from __future__ import annotations

import json
from pathlib import Path
import shutil

import pytest

hypothesis = pytest.importorskip("hypothesis")
import fuzz_cli_helpers
from fuzz_cli_helpers import (
    FUZZ,
    INT_EXTREME_VALUES,
    INT_EXTREMES,
    SPECIAL_PATHS,
    TABLES,
    _fresh,
    check,
)
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.fuzz

# the shared module-scoped fixtures (tests/fuzz_cli_helpers.py), found by name
driver = fuzz_cli_helpers.driver
work = fuzz_cli_helpers.work
arrays = fuzz_cli_helpers.arrays


BASE_TABLE = json.loads((TABLES / "silu.json").read_text())
TABLE_KEYS = [
    "format",
    "version",
    "function",
    "precision",
    "cutpoints",
    "bins",
    "base",
    "mul",
    "lut",
    "below",
    "above",
]


HEX_FORMS = st.sampled_from(
    [
        "3c00",
        "3C00",
        "0x3c00",
        "0X3C00",
        " 3c00",
        "3c00 ",
        "+3c0",
        "-3c0",
        "3c_0",
        "",
        "zz",
        "3c000",
        "03c00",
        "７ｃ００",
        "1e3",
        "nan",
        "inf",
        "7c00",
        "7e00",
        "fc00",
        "ffff",
        "ffffffff",
        "7f800000",
        "7fc00000",
        "00000000",
        "3f800000",
    ]
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | INT_EXTREMES
    | st.floats(allow_nan=True, allow_infinity=True)
    | HEX_FORMS
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def table_texts(draw):
    """The text of a table file: the shipped silu table with a few fields broken."""
    d = json.loads(json.dumps(BASE_TABLE))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(TABLE_KEYS + ["bins", "base", "bins", "lut", "cutpoints"]))
        how = draw(
            st.sampled_from(
                [
                    "value",
                    "delete",
                    "entry",
                    "entry_int",
                    "entry_int",
                    "truncate",
                    "extend",
                    "consistent",
                ]
            )
        )
        if (
            how == "consistent"
        ):  # bins[i] = an extreme, base recomputed to match: reaches the deeper checks
            i = (
                draw(st.integers(0, len(d["bins"]) - 1))
                if isinstance(d.get("bins"), list) and d["bins"]
                else None
            )
            if i is not None and all(isinstance(b, int) for b in d["bins"]):
                d["bins"][i] = draw(INT_EXTREMES)
                d["base"] = [sum(d["bins"][:j]) for j in range(len(d["bins"]))]
        elif how == "delete":
            d.pop(key, None)
        elif how == "value" or not isinstance(d.get(key), list) or not d.get(key):
            d[key] = draw(JSON_VALUES)
        elif how == "entry":
            d[key][draw(st.integers(0, len(d[key]) - 1))] = draw(HEX_FORMS | JSON_VALUES)
        elif how == "entry_int":
            d[key][draw(st.integers(0, len(d[key]) - 1))] = draw(INT_EXTREMES)
        elif how == "truncate":
            d[key] = d[key][: draw(st.integers(0, len(d[key])))]
        else:
            d[key] = d[key] + d[key][: draw(st.integers(1, 3))]
    text = json.dumps(d, allow_nan=True)
    form = draw(st.sampled_from(["plain", "plain", "dupkey", "cut", "nested", "bom", "latin1"]))
    if form == "dupkey":  # a second "bins" wins in json.load
        text = text[:-1] + ', "bins": [1, 1]}'
    elif form == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    elif form == "nested":
        n = draw(st.sampled_from([10, 1000, 100_000]))
        text = text[:-1] + ', "meta": ' + "[" * n + "]" * n + "}"
    elif form == "bom":
        text = "\ufeff" + text
    raw = text.encode("latin-1", "replace") if form == "latin1" else text.encode()
    if form == "latin1":
        raw = raw.replace(b'"silu"', b'"s\xe9lu"')
    return raw


def _table_commands(tbl: str, out: Path, arrays: Path):
    return [
        ["table", "export", tbl, "--format", "c", "-o", out / "t.h"],
        ["table", "export", tbl, "--format", "hex", "-o", out / "hexdir"],
        ["table", "export", tbl, "--format", "npz", "-o", out / "t.npz"],
        ["sim", "elementwise", tbl, "--input", arrays / "x.npy", "--output", out / "y.npy"],
        ["table", "report", tbl, "--domain", "-1", "1", "--json", out / "r.json"],
        ["export", "onnx-op", tbl, "-o", out / "op.onnx"],
        ["hw", "rtl", tbl, "-o", out / "rtl"],
    ]


@settings(FUZZ, max_examples=80)
@given(raw=table_texts())
def test_fuzz_table_files(driver, work, arrays, raw):
    ex = _fresh(work)
    tbl = ex / "table.json"
    tbl.write_bytes(raw)
    out = ex / "out"
    out.mkdir()
    for argv in _table_commands(str(tbl), out, arrays):
        if check(driver, argv, out) == 0:
            shutil.rmtree(out)
            out.mkdir()


INT_LIST = [*INT_EXTREME_VALUES, 1.0, 1e300, True]


@pytest.mark.parametrize(
    "field",
    ["bins", "bins_consistent", "base", "below", "above", "lut", "cutpoints", "mul", "version"],
)
def test_table_integer_extremes(driver, work, arrays, field):
    """Every integer extreme in every numeric field, systematically (the random search rarely hits
    them)."""
    ex = _fresh(work)
    out = ex / "out"
    out.mkdir()
    failures = []
    for v in INT_LIST:
        d = json.loads(json.dumps(BASE_TABLE))
        if field == "bins_consistent":
            d["bins"][3] = v
            if isinstance(v, int):
                d["base"] = [sum(d["bins"][:j]) for j in range(len(d["bins"]))]
        elif isinstance(d[field], list):
            d[field][3] = v
        else:
            d[field] = v
        tbl = ex / "t.json"
        tbl.write_text(json.dumps(d))
        for argv in (
            ["sim", "elementwise", tbl, "--input", arrays / "x.npy", "--output", out / "y.npy"],
            ["table", "export", tbl, "--format", "c", "-o", out / "t.h"],
        ):
            try:
                if check(driver, argv, out) == 0:
                    shutil.rmtree(out)
                    out.mkdir()
            except (AssertionError, pytest.fail.Exception) as e:
                lines = [ln for ln in str(e).splitlines() if ln.strip()]
                failures.append(
                    f"{field}={v!r} {argv[0]} {argv[1]}: {lines[0][:60]}... {lines[-1][-200:]}"
                )
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("special", SPECIAL_PATHS)
def test_table_special_paths(driver, work, arrays, special):
    path = special if special.startswith("/") or special == "" else str(work / special)
    out = _fresh(work)
    for argv in _table_commands(path, out, arrays):
        assert check(driver, argv, out, mention=path or None) == 2
