"""nli/kernel_stamps.py: every cached kernel's file carries the hash of the jitted code it
compiles in, so that an edit to that code alone cannot leave Numba's cache serving the old
code (Numba keys a cache entry on its own file's content only)."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

from nli.kernel_stamps import STAMP, expected_stamps, stale, update


def test_the_repositorys_stamps_are_current():
    assert stale() == [], "run: python -m nli.kernel_stamps"
    names = {p.name for p in expected_stamps()}
    assert {"dp_layer.py", "dp_layer_back.py", "objective.py", "unit.py"} <= names
    assert "grid_sums.py" not in names  # imports no other jitted module


LEAF = "import numba\n\n\n@numba.njit\ndef g():\n    return {}\n"
USER = (
    "import numba\n\nfrom .leaf import g\n\n\n"
    "@numba.njit(cache=True)\ndef f():\n    return g() + 1\n"
)


def _run(root: Path, cache: Path) -> int:
    env = {**os.environ, "PYTHONPATH": str(root), "NUMBA_CACHE_DIR": str(cache)}
    code = "from nli.user import f; print(f())"
    run = [sys.executable, "-c", code]
    out = subprocess.run(run, env=env, cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def test_an_edit_to_a_compiled_in_module_reaches_the_cached_kernel(tmp_path):
    """A package whose cached kernel f calls g of another module: after g changes and the
    stamps are updated, f's file has changed and the cached f runs the new g."""
    root = tmp_path / "src"
    pkg = root / "nli"
    pkg.mkdir(parents=True)
    (root / "hw_sim").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "leaf.py").write_text(LEAF.format(1))
    (pkg / "user.py").write_text(USER)
    assert [p.name for p in update(root)] == ["user.py"]
    assert stale(root) == []
    cache = tmp_path / "cache"
    assert _run(root, cache) == 2
    assert _run(root, cache) == 2  # from the cache
    (pkg / "leaf.py").write_text(LEAF.format(5))
    assert [p.name for p in stale(root)] == ["user.py"]
    before = (pkg / "user.py").read_text()
    assert [p.name for p in update(root)] == ["user.py"]
    after = (pkg / "user.py").read_text()
    assert after != before and after.count(STAMP) == 1
    code = [[ln for ln in t.splitlines() if not ln.startswith(STAMP)] for t in (before, after)]
    assert code[0] == code[1]  # only the stamp line changed
    assert _run(root, cache) == 6


def test_check_exits_1_and_names_the_stale_file(tmp_path, monkeypatch, capsys):
    import nli.kernel_stamps as ks

    root = tmp_path / "src"
    (root / "nli").mkdir(parents=True)
    (root / "hw_sim").mkdir()
    (root / "nli" / "leaf.py").write_text(LEAF.format(1))
    (root / "nli" / "user.py").write_text(USER)
    monkeypatch.setattr(ks, "ROOT", root)
    monkeypatch.setattr(ks, "stale", lambda: stale(root))
    assert ks.main(["--check"]) == 1
    assert capsys.readouterr().err.strip() == "nli/user.py: numba cache stamp out of date"
    update(root)
    assert ks.main(["--check"]) == 0
