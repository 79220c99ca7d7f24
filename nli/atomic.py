"""Atomic file writes: a temp file in the destination folder, then one rename.

A reader sees the old file or the new one, never half of one; an error or an
interrupt leaves no temp file behind. The one implementation every package
uses (tables, exports, ONNX models, datasets, checkpoints).
"""
from __future__ import annotations

from contextlib import contextmanager
import os
from pathlib import Path
import tempfile


@contextmanager
def atomic_target(path: str | os.PathLike):
    """Yield a temp path beside ``path``; on success it replaces ``path``, on error it is removed.

    For writers that want a file name (``onnx.save_model``, ``torch.save``).
    The file gets an ordinary file's mode (0666 less the umask), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (bytes, or str as UTF-8) to ``path`` atomically, fsynced; returns the path."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    with atomic_target(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)
