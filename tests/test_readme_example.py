"""The README's Python example runs as written (tiny model, thinned solve: a few seconds)."""

import os
from pathlib import Path
import re
import subprocess
import sys

ROOT = Path(__file__).resolve().parent.parent


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_has_one_python_example_of_at_most_fifteen_lines():
    blocks = python_blocks((ROOT / "README.md").read_text())
    assert len(blocks) == 1
    assert len(blocks[0].strip().splitlines()) <= 15


def test_readme_python_example_runs(tmp_path):
    code = python_blocks((ROOT / "README.md").read_text())[0]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    # the unit's SiLU of [-4, -1, 0, 0.5, 3] (8 pieces on [-8, 8]) is within 0.05 of the exact
    # values
    got = [float(v) for v in lines[0].strip("[]").split()]
    exact = [-0.07194, -0.26894, 0.0, 0.31123, 2.85772]
    assert len(got) == 5 and all(abs(g - e) < 0.05 for g, e in zip(got, exact)), lines[0]
    change = float(re.search(r"[-+0-9.e]+", lines[-1].replace("tensor(", "")).group())
    assert 0 < change < 1, lines[-1]
