"""Strict reading of an untrusted JSON file (table files come from other people).

* Only a regular file is read: a FIFO, device or directory is refused before any
  read (checked with ``os.stat`` and again on the opened descriptor, which is
  opened non-blocking, so a FIFO swapped in between cannot hang the reader).
* A file larger than ``max_bytes`` is refused before it is read.
* Duplicate object keys, the non-standard constants ``NaN`` / ``Infinity`` /
  ``-Infinity``, invalid UTF-8 and absurd nesting are errors.

Every refusal is a :class:`JsonFileError` (a ``ValueError``) with a one-line
message naming the path; values are never echoed at length (see :func:`show`).
"""

from __future__ import annotations

import json
import os
import stat

SHOW_CHARS = 40  # a value quoted in an error message is cut to this many characters


class JsonFileError(ValueError):
    """A JSON file that cannot be read safely or does not parse strictly."""


def show(value) -> str:
    """repr(value) cut to SHOW_CHARS characters, for one-line error messages."""
    r = repr(value)
    return r if len(r) <= SHOW_CHARS else r[: SHOW_CHARS - 3] + "..."


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise JsonFileError(f"duplicate key {show(k)}")
        d[k] = v
    return d


def _no_constant(name):
    raise JsonFileError(f"{name} is not a JSON value")


def loads_strict(text: str):
    """json.loads without duplicate keys or NaN/Infinity; errors are JsonFileError."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except JsonFileError:
        raise
    except RecursionError:
        raise JsonFileError("nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, or an integer literal with too many digits
        raise JsonFileError(f"not valid JSON ({str(e)[:200]})") from None


def _check_regular(path, st, max_bytes: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise JsonFileError(f"{path}: not a regular file")
    if st.st_size > max_bytes:
        raise JsonFileError(
            f"{path}: {st.st_size} bytes, larger than the limit of {max_bytes} bytes"
        )


def read_json_file(path: str | os.PathLike, max_bytes: int):
    """The parsed contents of the regular file ``path`` of at most ``max_bytes`` bytes.

    FileNotFoundError passes through (callers word it); every other problem is a
    JsonFileError naming the path.
    """
    try:
        _check_regular(path, os.stat(path), max_bytes)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise
    except OSError as e:
        raise JsonFileError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "rb") as fh:
            _check_regular(path, os.fstat(fh.fileno()), max_bytes)
            data = fh.read(max_bytes + 1)
    except OSError as e:
        raise JsonFileError(f"{path}: cannot read ({e.strerror or e})") from None
    if len(data) > max_bytes:
        raise JsonFileError(f"{path}: larger than the limit of {max_bytes} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JsonFileError(f"{path}: not valid JSON (not UTF-8 at byte {e.start})") from None
    try:
        return loads_strict(text)
    except JsonFileError as e:
        raise JsonFileError(f"{path}: {e}") from None
