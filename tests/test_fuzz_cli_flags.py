"""Fuzzing the `nli` command line (tests/fuzz_cli_helpers.py has the rules): bad output locations
and numeric flags fail at once with exit 2; invalid values are refused.
"""

from __future__ import annotations

import shutil

import pytest

hypothesis = pytest.importorskip("hypothesis")
import fuzz_cli_helpers
from fuzz_cli_helpers import FUZZ, _fresh, check
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.fuzz

# the shared module-scoped fixtures (tests/fuzz_cli_helpers.py), found by name
driver = fuzz_cli_helpers.driver
work = fuzz_cli_helpers.work
shipped = fuzz_cli_helpers.shipped
arrays = fuzz_cli_helpers.arrays


@pytest.mark.parametrize(
    "target",
    [
        "",
        "adir",
        "adir/",
        "/proc/version",
        "/proc/nli-x/y.json",
        "fifo",
        "adir/missing/deeper/ok.json",
        "/",
        ".",
    ],
)
def test_output_locations_checked_before_work(driver, work, shipped, arrays, target):
    """A bad output location fails at once with exit 2 (a missing parent under a writable folder is
    fine)."""
    path = target if target.startswith("/") or target in ("", ".") else str(work / target)
    ok = (0, 2) if target == "adir/missing/deeper/ok.json" else (2,)
    out = _fresh(work)
    for argv in [
        ["table", "export", shipped["silu"], "--format", "c", "-o", path],
        ["sim", "elementwise", shipped["silu"], "--input", arrays / "x.npy", "--output", path],
        ["table", "report", shipped["silu"], "--json", path],
        ["sim", "cost", "--json", path],
        ["eval", "cost", "--model", "tiny", "--json", path],
        ["table", "build", "silu", "--layout", "single:3", "-q", "--domain", "0", "1", "-o", path],
        ["table", "build", "silu", "--layout", "single:3", "-q", "--domain", "0", "1"]
        + ["-o", str(work / "ck_out.json"), "--checkpoint", path],
    ]:
        check(driver, argv, out, ok=ok)
    shutil.rmtree(work / "adir" / "missing", ignore_errors=True)


BAD_NUMBERS = [
    "nan",
    "NaN",
    "-nan",
    "inf",
    "-inf",
    "1e999",
    "-1",
    "0",
    "-0",
    "1e400",
    "2e9",
    "1.5",
    "99999999999999999999999",
    "0x10",
    "",
    " ",
    "1_0",
]


@FUZZ
@given(
    flag=st.sampled_from(
        [
            ("sim", "cost", "--lanes"),
            ("sim", "cost", "--clock-ghz"),
            ("sim", "cost", "--n"),
            ("sim", "cost", "--rows"),
            ("sim", "cost", "--comparator-words"),
            ("eval", "cost", "--seq"),
            ("eval", "cost", "--lanes"),
            ("moe", "upcycle", "--experts"),
            ("moe", "upcycle", "--top-k"),
            ("moe", "upcycle", "--calib"),
            ("moe", "upcycle", "--seed"),
            ("moe", "grow", "--factor"),
            ("moe", "grow", "--dup-share"),
            ("moe", "grow", "--calib"),
            ("moe", "report", "--windows"),
            ("eval", "ppl", "--max-tokens"),
            ("eval", "ppl", "--window"),
            ("table", "build", "--stride"),
            ("table", "refine", "--radius"),
            ("table", "refine", "--sweeps"),
            ("sim", "rmsnorm", "--eps"),
            ("table", "report", "--domain"),
            ("data", "fetch", "--train-per-lang"),
            ("data", "fetch", "--max-chars"),
        ]
    ),
    value=st.sampled_from(BAD_NUMBERS),
)
def test_fuzz_numeric_flags(driver, work, shipped, arrays, flag, value):
    """Values a flag cannot mean fail at parse time (exit 2); values it can mean run (cheap cases
    only)."""
    ex = _fresh(work)
    *cmd, name = flag
    rest = {
        ("sim", "cost"): [],
        ("eval", "cost"): ["--model", "tiny"],
        ("moe", "upcycle"): ["--model", "tiny", "--method", "sparse", "-o", ex / "ck"],
        ("moe", "grow"): [ex / "no-such-ckpt", "-o", ex / "ck2"],
        ("moe", "report"): [ex / "no-such-ckpt"],
        ("eval", "ppl"): ["--model", ex / "no-such.gguf"],
        ("table", "build"): ["silu", "-o", ex / "t.json", "--domain", "1", "0"],
        ("table", "refine"): [ex / "no-such.json", "--output", ex / "r.json"],
        ("sim", "rmsnorm"): [
            "--rsqrt",
            shipped["rsqrt"],
            "--mode",
            "direct",
            "--weight",
            arrays / "w.npy",
            "--input",
            arrays / "x.npy",
            "--output",
            ex / "y.npy",
        ],
        ("table", "report"): [shipped["silu"]],
        ("data", "fetch"): ["--cache", ex / "no-cache", "--langs", "", "-o", ex / "d.json"],
    }[tuple(cmd)]
    extra = [value, value] if name == "--domain" else [value]
    check(driver, [*cmd, *rest, name, *extra], ex)


def test_invalid_values_are_refused(driver, work, shipped, arrays):
    ex = _fresh(work)
    cases = [
        ["moe", "grow", "x", "--dup-share", "nan", "-o", ex / "o"],
        ["moe", "grow", "x", "--dup-share", "-0.5", "-o", ex / "o"],
        [
            "sim",
            "rmsnorm",
            "--rsqrt",
            shipped["rsqrt"],
            "--mode",
            "direct",
            "--weight",
            arrays / "w.npy",
            "--eps",
            "-1e-5",
            "--input",
            arrays / "x.npy",
            "--output",
            ex / "y.npy",
        ],
        [
            "moe",
            "upcycle",
            "--model",
            "tiny",
            "--method",
            "sparse",
            "--experts",
            "2",
            "--top-k",
            "3",
            "-o",
            ex / "c",
        ],
        [
            "moe",
            "upcycle",
            "--model",
            "tiny",
            "--method",
            "sparse",
            "--experts",
            "0",
            "-o",
            ex / "c",
        ],
        ["sim", "cost", "--clock-ghz", "nan"],
        ["table", "report", shipped["silu"], "--domain", "nan", "1"],
        ["demo", "--only", "no-such-section", "--out", ex / "demo"],
        ["table", "build", "reciprocal", "--domain", "-1", "1", "-o", ex / "t.json"],
        ["table", "build", "rsqrt", "--domain", "0", "1", "-o", ex / "t.json"],
        ["table", "build", "rsqrt", "--domain", "-2", "-1", "-o", ex / "t.json"],
        ["table", "build", "silu", "--layout", "single:99999999999", "-o", ex / "t.json"],
        ["table", "build", "silu", "--layout", "two-level:9999999:9999999", "-o", ex / "t.json"],
    ]
    for argv in cases:
        assert check(driver, argv, ex) == 2, argv
    rc, err = driver.run(["demo", "--only", "nope"])
    assert "nli" in err and "moe" in err  # names the known sections
