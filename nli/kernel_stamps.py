"""Numba cache stamps: a cached kernel's file changes whenever code it compiles in changes.

Numba (0.68) keys a cached kernel on the content of its own source file alone. A kernel that
calls jitted functions of another module compiles their code into its own cache entry, so an
edit to that other module alone leaves the entry stale: the old code keeps running, in a
checkout and in an installed copy upgraded in place (its ``__pycache__`` survives). Touching
the file does not help; its content must change.

So each module with cached kernels (``cache=True``) that imports another project module with
jitted functions ends with a stamp line: a hash of the sources of every such module it
imports, directly or through others (their own stamp lines left out). ``python -m
nli.kernel_stamps`` rewrites the stamp lines; ``--check`` (and tests/test_kernel_stamps.py)
fails while one is out of date.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
from pathlib import Path
import sys

from .atomic import atomic_write

PACKAGES = ("nli", "hw_sim")
STAMP = "# numba cache stamp: "
ROOT = Path(__file__).resolve().parents[1]


def _module_files(root: Path) -> dict[str, Path]:
    """{dotted name: file} of the modules of PACKAGES under ``root``."""
    return {f"{pkg}.{p.stem}": p for pkg in PACKAGES for p in sorted((root / pkg).glob("*.py"))}


def _source(path: Path) -> str:
    """The file's text without its stamp line (and the blank lines before it)."""
    lines = path.read_text().splitlines(True)
    return "".join(line for line in lines if not line.startswith(STAMP)).rstrip() + "\n"


def _jitted(src: str) -> bool:
    return "numba.njit" in src or "@njit" in src


def _imports(name: str, src: str, mods: dict) -> set[str]:
    """The modules of ``mods`` that module ``name`` (source ``src``) imports."""
    pkg = name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.ImportFrom):
            base = (pkg if node.level else "") + ("." + node.module if node.module else "")
            base = base.lstrip(".")
            for cand in [base] + [f"{base}.{a.name}" for a in node.names]:
                if cand in mods:
                    out.add(cand)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in mods)
    out.discard(name)
    return out


def expected_stamps(root: Path = ROOT) -> dict[Path, str]:
    """{file: stamp} for every module with cached kernels that imports (transitively) another
    project module with jitted functions."""
    mods = _module_files(root)
    srcs = {n: _source(p) for n, p in mods.items()}
    graph = {n: _imports(n, s, mods) for n, s in srcs.items()}
    out = {}
    for n, src in srcs.items():
        if "cache=True" not in src:
            continue
        seen, todo = set(), list(graph[n])
        while todo:
            m = todo.pop()
            if m not in seen and m != n:
                seen.add(m)
                todo.extend(graph[m])
        deps = sorted(m for m in seen if _jitted(srcs[m]))
        if deps:
            h = hashlib.sha256()
            for m in deps:
                h.update(f"{m}\n{srcs[m]}\n".encode())
            out[mods[n]] = h.hexdigest()[:16]
    return out


def current_stamp(path: Path) -> str | None:
    for line in path.read_text().splitlines():
        if line.startswith(STAMP):
            return line[len(STAMP) :].split()[0]
    return None


def stale(root: Path = ROOT) -> list[Path]:
    """The files whose stamp line is missing or out of date."""
    return [p for p, s in expected_stamps(root).items() if current_stamp(p) != s]


def update(root: Path = ROOT) -> list[Path]:
    """Rewrite the stale stamp lines (at the end of each file); returns the files changed."""
    changed = []
    for p, s in expected_stamps(root).items():
        if current_stamp(p) == s:
            continue
        atomic_write(p, f"{_source(p)}\n\n{STAMP}{s} (nli/kernel_stamps.py)\n")
        changed.append(p)
    return changed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report stale stamps (exit 1)")
    args = ap.parse_args(argv)
    if args.check:
        bad = stale()
        for p in bad:
            print(f"{p.relative_to(ROOT)}: numba cache stamp out of date", file=sys.stderr)
        return 1 if bad else 0
    for p in update():
        print(f"updated {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
