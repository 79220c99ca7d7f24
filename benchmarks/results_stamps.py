"""docs/results.md: which shipped tables the recorded results were measured with.

Each benchmark that loads shipped tables records their fingerprints (``shipped_tables``,
:func:`results_io.stamp_tables`). When a shipped table changes (an exact table replaces a
thinned one, a refinement), every result measured with the old one is out of date until its
benchmark runs again; this section names them, and the command that reruns each.
"""

from __future__ import annotations

from pathlib import Path
import re

from results_io import RESULTS, SHIPPED_TABLES, changed_tables, command_today, read_json

BENCHMARKS = Path(__file__).resolve().parent
SCRIPT = re.compile(r"benchmarks/(\w+)\.py")  # the script a recorded command runs


def _result_docs(root: Path):
    """(file relative to root, parsed JSON) of the results directly under ``root`` and in its
    subfolders (cached runs, steps); files that are not JSON we wrote are left out."""
    for p in sorted(p for p in root.rglob("*.json") if p.is_file()):
        try:
            yield str(p.relative_to(root)), read_json(p)
        except ValueError:
            continue


def stale_results(root: Path = RESULTS, today: dict[str, str] | None = None) -> tuple[list, int]:
    """([(file relative to root, [changed table stems], command or None)], number of files
    that record their tables); today: {stem: fingerprint}, default the shipped tables now."""
    if today is None:
        from nli.defaults import shipped_fingerprints

        today = shipped_fingerprints()
    stale, stamped = [], 0
    for name, doc in _result_docs(root):
        changed = changed_tables(doc, today)
        if changed is None:
            continue
        stamped += 1
        if changed:
            cmd = doc.get("command") if isinstance(doc, dict) else None
            stale.append((name, changed, cmd if isinstance(cmd, str) else None))
    return stale, stamped


def predating_results(root: Path = RESULTS, scripts: Path = BENCHMARKS) -> list[str]:
    """The results (relative to root) that record no tables but whose recorded command runs a
    benchmark that records them now: written before it did, so measured with the tables of
    their day, which these docs cannot check against today's."""
    out = []
    for name, doc in _result_docs(root):
        if not isinstance(doc, dict) or changed_tables(doc, {}) is not None:  # None: no record
            continue
        cmd = doc.get("command")
        m = SCRIPT.search(command_today(cmd)) if isinstance(cmd, str) else None
        script = scripts / f"{m.group(1)}.py" if m else None
        src = script.read_text() if script is not None and script.is_file() else ""
        if "stamp_tables(" in src or "write_results(" in src:  # write_results stamps
            out.append(name)
    return out


def _predating_sentence(root: Path, scripts: Path) -> str:
    old = predating_results(root, scripts)
    if not old:
        return " Results written before this record was kept do not say."
    names = ", ".join(f"`{n}`" for n in old)
    return (
        f" {len(old)} results were written by a benchmark before it kept this record, so they "
        f"do not say, and a table shipped since may have changed them: {names} (their commands "
        "rerun them)."
    )


def section_table_stamps(
    root: Path = RESULTS, today: dict[str, str] | None = None, scripts: Path = BENCHMARKS
) -> list[str]:
    """The paragraph (and, if any result is out of date, its table) for docs/results.md."""
    stale, stamped = stale_results(root, today)
    intro = (
        "**Tables behind the results.** Each benchmark records the fingerprint of every shipped "
        f"table it loaded (`{SHIPPED_TABLES}` in its JSON; `nli.fingerprint`). "
    )
    if not stale:
        said = (
            "No result records them yet."
            if not stamped
            else "The one result that records them was measured with today's shipped tables."
            if stamped == 1
            else "Both results that record them were measured with today's shipped tables."
            if stamped == 2
            else f"All {stamped} results that record them were measured with today's tables."
        )
        return [intro + said + _predating_sentence(root, scripts)]
    rows = ["| result | measured with an earlier | rerun with |", "|---|---|---|"]
    rows += [
        f"| `{name}` | {', '.join(changed)} | {f'`{cmd}`' if cmd else '-'} |"
        for name, changed, cmd in stale
    ]
    one = len(stale) == 1
    return [
        intro + f"Of the {stamped} results that record them, {len(stale)} "
        f"{'was' if one else 'were'} measured with a shipped table that has changed since, and "
        f"{'is' if one else 'are'} out of date until rerun:",
        "\n".join(rows),
        _predating_sentence(root, scripts).strip(),
    ]
