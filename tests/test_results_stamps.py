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
    merged = {  # a file that merges runs stamps each entry with its own table
        "silu": {"x": 1, "shipped_tables": {"silu": "bbbb"}},
        "runs": [{"shipped_tables": {"exp": "old1"}}, {"shipped_tables": {"exp": "aaaa"}}],
    }
    _write(tmp_path, "solver.json", merged)
    stale, stamped = stale_results(tmp_path, today)
    assert stamped == 4
    assert stale == [
        ("llm.json", ["exp"], "python benchmarks/llm.py"),
        ("solver.json", ["exp"], None),
        ("sub/run.json", ["gone"], None),
    ]
    text = "\n\n".join(section_table_stamps(tmp_path, today))
    assert "Of the 4 results that record them, 3 were measured" in text
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
    two = section_table_stamps(tmp_path, today)[0]
    assert "Both results that record them were measured with today's shipped tables." in two
    _write(tmp_path, "c.json", {"shipped_tables": today})
    assert (
        "All 3 results that record them were measured" in section_table_stamps(tmp_path, today)[0]
    )


# Benchmarks that load shipped tables for another purpose than measuring with them
NOT_MEASURING = {
    "build_tables.py": "writes the shipped tables",
    "refine_shipped.py": "rewrites the shipped tables",
    "results_section_solver.py": "docs: reads the direct-mode table count",
}


def test_benchmarks_that_load_shipped_tables_stamp_what_they_write():
    """Every benchmark that calls nli's default_table(s) itself and writes a results JSON
    stamps it (stamp_tables, or write_results, which stamps). Benchmarks that reach the
    tables through engine/ are stamped too (llm.py, gemma3.py, ...); this guard sees direct
    calls only."""
    import re

    missing = []
    for p in sorted((ROOT / "benchmarks").glob("*.py")):
        src = p.read_text()
        if p.name in NOT_MEASURING or not re.search(r"\bdefault_tables?\(", src):
            continue
        if "write_json(" in src or "write_results(" in src:
            if "stamp_tables(" not in src and "write_results(" not in src:
                missing.append(p.name)
    assert missing == []


def test_results_that_predate_the_record_are_named(tmp_path):
    """A result with no stamps whose recorded command runs a benchmark that stamps now (itself,
    or through write_results) was written before the record: the docs name it. One whose
    benchmark stamps nothing, or that records no command, is not named; a stamped one neither.
    benchmarks/moe.py, renamed moe_init.py, reads as its new name."""
    from results_stamps import predating_results, section_table_stamps

    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "llm.py").write_text("write_json(p, stamp_tables(doc))\n")
    (scripts / "torch_backend.py").write_text("return write_results(p, doc, rows)\n")
    (scripts / "moe_init.py").write_text("write_json(p, stamp_tables(doc))\n")
    (scripts / "solver.py").write_text("write_json(p, doc)\n")
    root = tmp_path / "results"
    today = {"exp": "aaaa"}
    _write(root, "llm.json", {"command": "python benchmarks/llm.py --tokens 8"})
    _write(root, "tb.json", {"command": "OMP_NUM_THREADS=1 python benchmarks/torch_backend.py"})
    _write(root, "moe.json", {"command": "python benchmarks/moe.py --tables shipped"})
    _write(root, "solver.json", {"command": "python benchmarks/solver.py"})
    _write(root, "bare.json", {"x": 1})
    _write(root, "new.json", {"command": "python benchmarks/llm.py", "shipped_tables": today})
    assert predating_results(root, scripts) == ["llm.json", "moe.json", "tb.json"]
    text = section_table_stamps(root, today, scripts)[0]
    assert "3 results were written by a benchmark before it kept this record" in text
    assert "`llm.json`, `moe.json`, `tb.json`" in text
    (root / "llm.json").unlink()
    (root / "moe.json").unlink()
    (root / "tb.json").unlink()
    quiet = section_table_stamps(root, today, scripts)[0]
    assert quiet.endswith("Results written before this record was kept do not say.")
