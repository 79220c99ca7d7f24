"""nli.atomic: file modes, cleanup on exceptions and SIGTERM, what SIGKILL can leave; checkpoints
replaced as a whole directory so a loader never sees new weights beside an old config."""

from __future__ import annotations

import os
from pathlib import Path
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from nli.atomic import atomic_dir, atomic_target, atomic_write, is_temp_name

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_new_file_gets_umask_mode_and_replaced_file_keeps_its_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        new = atomic_write(tmp_path / "new.txt", "a")
        assert _mode(new) == 0o644
        old = tmp_path / "old.txt"
        old.write_text("x")
        os.chmod(old, 0o600)
        atomic_write(old, "y")
        assert _mode(old) == 0o600 and old.read_text() == "y"
        os.chmod(old, 0o755)
        atomic_write(old, "z")
        assert _mode(old) == 0o755
    finally:
        os.umask(umask)


def test_exception_leaves_target_and_no_temp(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_target(p) as tmp:
            Path(tmp).write_text("half")
            raise RuntimeError("boom")
    assert p.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["t.txt"]


def test_atomic_dir_replaces_whole_and_restores_on_error(tmp_path):
    d = tmp_path / "ck"
    with atomic_dir(d) as tmp:
        (tmp / "a").write_text("1")
    assert os.listdir(d) == ["a"]
    with atomic_dir(d) as tmp:
        (tmp / "b").write_text("2")
    assert os.listdir(d) == ["b"]  # nothing of the old directory survives
    with pytest.raises(RuntimeError):
        with atomic_dir(d) as tmp:
            (tmp / "c").write_text("3")
            raise RuntimeError("boom")
    assert os.listdir(d) == ["b"] and sorted(os.listdir(tmp_path)) == ["ck"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        with atomic_dir(tmp_path / "file"):
            pass


WRITER = textwrap.dedent("""
    import sys, time
    from nli.cli import _sigterm_raises
    from nli.atomic import atomic_target
    with _sigterm_raises():
        with atomic_target(sys.argv[1]) as tmp:
            open(tmp, "w").write("partial")
            print("ready", flush=True)
            time.sleep(60)
""")


def _start_writer(target: Path) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)], env=ENV, stdout=subprocess.PIPE, text=True
    )
    assert p.stdout.readline().strip() == "ready"
    return p


def test_sigterm_under_the_cli_handler_removes_the_temp_file(tmp_path):
    p = _start_writer(tmp_path / "out.json")
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=30) == 143
    assert os.listdir(tmp_path) == []


def test_sigkill_leaves_only_a_recognisable_temp_file(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    p = _start_writer(target)
    p.kill()
    p.wait(timeout=30)
    left = sorted(os.listdir(tmp_path))
    assert target.read_text() == "old"
    others = [n for n in left if n != "out.json"]
    assert len(others) == 1 and is_temp_name(others[0]) and others[0].startswith(".out.json.")


SAVER = textwrap.dedent("""
    import sys
    import engine
    from moe.checkpoint import save_checkpoint
    from moe.upcycling import upcycle
    dense, tok = engine.load_tiny()
    models = [upcycle(dense, "sparse", e, 1, layers=(0,)) for e in (2, 4)]
    print("ready", flush=True)
    i = 0
    while True:
        save_checkpoint(sys.argv[1], models[i % 2], provenance={"i": i})
        i += 1
""")


def test_checkpoint_killed_mid_save_never_loads_a_mix(tmp_path):
    """SIGKILL at varying moments of repeated saves of a 2-expert and a 4-expert model to one
    directory: the directory always loads (config and weights from the same save) and litter is
    only temp names."""
    from moe.checkpoint import load_checkpoint, read_config

    ck = tmp_path / "ck"
    for delay in (0.1, 0.5, 1.2):
        p = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(ck)], env=ENV, stdout=subprocess.PIPE, text=True
        )
        assert p.stdout.readline().strip() == "ready"
        time.sleep(delay)
        p.kill()
        p.wait(timeout=30)
        assert all(n == "ck" or is_temp_name(n) for n in os.listdir(tmp_path)), os.listdir(tmp_path)
        if ck.exists():  # absent only if killed before the first save finished
            _, moe_cfg, prov = read_config(ck)
            model = load_checkpoint(ck)  # raises if weights and config came from different saves
            assert moe_cfg.num_experts == (2, 4)[prov["i"] % 2]
            assert model.moe_config.num_experts == moe_cfg.num_experts
