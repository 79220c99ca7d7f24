"""Shared plumbing of the CLI fuzz tests (tests/test_fuzz_cli_*.py): hostile inputs to every
`nli` entry point that reads a file or takes a size.

For every example: exit code 0 or 2, no traceback, no death by a signal, no
hang, and after a failure nothing new in the output folder (no output, no
temp file). Inputs: table JSON (structure, integer extremes, strings, hex
forms), .npy arrays (dtypes, shapes, object arrays, truncation) and special
files (FIFO, /dev/zero, a directory), checkpoint configs (extreme and
wrong-typed values), GGUF headers (truncated, huge counts, wrong magic or
version, huge string lengths), numeric flags (NaN, negatives, huge).

Examples run through one long-lived driver process per test module (tests/fuzz_driver.py,
``nli.cli.main`` in-process, so torch/numba import once); a handful of cases
also run as real ``python -m nli.cli`` subprocesses. Hypothesis is
derandomized (reproducible in CI). Select with ``-m fuzz``.

The fixtures here (``driver``, ``work``, ``arrays``, ``shipped``) are module-scoped; a test module
uses one by binding it to the same name at its top level.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import select
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

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


@pytest.fixture(scope="module")
def arrays(work):
    d = work / "arrays"
    d.mkdir()
    x = np.linspace(-4, 4, 64).astype(np.float16).reshape(4, 16)
    np.save(d / "x.npy", x)
    np.save(d / "w.npy", np.ones(16, np.float16))
    return d


@pytest.fixture(scope="module")
def shipped():
    return {
        "silu": str(TABLES / "silu.json"),
        "exp": str(TABLES / "exp.json"),
        "recip": str(TABLES / "reciprocal_reduced.json"),
        "rsqrt": str(TABLES / "rsqrt_reduced.json"),
    }
