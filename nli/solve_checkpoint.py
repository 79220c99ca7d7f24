"""A file an exact solve saves its progress to, and resumes from after an interruption.

The DP (:mod:`nli.dp`) hands over its state after every chunk of a layer (1/32 of one) and
after every layer; :class:`SolveCheckpoint` writes it at most every ``every_s`` seconds
(after a whole layer always), atomically (:mod:`nli.atomic`: a reader, or a solve killed
mid-write, sees the old file or the new one), as an ``.npz`` of plain arrays (read back
with ``allow_pickle=False``: a checkpoint from elsewhere cannot run code). The solver keys
the state to its problem (function values on the grid, layout, objective, stride, the
solver's kernel code) and refuses a checkpoint of another problem. A killed solve loses
at most ``every_s`` seconds of work; the seconds of every run add up in
:meth:`SolveCheckpoint.elapsed` (wall) and :meth:`SolveCheckpoint.cpu_elapsed`. The caller
removes the file once the result is saved (:meth:`discard`).
"""

from __future__ import annotations

import os
from pathlib import Path
import time
import zipfile

import numpy as np

from .atomic import atomic_target

FORMAT = "nli-solve-checkpoint-v1"
SAVE_EVERY_S = 60.0  # most seconds of work a killed solve loses
MAX_BYTES = 1 << 30  # a larger file is refused unread (a solve's state is a few MB)


class CheckpointError(ValueError):
    """A checkpoint file that is not one, or was saved by another solve (one line, naming it)."""


class SolveCheckpoint:
    """Progress of one exact solve in the file ``path`` (``.npz``)."""

    def __init__(self, path: str | os.PathLike, every_s: float = SAVE_EVERY_S):
        if not every_s >= 0:
            raise ValueError(f"every_s: must be >= 0, got {every_s!r}")
        self.path = Path(path)
        self.every_s = float(every_s)
        self.resumed = False  # a state was read back
        self._before = (0.0, 0.0)  # wall and CPU seconds of the runs that wrote the file
        self._t0, self._c0 = time.monotonic(), time.process_time()
        self._last = self._t0

    @property
    def name(self) -> str:
        return f"checkpoint {self.path}"

    def load(self) -> dict | None:
        """The saved state, or None if the file does not exist; :class:`CheckpointError` if it
        is not a solve checkpoint."""
        if not self.path.exists():
            return None
        if not self.path.is_file():
            raise CheckpointError(f"{self.name}: not a regular file")
        if self.path.stat().st_size > MAX_BYTES:
            raise CheckpointError(f"{self.name}: larger than {MAX_BYTES >> 30} GiB")
        try:
            with np.load(self.path, allow_pickle=False) as z:
                state = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise CheckpointError(
                f"{self.name}: not a solve checkpoint ({type(e).__name__})"
            ) from None
        if str(state.get("format", "")) != FORMAT:
            raise CheckpointError(f"{self.name}: not a solve checkpoint (format is not {FORMAT})")
        self._before = (float(state.get("elapsed_s", 0.0)), float(state.get("cpu_s", 0.0)))
        self._t0, self._c0 = time.monotonic(), time.process_time()
        self.resumed = True
        return state

    def elapsed(self) -> float:
        """Wall seconds of this solve over every run that worked on it (since each run's
        SolveCheckpoint was made, or its state loaded)."""
        return self._before[0] + time.monotonic() - self._t0

    def cpu_elapsed(self) -> float:
        """CPU seconds (this process's, all threads) of this solve over every run."""
        return self._before[1] + time.process_time() - self._c0

    def save(self, state: dict, force: bool = False) -> None:
        """Write ``state`` (arrays and scalars) if ``every_s`` seconds passed since the last
        write, or ``force``."""
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        arrays = {k: np.asarray(v) for k, v in state.items()}
        arrays["format"] = np.asarray(FORMAT)
        arrays["elapsed_s"] = np.asarray(self.elapsed())
        arrays["cpu_s"] = np.asarray(self.cpu_elapsed())
        with atomic_target(self.path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
                fh.flush()
                os.fsync(fh.fileno())
        self._last = time.monotonic()

    def discard(self) -> None:
        """Remove the file (the solve's result is saved elsewhere)."""
        self.path.unlink(missing_ok=True)
