"""Fuzzing every `nli` entry point that reads a file or takes a size with hostile inputs.

For every example: exit code 0 or 2, no traceback, no death by a signal, no
hang, and after a failure nothing new in the output folder (no output, no
temp file). Inputs: table JSON (structure, integer extremes, strings, hex
forms), .npy arrays (dtypes, shapes, object arrays, truncation) and special
files (FIFO, /dev/zero, a directory), checkpoint configs (extreme and
wrong-typed values), GGUF headers (truncated, huge counts, wrong magic or
version, huge string lengths), numeric flags (NaN, negatives, huge).

Examples run through one long-lived driver process (tests/fuzz_driver.py,
``nli.cli.main`` in-process, so torch/numba import once); a handful of cases
also run as real ``python -m nli.cli`` subprocesses. Hypothesis is
derandomized (reproducible in CI). Select with ``-m fuzz``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import select
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.fuzz

ROOT = Path(__file__).resolve().parents[1]
TABLES = ROOT / "nli" / "tables"
EXAMPLE_TIMEOUT_S = 60  # one example; a hang (a FIFO read) fails instead of blocking CI
DRIVER_ADDRESS_SPACE = (
    12 << 30
)  # RLIMIT_AS of the driver: a runaway read fails instead of OOM-killing CI
# the driver refuses models above 2 GiB, so a bug in a size check cannot take the CI machine down
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    "NLI_MAX_ALLOC_BYTES": str(2 << 30),
    "PYTHONFAULTHANDLER": "1",
}
FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ----------------------------------------------------------------------------- the driver
class Driver:
    """A `python tests/fuzz_driver.py` process: run(argv) -> (rc, stderr)."""

    def __init__(self):
        self.proc = None

    def _start(self):
        def limit():
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (DRIVER_ADDRESS_SPACE, DRIVER_ADDRESS_SPACE))

        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "fuzz_driver.py")],
            cwd=ROOT,
            env=ENV,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            preexec_fn=limit,
        )

    def run(self, argv: list[str]) -> tuple[int, str]:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.proc.stdin.write(json.dumps(argv) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], EXAMPLE_TIMEOUT_S)
        if not ready:
            self.close()
            pytest.fail(f"nli {' '.join(argv)}: no answer in {EXAMPLE_TIMEOUT_S} s (hang)")
        line = self.proc.stdout.readline()
        if not line:  # the driver died: a signal (segfault, OOM kill) or an abort
            rc = self.proc.wait()
            err = self.proc.stderr.read()[-3000:]
            self.proc = None
            pytest.fail(f"nli {' '.join(argv)}: the process died with return code {rc}\n{err}")
        res = json.loads(line)
        if res["escaped"]:
            pytest.fail(f"nli {' '.join(argv)}: exception escaped main():\n{res['escaped']}")
        return res["rc"], res["err"]

    def close(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture(scope="module")
def driver():
    d = Driver()
    yield d
    d.close()


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def check(
    driver: Driver, argv: list[str], out_dir: Path, ok=(0, 2), mention: str | None = None
) -> int:
    """Run ``argv``; assert exit 0/2, no traceback, one-line error, nothing left in ``out_dir`` on
    failure; ``mention``: text the error must contain (e.g. the bad path)."""
    before = _listing(out_dir)
    rc, err = driver.run([str(a) for a in argv])
    assert rc in ok, f"nli {' '.join(map(str, argv))}: exit {rc}\n{err}"
    assert "Traceback" not in err, f"nli {' '.join(map(str, argv))}: traceback\n{err}"
    if rc == 2:
        last = err.strip().splitlines()[-1] if err.strip() else ""
        assert last.startswith("nli: error: "), (
            f"nli {' '.join(map(str, argv))}: no one-line error\n{err}"
        )
        assert mention is None or mention in last, (
            f"nli {' '.join(map(str, argv))}: error does not name {mention!r}"
        )
        assert "out of memory" not in last, (
            f"nli {' '.join(map(str, argv))}: ran out of memory: {last}"
        )
        new = _listing(out_dir) - before
        assert not new, f"nli {' '.join(map(str, argv))}: failed but left {sorted(new)}"
    return rc


@pytest.fixture(scope="module")
def work():
    d = Path(tempfile.mkdtemp(prefix="nli-fuzz-"))
    os.mkfifo(d / "fifo")
    (d / "adir").mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _fresh(work: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=work, prefix="ex-"))


SPECIAL_PATHS = ["fifo", "/dev/zero", "/dev/null", "adir", "missing.file", "adir/../missing/x", ""]


# ----------------------------------------------------------------------------- tables
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
# integer extremes: zero, small, powers of two and their neighbours, past int64/uint64
INT_EXTREME_VALUES = [
    0,
    -1,
    1,
    2,
    31,
    32,
    33,
    2**15,
    2**16,
    2**31 - 1,
    2**31,
    2**32,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63),
    -(2**64),
    10**30,
]
INT_EXTREMES = st.sampled_from(INT_EXTREME_VALUES)
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


@pytest.fixture(scope="module")
def arrays(work):
    d = work / "arrays"
    d.mkdir()
    x = np.linspace(-4, 4, 64).astype(np.float16).reshape(4, 16)
    np.save(d / "x.npy", x)
    np.save(d / "w.npy", np.ones(16, np.float16))
    return d


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


# ----------------------------------------------------------------------------- arrays
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


@pytest.fixture(scope="module")
def shipped():
    return {
        "silu": str(TABLES / "silu.json"),
        "exp": str(TABLES / "exp.json"),
        "recip": str(TABLES / "reciprocal_reduced.json"),
        "rsqrt": str(TABLES / "rsqrt_reduced.json"),
    }


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


# ----------------------------------------------------------------------------- output locations
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
    ]:
        check(driver, argv, out, ok=ok)
    shutil.rmtree(work / "adir" / "missing", ignore_errors=True)


# ----------------------------------------------------------------------------- numeric flags
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


# ----------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def checkpoint(driver, work):
    ck = work / "ck_base"
    rc, err = driver.run(
        [
            "moe",
            "upcycle",
            "--model",
            "tiny",
            "--method",
            "sparse",
            "--experts",
            "4",
            "--top-k",
            "2",
            "-o",
            str(ck),
        ]
    )
    assert rc == 0, err
    return ck


LLAMA_KEYS = [
    "vocab_size",
    "dim",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "hidden_dim",
    "norm_eps",
    "rope_theta",
    "max_seq_len",
    "tie_embeddings",
    "bogus_key",
]
MOE_KEYS = [
    "layers",
    "num_experts",
    "top_k",
    "expert_hidden_dim",
    "renormalize",
    "principal",
    "residual_scale",
    "select_on",
    "method",
    "options",
    "bogus_key",
]
CONFIG_VALUES = (
    INT_EXTREMES
    | st.sampled_from(
        [
            10**6,
            10**9,
            10**12,
            1.5,
            -0.0,
            1e308,
            "8",
            None,
            True,
            [],
            {},
            [0, 1],
            [1, 0],
            [-1],
            [10**9],
        ]
    )
    | st.floats(allow_nan=True, allow_infinity=True)
)


@FUZZ
@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(["llama", "moe", "top", "provenance"]),
            st.sampled_from(LLAMA_KEYS + MOE_KEYS + ["format", "version"]),
            CONFIG_VALUES,
        ),
        min_size=1,
        max_size=3,
    )
)
def test_fuzz_checkpoint_configs(driver, work, checkpoint, edits):
    ex = _fresh(work)
    ck = ex / "ck"
    shutil.copytree(checkpoint, ck)
    cfg = json.loads((ck / "config.json").read_text())
    for where, key, value in edits:
        target = cfg if where == "top" else cfg.setdefault(where, {})
        if isinstance(target, dict):
            target[key] = value
        else:
            cfg[where] = value
    (ck / "config.json").write_text(json.dumps(cfg, allow_nan=True))
    out = ex / "out"
    out.mkdir()
    check(driver, ["eval", "cost", "--model", ck, "--json", out / "c.json"], out)
    check(driver, ["moe", "grow", ck, "--factor", "2", "-o", out / "grown"], out)
    check(
        driver,
        [
            "eval",
            "ppl",
            "--model",
            ck,
            "--max-tokens",
            "12",
            "--window",
            "6",
            "--ops",
            "silu",
            "--mode",
            "fp16",
            "--no-progress",
        ],
        out,
    )


@pytest.mark.parametrize(
    "damage",
    [
        "empty",
        "truncated",
        "garbage",
        "pickle",
        "dir",
        "fifo",
        "wrong_dtype",
        "not_dict",
        "no_weights",
        "config_list",
        "config_deep",
        "tokenizer",
    ],
)
def test_damaged_checkpoints(driver, work, checkpoint, damage):
    import torch

    ex = _fresh(work)
    ck = ex / "ck"
    shutil.copytree(checkpoint, ck)
    w = ck / "weights.pt"
    if damage == "empty":
        w.write_bytes(b"")
    elif damage == "truncated":
        w.write_bytes(w.read_bytes()[:5000])
    elif damage == "garbage":
        w.write_bytes(os.urandom(4096))
    elif damage == "pickle":  # a pickle that would run code with weights_only=False
        import pickle

        w.write_bytes(pickle.dumps(os.system))
    elif damage in ("dir", "fifo"):
        w.unlink()
        w.mkdir() if damage == "dir" else os.mkfifo(w)
    elif damage in ("wrong_dtype", "not_dict"):
        state = torch.load(w, weights_only=True)
        obj = (
            {k: v.to(torch.int32) for k, v in state.items()}
            if damage == "wrong_dtype"
            else [1, 2, 3]
        )
        torch.save(obj, w)
    elif damage == "no_weights":
        w.unlink()
    elif damage == "config_list":
        (ck / "config.json").write_text("[1, 2]")
    elif damage == "config_deep":
        (ck / "config.json").write_text("[" * 200_000 + "]" * 200_000)
    elif damage == "tokenizer":
        (ck / "tokenizer.json").write_text('{"model": 5}')
    out = ex / "out"
    out.mkdir()
    assert check(driver, ["moe", "grow", ck, "-o", out / "g"], out) == 2
    assert (
        check(driver, ["eval", "ppl", "--model", ck, "--max-tokens", "8", "--no-progress"], out)
        == 2
    )


# ----------------------------------------------------------------------------- GGUF
def _gguf_str(s: bytes, declared: int | None = None) -> bytes:
    return struct.pack("<Q", len(s) if declared is None else declared) + s


@st.composite
def gguf_bytes(draw):
    magic = draw(
        st.sampled_from([b"GGUF", b"GGUF", b"GGUF", b"GGML", b"FUGG", b"\x00\x00\x00\x00"])
    )
    version = draw(st.sampled_from([3, 3, 2, 1, 0, 4, 2**32 - 1]))
    n_tensors = draw(st.sampled_from([0, 1, 2, 2**31, 2**63, 2**64 - 1]))
    n_kv = draw(st.sampled_from([0, 1, 3, 2**32, 2**63, 2**64 - 1]))
    body = b""
    for _ in range(draw(st.integers(0, 3))):
        key = draw(
            st.sampled_from(
                [
                    b"general.architecture",
                    b"llama.block_count",
                    b"llama.context_length",
                    b"llama.embedding_length",
                    b"tokenizer.ggml.tokens",
                    b"x",
                ]
            )
        )
        body += _gguf_str(key, draw(st.sampled_from([None, None, 2**40, 2**64 - 1, 0])))
        vtype = draw(st.sampled_from([4, 8, 9, 10, 12, 13, 2**32 - 1]))
        body += struct.pack("<I", vtype)
        if vtype == 8:
            body += _gguf_str(b"llama", draw(st.sampled_from([None, 2**33, 2**64 - 1])))
        elif vtype == 9:
            body += struct.pack(
                "<IQ",
                draw(st.sampled_from([8, 4, 9, 99])),
                draw(st.sampled_from([0, 3, 2**40, 2**64 - 1])),
            )
        else:
            body += struct.pack("<Q", draw(st.sampled_from([0, 1, 2**31, 2**64 - 1])))
    raw = magic + struct.pack("<I", version % 2**32) + struct.pack("<QQ", n_tensors, n_kv) + body
    cut = draw(st.integers(0, len(raw)))
    return raw[:cut] if draw(st.booleans()) else raw


@FUZZ
@given(raw=gguf_bytes())
def test_fuzz_gguf_headers(driver, work, raw):
    ex = _fresh(work)
    g = ex / "m.gguf"
    g.write_bytes(raw)
    out = ex / "out"
    out.mkdir()
    assert (
        check(driver, ["eval", "ppl", "--model", g, "--max-tokens", "8", "--no-progress"], out) == 2
    )
    assert (
        check(driver, ["moe", "upcycle", "--model", g, "--method", "sparse", "-o", out / "ck"], out)
        == 2
    )


def _write_llama_gguf(path: Path, meta: dict, tensors: bool = True) -> None:
    gguf = pytest.importorskip("gguf")
    w = gguf.GGUFWriter(str(path), "llama")
    for k, v in meta.items():
        if isinstance(v, str):
            w.add_string(k, v)
        elif isinstance(v, float):
            w.add_float32(k, v)
        else:
            w.add_uint64(k, v) if v >= 2**32 else w.add_uint32(k, v)
    if tensors:
        w.add_tensor("token_embd.weight", np.zeros((8, 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


GGUF_META = {
    "llama.block_count": 2,
    "llama.context_length": 64,
    "llama.embedding_length": 8,
    "llama.feed_forward_length": 16,
    "llama.attention.head_count": 2,
    "llama.attention.head_count_kv": 1,
    "llama.attention.layer_norm_rms_epsilon": 1e-5,
    "llama.vocab_size": 8,
}


@FUZZ
@given(
    key=st.sampled_from(sorted(GGUF_META)),
    value=st.sampled_from([0, 1, 3, 2**20, 2**31, 2**40, 2**63, 2**64 - 1, -1.0, 1e38, "x"]),
)
def test_fuzz_gguf_metadata_values(driver, work, key, value):
    """A well-formed GGUF whose metadata asks for absurd sizes: refused before allocating."""
    ex = _fresh(work)
    g = ex / "m.gguf"
    meta = dict(GGUF_META)
    meta[key] = float(value) if key.endswith("epsilon") and not isinstance(value, str) else value
    if isinstance(meta[key], float) and not key.endswith("epsilon"):
        meta[key] = int(abs(meta[key])) % 2**64
    _write_llama_gguf(g, meta)
    out = ex / "out"
    out.mkdir()
    assert (
        check(driver, ["eval", "ppl", "--model", g, "--max-tokens", "8", "--no-progress"], out) == 2
    )


# ----------------------------------------------------------------------------- real subprocesses
def _cli(args, timeout=EXAMPLE_TIMEOUT_S, **kw):
    return subprocess.run(
        [sys.executable, "-m", "nli.cli", *map(str, args)],
        cwd=ROOT,
        env=ENV,
        timeout=timeout,
        capture_output=True,
        text=True,
        **kw,
    )


@pytest.mark.parametrize(
    "args",
    [
        [
            "sim",
            "elementwise",
            str(TABLES / "silu.json"),
            "--input",
            "{w}/fifo",
            "--output",
            "{w}/o.npy",
        ],
        [
            "sim",
            "elementwise",
            str(TABLES / "silu.json"),
            "--input",
            "/dev/zero",
            "--output",
            "{w}/o.npy",
        ],
        ["eval", "ppl", "--model", "tiny", "--text", "/dev/zero", "--no-progress"],
        ["eval", "ppl", "--model", "{w}/fifo", "--no-progress"],
        ["eval", "ppl", "--model", "{w}/fifo.gguf", "--no-progress"],
        [
            "moe",
            "upcycle",
            "--model",
            "tiny",
            "--method",
            "sparse",
            "--experts",
            "65536",
            "-o",
            "{w}/big",
        ],
    ],
)
def test_real_process_no_hang_no_signal(work, args):
    if not (work / "fifo.gguf").exists():
        os.mkfifo(work / "fifo.gguf")
    before = _listing(work)
    r = _cli([a.format(w=work) for a in args])
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    assert _listing(work) == before


def test_real_process_sigterm_exits_cleanly(work):
    """SIGTERM during a long computation: exit 143, one line, no output and no temp file."""
    ex = _fresh(work)
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nli.cli",
            "table",
            "build",
            "exp",
            "--layout",
            "single:400",
            "-q",
            "-o",
            str(ex / "t.json"),
        ],
        cwd=ROOT,
        env=ENV,
        stderr=subprocess.PIPE,
        text=True,
    )
    import time

    time.sleep(8)  # imports done, solving
    p.terminate()
    err = p.communicate(timeout=60)[1]
    assert p.returncode in (143, 0), err  # 0 only if the solve finished first
    assert "Traceback" not in err
    if p.returncode == 143:
        assert list(ex.iterdir()) == []
