"""docs/results.md and the README's headline table are what benchmarks/readme_tables.py makes
from the committed benchmark JSON: regenerate and compare, so neither can go stale."""

from pathlib import Path
import re
import subprocess
import sys

ROOT = Path(__file__).resolve().parent.parent


def _run(*args):
    import os

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "readme_tables.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_results_doc_and_readme_headline_are_regenerated_exactly():
    r = _run("--check")
    assert r.returncode == 0, r.stderr


def test_results_doc_has_no_internal_issue_numbers_or_load_notes():
    text = (ROOT / "docs" / "results.md").read_text()
    assert not re.search(r"\bissue\s*\d|#\d", text, flags=re.I)
    assert not re.search(r"load avg|load average|shared box|loaded box|idle box", text, flags=re.I)


def test_readme_links_results_and_numerics():
    readme = (ROOT / "README.md").read_text()
    assert "(docs/results.md)" in readme and "(docs/numerics.md)" in readme
    assert len(readme.splitlines()) < 200  # the long results live in docs/results.md
