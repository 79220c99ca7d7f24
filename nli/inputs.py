"""Checks on the files and sizes a user hands the CLI, made before anything is read or allocated.

* :func:`check_input_file`: the path is a regular file (``os.stat`` + ``S_ISREG``,
  so a FIFO, a device such as ``/dev/zero`` or a directory is refused before it is
  opened and a read can never block or run forever) of at most a size limit.
* :func:`read_text` / :func:`read_bytes` / :func:`read_json` / :func:`load_npy`: read such a file.
* :func:`check_output_path` / :func:`check_output_dir`: a file (or directory) can
  be written there: a non-empty name, not an existing directory (file), the
  nearest existing ancestor a writable directory. Called before the computation.
* :func:`check_alloc`: an estimated allocation stays under :data:`MAX_ALLOC_BYTES`.

Every refusal is an :class:`InputError` (a ValueError) whose one-line message
names the path or the quantity; the CLI prints it and exits with code 2.

Limits (documented in the README's Reliability section and ``nli --help``):

* :data:`MAX_INPUT_BYTES` (1 GiB): text, JSON, table and .npy inputs;
* :data:`MAX_MODEL_FILE_BYTES` (64 GiB): GGUF files and checkpoint weights;
* :data:`MAX_ALLOC_BYTES` (8 GiB, or the environment variable ``NLI_MAX_ALLOC_BYTES``):
  the estimated memory of one model (parameters x 4 bytes, RoPE tables) or of
  one forward pass's activations.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import stat

import numpy as np

GiB = 1 << 30
MAX_INPUT_BYTES = 1 * GiB
MAX_MODEL_FILE_BYTES = 64 * GiB
DEFAULT_MAX_ALLOC_BYTES = 8 * GiB
ALLOC_ENV = "NLI_MAX_ALLOC_BYTES"


class InputError(ValueError):
    """A file or size the program refuses before touching it: one line, naming the path or
    quantity."""


def max_alloc_bytes() -> int:
    """The allocation limit: ``$NLI_MAX_ALLOC_BYTES`` if set (a positive integer), else 8 GiB."""
    raw = os.environ.get(ALLOC_ENV)
    if raw is None or raw == "":
        return DEFAULT_MAX_ALLOC_BYTES
    try:
        v = int(raw)
    except ValueError:
        raise InputError(f"${ALLOC_ENV}: not an integer number of bytes: {raw!r}") from None
    if v < 1:
        raise InputError(f"${ALLOC_ENV}: must be >= 1, got {v}")
    return v


def _fmt(n: int | float) -> str:
    return f"{n / GiB:.3g} GiB" if n >= GiB / 10 else f"{int(n)} bytes"


def check_alloc(nbytes: int | float, what: str) -> None:
    """Refuse ``what`` if its estimated size ``nbytes`` is above the allocation limit."""
    limit = max_alloc_bytes()
    if not nbytes <= limit:  # also catches NaN
        raise InputError(
            f"{what} needs about {_fmt(nbytes)} of memory, above the limit of {_fmt(limit)} "
            f"(set ${ALLOC_ENV} to raise it)"
        )


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_input_file(path, what: str = "input", max_bytes: int = MAX_INPUT_BYTES) -> Path:
    """``path`` as a Path if it is an existing regular file of at most ``max_bytes``; else
    InputError."""
    if path is None or str(path) == "":
        raise InputError(f"{what}: empty file name")
    p = Path(path)
    try:
        st = os.stat(p)  # follows symlinks: a link to /dev/zero is a device
    except FileNotFoundError:
        raise InputError(f"{what}: {p}: No such file or directory") from None
    except NotADirectoryError:
        raise InputError(f"{what}: {p}: No such file (a parent is not a directory)") from None
    except OSError as e:
        raise InputError(f"{what}: cannot access {p}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{what}: {p} is {_kind(st.st_mode)}, expected a regular file")
    if st.st_size > max_bytes:
        raise InputError(f"{what}: {p} is {_fmt(st.st_size)}, above the limit of {_fmt(max_bytes)}")
    return p


def read_bytes(path, what: str = "input", max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """The contents of a checked regular file (reads at most ``max_bytes`` + 1, even if it grew)."""
    p = check_input_file(path, what, max_bytes)
    try:
        with open(p, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as e:
        raise InputError(f"{what}: cannot read {p}: {e.strerror}") from None
    if len(data) > max_bytes:
        raise InputError(f"{what}: {p} is above the limit of {_fmt(max_bytes)}")
    return data


def read_text(path, what: str = "input", max_bytes: int = MAX_INPUT_BYTES) -> str:
    """A checked regular file decoded as UTF-8; InputError naming the byte offset if it is not
    UTF-8."""
    data = read_bytes(path, what, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{what}: {path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def read_json(path, what: str = "input", max_bytes: int = MAX_INPUT_BYTES):
    """The parsed contents of a checked UTF-8 JSON file (plain ``json.loads``; the strict reader
    for untrusted table files is :mod:`nli.strict_json`); InputError if it does not parse."""
    text = read_text(path, what, max_bytes)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply") from None


def load_npy(path, what: str = "input", max_bytes: int = MAX_INPUT_BYTES) -> np.ndarray:
    """A checked ``.npy`` file, loaded without pickle; a pickled, truncated or foreign file is an
    InputError."""
    p = check_input_file(path, what, max_bytes)
    try:
        with open(p, "rb") as fh:
            arr = np.load(fh, allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise InputError(f"{what}: not a readable .npy array: {p} ({e})") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive
        raise InputError(f"{what}: {p} is an .npz archive, expected one .npy array")
    return arr


def check_output_path(path, what: str = "output") -> Path:
    """``path`` can be written as a file: non-empty name, not an existing directory, the nearest
    existing ancestor is a writable directory (missing parents are created at write time)."""
    if (
        path is None
        or str(path) == ""
        or str(path).endswith(os.sep)
        or Path(path).name in ("", ".", "..")
    ):
        raise InputError(f"{what}: {str(path)!r} is not a file name")
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{what}: {p} is a directory, expected a file name")
    if p.exists() and not p.is_file():
        raise InputError(f"{what}: {p} exists and is not a regular file")
    _check_parent(p, what)
    return p


def check_output_dir(path, what: str = "output directory") -> Path:
    """``path`` can be written as a directory: non-empty name, not an existing non-directory,
    the nearest existing ancestor is a writable directory."""
    if path is None or str(path) == "" or Path(path).name in ("", ".", ".."):
        raise InputError(f"{what}: {str(path)!r} is not a directory name")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"{what}: {p} exists and is not a directory")
    _check_parent(p, what)
    return p


def _check_parent(p: Path, what: str) -> None:
    anc = p.absolute().parent
    while not anc.exists():
        if anc.is_symlink():
            raise InputError(f"{what}: {anc} is a dangling symbolic link")
        anc = anc.parent
    if not anc.is_dir():
        raise InputError(f"{what}: cannot create {p}: {anc} is not a directory")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise InputError(f"{what}: cannot write {p}: {anc} is not writable")
