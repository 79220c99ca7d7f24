"""Fuzzing the `nli` commands that read data files (tests/fuzz_cli_helpers.py has the rules):
.npy arrays (dtypes, shapes, object arrays, truncation), text files, special paths.
"""

from __future__ import annotations

from pathlib import Path
import shutil

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
import fuzz_cli_helpers
from fuzz_cli_helpers import FUZZ, SPECIAL_PATHS, _fresh, check
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.fuzz

# the shared module-scoped fixtures (tests/fuzz_cli_helpers.py), found by name
driver = fuzz_cli_helpers.driver
work = fuzz_cli_helpers.work
shipped = fuzz_cli_helpers.shipped


DTYPES = [
    "float16",
    "uint16",
    "<u2",
    ">u2",
    ">f2",
    "float32",
    "float64",
    "int16",
    "int8",
    "bool",
    "complex64",
    "U3",
    "S2",
    "V2",
    "object",
    "datetime64[s]",
    [("a", "<u2")],
    [("a", "<f2"), ("b", "<u2")],
]


@st.composite
def npy_bytes(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(
        st.sampled_from([(), (0,), (1,), (16,), (4, 16), (2, 0), (0, 16), (1, 1, 1, 16), (3, 5)])
    )
    n = int(np.prod(shape))
    if dtype == np.dtype(object):
        a = np.empty(shape, dtype=object)
        for i in range(n):
            a.flat[i] = draw(st.sampled_from([1, "x", None, (1, 2)]))
    else:
        a = np.zeros(shape, dtype)
        if n and dtype.kind in "uif":
            vals = draw(st.lists(st.integers(0, 0xFFFF), min_size=n, max_size=n))
            a = (
                np.array(vals, dtype=np.uint16)
                .view(np.float16)
                .astype(dtype, copy=False)
                .reshape(shape)
                if dtype.kind == "f"
                else np.array(vals, dtype=np.uint64).astype(dtype).reshape(shape)
            )
    import io

    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    raw = buf.getvalue()
    cut = draw(st.sampled_from(["none", "none", "body", "header", "magic", "fortran"]))
    if cut == "body" and len(raw) > 130:
        raw = raw[: draw(st.integers(128, len(raw) - 1))]
    elif cut == "header":
        raw = raw[: draw(st.integers(0, 127))]
    elif cut == "magic":
        raw = b"\x93NUMPX" + raw[6:]
    elif cut == "fortran":
        raw = raw.replace(b"'fortran_order': False", b"'fortran_order': 1e999")
    return raw


def _array_commands(tables: dict, a: str, out: Path):
    return [
        ["sim", "elementwise", tables["silu"], "--input", a, "--output", out / "y.npy"],
        [
            "sim",
            "softmax",
            "--exp",
            tables["exp"],
            "--recip",
            tables["recip"],
            "--mode",
            "reduced",
            "--input",
            a,
            "--output",
            out / "y.npy",
        ],
        [
            "sim",
            "rmsnorm",
            "--rsqrt",
            tables["rsqrt"],
            "--mode",
            "reduced",
            "--weight",
            a,
            "--eps",
            "1e-5",
            "--input",
            a,
            "--output",
            out / "y.npy",
        ],
    ]


@FUZZ
@given(raw=npy_bytes())
def test_fuzz_npy_arrays(driver, work, shipped, raw):
    ex = _fresh(work)
    a = ex / "a.npy"
    a.write_bytes(raw)
    out = ex / "out"
    out.mkdir()
    for argv in _array_commands(shipped, str(a), out):
        if check(driver, argv, out) == 0:
            shutil.rmtree(out)
            out.mkdir()


@pytest.mark.parametrize("special", SPECIAL_PATHS)
def test_array_special_paths(driver, work, shipped, special):
    path = special if special.startswith("/") or special == "" else str(work / special)
    out = _fresh(work)
    for argv in _array_commands(shipped, path, out):
        assert check(driver, argv, out, mention=path or None) == 2


def test_text_special_paths(driver, work):
    out = _fresh(work)
    for special in SPECIAL_PATHS:
        path = special if special.startswith("/") or special == "" else str(work / special)
        assert (
            check(
                driver,
                [
                    "eval",
                    "ppl",
                    "--model",
                    "tiny",
                    "--text",
                    path,
                    "--max-tokens",
                    "8",
                    "--no-progress",
                    "--json",
                    out / "r.json",
                ],
                out,
                mention=path or None,
            )
            == 2
        )


@FUZZ
@given(
    raw=st.binary(max_size=64)
    | st.text(max_size=32).map(lambda s: s.encode("utf-8", "surrogatepass"))
)
def test_fuzz_text_files(driver, work, raw):
    ex = _fresh(work)
    (ex / "t.txt").write_bytes(raw)
    out = ex / "out"
    out.mkdir()
    check(
        driver,
        [
            "eval",
            "ppl",
            "--model",
            "tiny",
            "--text",
            ex / "t.txt",
            "--max-tokens",
            "16",
            "--window",
            "8",
            "--ops",
            "silu",
            "--mode",
            "fp16",
            "--no-progress",
            "--json",
            out / "r.json",
        ],
        out,
    )
