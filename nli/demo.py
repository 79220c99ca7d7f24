"""`nli demo`: the main job on embedded defaults, one section per package.

Sections are found through the ``nli.demo`` entry points (pyproject.toml) and
run in name order, so `nli` knows nothing of the packages downstream. Each
section is ``section(ctx) -> None``; it prints its report and writes plots
under ``ctx.out``. A section whose package is missing or fails is reported
and the demo goes on; the exit code is non-zero if any section failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
import sys
import time
import traceback


@dataclass(frozen=True)
class DemoContext:
    """What every demo section gets: the output folder and the size knobs.

    The default demo keeps to a few minutes on a 2-core CPU (each model section
    has a forward-token budget); ``quick`` halves it, ``full`` runs the longer
    evaluations (every mode, more tokens).
    """

    out: Path
    quick: bool = False
    full: bool = False

    def __post_init__(self):
        if self.quick and self.full:
            raise ValueError("--quick and --full exclude each other")


def run_demo(
    out: str | Path = "out/demo",
    quick: bool = False,
    only: list[str] | None = None,
    full: bool = False,
) -> int:
    """Run every registered demo section; returns the number of failed sections."""
    ctx = DemoContext(Path(out), quick, full)
    ctx.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    eps = sorted(entry_points(group="nli.demo"), key=lambda e: e.name)
    for ep in eps:
        name = ep.name.split("_", 1)[-1]
        if only and name not in only:
            continue
        print(f"\n=== {name} " + "=" * max(0, 70 - len(name)), flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            ep.load()(ctx)
        except Exception:  # report and continue: one broken section must not hide the others
            failed += 1
            traceback.print_exc()
            print(f"[demo] section {name} FAILED", file=sys.stderr)
        # CPU seconds (all threads) beside wall: on a shared machine the wall time says little
        print(
            f"[{name}: {time.perf_counter() - t0:.1f} s wall, "
            f"{time.process_time() - c0:.1f} s CPU]",
            flush=True,
        )
    print(f"\nplots and JSON written under {ctx.out}/")
    return failed


def section(ctx: DemoContext) -> None:
    """The `nli` section: the shipped default tables and how they were made."""
    from .defaults import default_table, default_table_names

    print(f"{'table':<20} {'layout':<18} {'entries':>7} {'objective':<10} {'cost':>10}  made by")
    for name, mode in default_table_names():
        try:
            t = default_table(name, mode)
        except Exception as e:  # a missing shipped table is a packaging bug: say which
            print(f"{name + ':' + mode:<20} MISSING ({e})")
            raise
        m = t.meta
        made = (
            m.get("provenance", {}).get("method", m.get("objective", "?"))
            if isinstance(m.get("provenance"), dict)
            else m.get("objective", "?")
        )
        cost = m.get("cost")
        print(
            f"{name + ':' + mode:<20} {str(m.get('layout', '?')):<18} {t.entries:>7} "
            f"{str(m.get('objective', '?')):<10} "
            f"{cost if cost is None else format(cost, '.4g'):>10}  {made}"
        )
