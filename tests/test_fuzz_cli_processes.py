"""Hostile inputs to real `python -m nli.cli` subprocesses (tests/fuzz_cli_helpers.py has the
rules): no hang, no signal, one-line errors; SIGTERM exits cleanly.
"""

from __future__ import annotations

import os
import subprocess
import sys

import fuzz_cli_helpers
from fuzz_cli_helpers import ENV, EXAMPLE_TIMEOUT_S, ROOT, TABLES, _fresh, _listing
import pytest

pytestmark = pytest.mark.fuzz

# the shared module-scoped fixtures (tests/fuzz_cli_helpers.py), found by name
work = fuzz_cli_helpers.work


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
