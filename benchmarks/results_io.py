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
SHIPPED_TABLES = "shipped_tables"  # {file stem: fingerprint} of the shipped tables a run loaded


def results_path(name: str) -> Path:
    """``benchmarks/results/NAME`` (absolute, whatever the working directory)."""
    return RESULTS / name


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON (one space, trailing newline) to ``path`` atomically."""
    return atomic_write(path, json.dumps(obj, indent=1) + "\n")


def command_today(c: str) -> str:
    """A recorded command as it reads today (benchmarks/moe.py was renamed moe_init.py; shipped
    tables are its only tables)."""
    return c.replace("benchmarks/moe.py", "benchmarks/moe_init.py").replace(" --tables shipped", "")


def stamp_tables(doc: dict, only=None) -> dict:
    """``doc`` with SHIPPED_TABLES: the fingerprint of every shipped table this process has
    loaded (:func:`nli.defaults.loaded_default_tables`; ``only``: just those file stems), so
    that the docs can tell a number measured with an earlier table from one measured with
    today's (:func:`changed_tables`). Files that merge entries from several runs stamp each
    entry with ``only`` its own tables."""
    from nli.defaults import loaded_default_tables

    used = loaded_default_tables()
    if only is not None:
        used = {k: v for k, v in used.items() if k in set(only)}
    return {**doc, SHIPPED_TABLES: used}


def changed_tables(doc, today: dict[str, str]) -> list[str] | None:
    """The stems of the shipped tables ``doc`` was measured with (its SHIPPED_TABLES, and
    those of every entry nested in it) whose fingerprint differs from ``today``'s
    (:func:`nli.defaults.shipped_fingerprints`; a table since removed counts as changed);
    None if ``doc`` records none (written before the stamps were)."""
    stamps, todo = [], [doc]
    while todo:
        d = todo.pop()
        if isinstance(d, dict):
            if isinstance(d.get(SHIPPED_TABLES), dict):
                stamps.append(d[SHIPPED_TABLES])
            todo.extend(v for k, v in d.items() if k != SHIPPED_TABLES)
        elif isinstance(d, list):
            todo.extend(d)
    if not stamps:
        return None
    return sorted({k for used in stamps for k, v in used.items() if today.get(k) != v})


def write_results(path: str | os.PathLike, doc: dict, results: list) -> int:
    """Write ``doc`` with the machine, the processor and ``results`` after its own keys to
    ``path`` (write_json), say where, and return 0: the end of a benchmark's main."""
    write_json(
        path,
        stamp_tables(
            {
                **doc,
                "machine": platform.machine(),
                "processor": platform.processor(),
                "results": results,
            }
        ),
    )
    print(f"wrote {path}")
    return 0


def read_json(name_or_path: str | os.PathLike):
    """A results JSON by name (under RESULTS) or path; None if it does not exist."""
    p = Path(name_or_path)
    p = p if p.is_absolute() or p.parent != Path(".") else RESULTS / p
    return json.loads(p.read_text()) if p.exists() else None
