"""moe.finetune.data / moe.finetune.data_io: gettext pair extraction, the seeded split, fetching
errors (no network)."""

from __future__ import annotations

import io
import json
import sys
import zipfile

import pytest

from moe.finetune.data import (
    CatalogSource,
    SplitConfig,
    check_dataset,
    merge_pairs,
    pairs_from_po,
    pairs_from_wheel_bytes,
    pairs_sha256,
    split_counts,
    split_pairs,
)
from moe.finetune.data_io import FetchError, build_dataset, fetch_wheel, read_dataset, write_dataset

PO = r"""
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\n"

msgid "Save"
msgstr "Speichern"

#, fuzzy
msgid "Cancel"
msgstr "Abbrechen?"

msgid "Empty"
msgstr ""

msgid "OK"
msgstr "OK"

msgid "%(n)s ticket"
msgid_plural "%(n)s tickets"
msgstr[0] "%(n)s Ticket"
msgstr[1] "%(n)s Tickets"

msgctxt "button"
msgid "Save"
msgstr "Sichern"

msgid "Order"
msgstr "Bestellung"

#, python-format
msgid "Hello %(name)s"
msgstr "Hallo %(name)s"

#~ msgid "Old"
#~ msgstr "Alt"
"""


def test_pairs_from_po_rules():
    pairs = pairs_from_po(PO)
    # fuzzy, empty, translation == source, plural and obsolete entries dropped;
    # "Save" deduplicated (first wins)
    assert pairs == [
        ("Save", "Speichern"),
        ("Order", "Bestellung"),
        ("Hello %(name)s", "Hallo %(name)s"),
    ]


def test_pairs_from_po_max_chars_and_bad_catalog():
    assert ("Hello %(name)s", "Hallo %(name)s") not in pairs_from_po(PO, max_chars=10)
    with pytest.raises(ValueError, match="not a valid .po"):
        pairs_from_po('msgid "a"\nmsgstr "b" junk "\n')


def test_merge_and_hash():
    a = [("x", "1"), ("y", "2")]
    b = [("y", "3"), ("z", "4")]
    assert merge_pairs([a, b]) == [("x", "1"), ("y", "2"), ("z", "4")]
    h = pairs_sha256({"de": a})
    assert h == pairs_sha256({"de": list(a)}) and h != pairs_sha256({"de": b}) and len(h) == 64


