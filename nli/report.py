"""Solver-side summary rows of tables (pure), for `nli demo` and the README.

The datapath error of a table lives in ``hw_sim.report.error_report`` (``nli``
cannot import the simulator); :func:`table_rows` gives what the table file
itself records, one dict per table, so a caller can join the two.
"""

from __future__ import annotations

from .table import Table

ROW_KEYS = (
    "name",
    "function",
    "layout",
    "entries",
    "comparators",
    "objective",
    "cost",
    "domain",
    "solve_seconds",
    "method",
)


def table_rows(tables: dict[str, Table]) -> list[dict]:
    """{name: Table} -> [{ROW_KEYS...}] in the dict's order; missing meta gives None."""
    rows = []
    for name, t in tables.items():
        prov = t.meta.get("provenance") or {}
        rows.append(
            {
                "name": name,
                "function": t.function,
                "layout": t.meta.get("layout"),
                "entries": t.entries,
                "comparators": t.K,
                "objective": t.meta.get("objective"),
                "cost": t.meta.get("cost"),
                "domain": t.meta.get("domain"),
                "solve_seconds": t.meta.get("solve_seconds"),
                "method": prov.get("method") if isinstance(prov, dict) else None,
            }
        )
    return rows
