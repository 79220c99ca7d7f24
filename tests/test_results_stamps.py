"""benchmarks/results_stamps.py: results measured with a shipped table that has changed since
are named in docs/results.md, with the command that reruns them."""

from __future__ import annotations

import json
from pathlib import Path
import sys

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def _write(root: Path, name: str, doc) -> None:
    p = root / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc))


def test_stale_results_name_the_changed_tables_and_the_rerun(tmp_path):
    from results_stamps import section_table_stamps, stale_results

    today = {"exp": "aaaa", "silu": "bbbb"}
    _write(tmp_path, "fresh.json", {"command": "python fresh.py", "shipped_tables": today})
    _write(
        tmp_path,
        "llm.json",
        {"command": "python benchmarks/llm.py", "shipped_tables": {"exp": "old0", "silu": "bbbb"}},
    )
    _write(tmp_path, "sub/run.json", {"shipped_tables": {"gone": "cccc"}})  # table removed
    _write(tmp_path, "legacy.json", {"command": "python legacy.py"})  # before the record
    _write(tmp_path, "list.json", [1, 2])
    stale, stamped = stale_results(tmp_path, today)
    assert stamped == 3
    assert stale == [
        ("llm.json", ["exp"], "python benchmarks/llm.py"),
        ("sub/run.json", ["gone"], None),
    ]
    text = "\n\n".join(section_table_stamps(tmp_path, today))
    assert "Of the 3 results that record them, 2 were measured" in text
    assert "| `llm.json` | exp | `python benchmarks/llm.py` |" in text
    assert "| `sub/run.json` | gone | - |" in text


def test_no_stale_results_says_so(tmp_path):
    from results_stamps import section_table_stamps

    today = {"exp": "aaaa"}
    assert "No result records them yet." in section_table_stamps(tmp_path, today)[0]
    _write(tmp_path, "a.json", {"shipped_tables": today})
    one = section_table_stamps(tmp_path, today)[0]
    assert "The one result that records them was measured with today's shipped tables." in one
    _write(tmp_path, "b.json", {"shipped_tables": today})
    assert (
        "All 2 results that record them were measured" in section_table_stamps(tmp_path, today)[0]
    )
