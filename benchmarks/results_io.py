"""Where the benchmarks keep their results and how they write them (shared by benchmarks/*.py).

Every benchmark writes one JSON under ``benchmarks/results/`` atomically (a
reader never sees half a file), with the same formatting, so that
``benchmarks/readme_tables.py`` can regenerate docs/results.md from them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import platform

from nli.atomic import atomic_write

RESULTS = Path(__file__).resolve().parent / "results"


def results_path(name: str) -> Path:
    """``benchmarks/results/NAME`` (absolute, whatever the working directory)."""
    return RESULTS / name


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON (one space, trailing newline) to ``path`` atomically."""
    return atomic_write(path, json.dumps(obj, indent=1) + "\n")


def write_results(path: str | os.PathLike, doc: dict, results: list) -> int:
    """Write ``doc`` with the machine, the processor and ``results`` after its own keys to
    ``path`` (write_json), say where, and return 0: the end of a benchmark's main."""
    write_json(
        path,
        {
            **doc,
            "machine": platform.machine(),
            "processor": platform.processor(),
            "results": results,
        },
    )
    print(f"wrote {path}")
    return 0


def read_json(name_or_path: str | os.PathLike):
    """A results JSON by name (under RESULTS) or path; None if it does not exist."""
    p = Path(name_or_path)
    p = p if p.is_absolute() or p.parent != Path(".") else RESULTS / p
    return json.loads(p.read_text()) if p.exists() else None