def _wheel_bytes(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buf.getvalue()


SRC = CatalogSource(
    "pkg", "1.0", "pkg/locale/{lang}/LC_MESSAGES/{domain}.po", ("django", "djangojs")
)


def test_pairs_from_wheel_merges_domains_and_skips_missing_langs():
    js = 'msgid "Save"\nmsgstr "Sichern"\n\nmsgid "Next"\nmsgstr "Weiter"\n'
    data = _wheel_bytes(
        {"pkg/locale/de/LC_MESSAGES/django.po": PO, "pkg/locale/de/LC_MESSAGES/djangojs.po": js}
    )
    got = pairs_from_wheel_bytes(data, SRC, ["de", "fr"])
    assert list(got) == ["de"]
    assert got["de"][0] == ("Save", "Speichern") and got["de"][-1] == ("Next", "Weiter")
    assert len(got["de"]) == 4


def test_catalog_source_needs_pinned_version():
    with pytest.raises(ValueError, match="exact version"):
        CatalogSource("pkg", ">=1.0", SRC.pattern, SRC.domains)


def _synthetic(n_src=400, langs=("de", "fr", "ja"), seed=1):
    import random

    rnd = random.Random(seed)
    out = {}
    for lang in langs:
        keep = [f"text {i}" for i in range(n_src) if rnd.random() < 0.8]
        out[lang] = [(s, f"{lang}:{s}") for s in keep]
    return out


def test_split_invariants():
    pairs = _synthetic()
    cfg = SplitConfig(seed=3, train_per_lang=100, dev_per_lang=20, test_per_lang=50)
    sp = split_pairs(pairs, cfg)
    counts = split_counts(sp)
    for lang in pairs:
        assert (
            counts["test"][lang] == 50
            and counts["dev"][lang] == 20
            and counts["train"][lang] == 100
        )
    srcs = {k: {r["src"] for r in v} for k, v in sp.items()}
    assert (
        not (srcs["train"] & srcs["dev"])
        and not (srcs["train"] & srcs["test"])
        and not (srcs["dev"] & srcs["test"])
    )
    for k, v in sp.items():  # every record is a real pair; no (lang, src) repeated within a split
        assert all(r["tgt"] == f"{r['lang']}:{r['src']}" for r in v)
        assert len({(r["lang"], r["src"]) for r in v}) == len(v)
    assert split_pairs(pairs, cfg) == sp  # seeded
    assert split_pairs(pairs, SplitConfig(4, 100, 20, 50))["test"] != sp["test"]


def test_split_caps_when_data_is_short():
    pairs = {"de": [(f"s{i}", f"t{i}") for i in range(30)]}
    c = split_counts(split_pairs(pairs, SplitConfig(0, 1000, 5, 20)))
    assert c["test"]["de"] == 20 and c["dev"]["de"] == 5 and c["train"]["de"] == 5


def test_check_dataset_rejects_shared_source(tmp_path):
    rec = {"lang": "de", "src": "a", "tgt": "b"}
    bad = {
        "format": "nli-translation-pairs",
        "version": 1,
        "train": [rec],
        "dev": [],
        "test": [rec],
    }
    with pytest.raises(ValueError, match="shared between train and test"):
        check_dataset(bad)
    p = tmp_path / "d.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="shared"):
        read_dataset(p)
    with pytest.raises(FileNotFoundError, match="nli data fetch"):
        read_dataset(tmp_path / "missing.json")


def test_build_dataset_from_cached_wheel(tmp_path):
    files = {}
    for lang in ("de", "ar"):
        body = "\n".join(f'msgid "item {i}"\nmsgstr "{lang} {i}"\n' for i in range(60))
        files[f"pkg/locale/{lang}/LC_MESSAGES/django.po"] = body
    (tmp_path / "pkg-1.0-py3-none-any.whl").write_bytes(_wheel_bytes(files))
    data = build_dataset(
        tmp_path,
        ["de", "ar"],
        [SRC],
        SplitConfig(0, 20, 5, 10),
        progress=False,
        pip=[sys.executable, "-c", "raise SystemExit('pip must not run for a cached wheel')"],
    )
    assert data["extracted"] == {"de": 60, "ar": 60}
    assert data["counts"]["train"] == {"ar": 20, "de": 20} and data["counts"]["test"] == {
        "ar": 10,
        "de": 10,
    }
    assert data["sources"][0]["version"] == "1.0" and len(data["extracted_sha256"]) == 64
    out = write_dataset(data, tmp_path / "sub" / "data.json")
    assert read_dataset(out)["split_sha256"] == data["split_sha256"]
    with pytest.raises(ValueError, match="no catalog for language"):
        build_dataset(tmp_path, ["xx"], [SRC], progress=False)


def test_failed_download_gives_clear_error(tmp_path):
    fake_pip = [
        sys.executable,
        "-c",
        "import sys; print('ERROR: No matching distribution found for pkg==1.0',"
        " file=sys.stderr); sys.exit(1)",
    ]
    with pytest.raises(
        FetchError, match=r"could not download pkg==1.0 \(pip exit 1\).*No matching distribution"
    ):
        fetch_wheel(SRC, tmp_path / "cache", pip=fake_pip)
    silent = [sys.executable, "-c", "pass"]  # "succeeds" without producing the wheel
    with pytest.raises(FetchError, match="no pkg-1.0 wheel"):
        fetch_wheel(SRC, tmp_path / "cache", pip=silent)


def test_cli_failed_download_exit_code(tmp_path, monkeypatch, capsys):
    import moe.finetune.data_io as dio
    from nli.cli import main

    def boom(source, cache, pip=None):
        raise FetchError(
            f"could not download {source.package}=={source.version} (pip exit 1): offline"
        )

    monkeypatch.setattr(dio, "fetch_wheel", boom)
    rc = main(
        [
            "data",
            "fetch",
            "--cache",
            str(tmp_path),
            "-o",
            str(tmp_path / "d.json"),
            "--pretix",
            "0.0.1",
        ]
    )
    assert rc == 2
    assert "could not download pretix==0.0.1" in capsys.readouterr().err
    assert not (tmp_path / "d.json").exists()


@pytest.mark.parametrize(
    "data",
    [
        [],
        "text",
        {"format": "nli-translation-pairs", "version": 1, "train": ["x"], "dev": [], "test": []},
        {
            "format": "nli-translation-pairs",
            "version": 1,
            "train": [{"lang": "de", "src": ["a"], "tgt": "b"}],
            "dev": [],
            "test": [],
        },
    ],
)
def test_check_dataset_refuses_wrong_json_shapes(data):
    """A data file of the wrong JSON shape is a ValueError (one-line CLI error), not a crash."""
    from moe.finetune.data import DATA_FORMAT, check_dataset

    assert DATA_FORMAT == "nli-translation-pairs"
    with pytest.raises(ValueError):
        check_dataset(data)
