"""Atomic file and directory writes: a temp entry in the destination folder, then one rename.

The guarantee: a reader of the target sees the old file (directory) or the
new one, never half of one, whatever happens to the writer. An exception,
Ctrl-C, or SIGTERM under the `nli` CLI (whose handler calls
:func:`remove_active_temps` and exits) removes the temp entry. A SIGKILL or a
power cut cannot be cleaned up after: it can leave a temp entry beside the
target, named ``.NAME.XXXXXXXX.tmp``
(:data:`TEMP_SUFFIX`; :func:`is_temp_name` recognises it), never a
half-written target. A replaced file keeps the mode of the file it replaces;
a new one gets an ordinary file's mode (0666 less the umask), not mkstemp's 0600.
The one implementation every package uses (tables, exports, ONNX models,
datasets, checkpoints).
"""

from __future__ import annotations

from contextlib import contextmanager
import os
from pathlib import Path
import re
import shutil
import stat
import tempfile

TEMP_SUFFIX = ".tmp"
_ACTIVE: set[str] = set()  # temp entries being written, for remove_active_temps (a signal handler)
_TEMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def is_temp_name(name: str) -> bool:
    """True for a name :func:`atomic_target` / :func:`atomic_dir` use for their temp entries."""
    return bool(_TEMP_RE.match(name))


def remove_active_temps() -> None:
    """Remove every temp entry a write in progress holds (for a SIGTERM handler that then exits)."""
    for tmp in list(_ACTIVE):
        _remove(tmp)
        _ACTIVE.discard(tmp)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _remove(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


@contextmanager
def atomic_target(path: str | os.PathLike):
    """Yield a temp path beside ``path``; on success it replaces ``path``, on error it is removed.

    For writers that want a file name (``onnx.save_model``, ``torch.save``).
    Missing parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)  # replacing: keep the file's mode
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        _ACTIVE.add(tmp)
        os.close(fd)
        os.chmod(tmp, mode)
        yield tmp
        os.replace(tmp, path)
        _ACTIVE.discard(tmp)
        tmp = None
    finally:
        if tmp is not None:
            _remove(tmp)
            _ACTIVE.discard(tmp)


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (bytes, or str as UTF-8) to ``path`` atomically, fsynced; returns the path."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    with atomic_target(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


@contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield a temp directory beside ``path``; on success it becomes ``path`` as a whole.

    An existing ``path`` (a directory) is swapped with the new one in one
    ``renameat2(RENAME_EXCHANGE)`` (Linux), then deleted; where that call is
    missing it is renamed away to a temp name first and the new one renamed in
    (a reader then may find no directory for that instant; a SIGKILL there
    leaves the old one under its temp name). Either way a reader finds the
    complete old directory or the complete new one, never a mix. On error the
    temp directory is removed and an existing ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(20, "exists and is not a directory", str(path))
    tmp = old = None
    try:
        tmp = tempfile.mkdtemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        _ACTIVE.add(tmp)
        os.chmod(tmp, 0o777 & ~_umask())
        yield Path(tmp)
        _fsync_dir(tmp)
        if path.exists() and _exchange(tmp, path):
            tmp, old = None, tmp  # tmp now holds the old directory
        else:
            if path.exists():
                old = tempfile.mkdtemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
                os.replace(path, old)  # rename(2) of a directory onto an empty directory
            os.replace(tmp, path)
            tmp = None
        _fsync_dir(path.parent)
    except BaseException:
        if old is not None and tmp is not None and not path.exists():
            os.replace(old, path)  # put the old directory back
            old = None
        raise
    finally:
        for t in (tmp, old):
            if t is not None:
                _remove(t)
        for t in list(_ACTIVE):
            if t in (tmp, old) or not os.path.exists(t):
                _ACTIVE.discard(t)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a, b) -> bool:
    """Atomically swap the names ``a`` and ``b`` (Linux renameat2); False where unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: fall back to two renames
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_dir(path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
