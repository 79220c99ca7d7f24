"""engine.tokenizer.tokenizer_from_gguf beyond SmolLM2: small GGUFs written with gguf.GGUFWriter
(Qwen2/Qwen3 ``qwen2`` and Llama-3 ``llama-bpe`` byte-level BPE, a Gemma-style SentencePiece
vocabulary) against the textbook oracles of tests/naive.py and, where transformers is installed,
against transformers' own GGUF tokenizer converter; the dispatch errors; BOS handling. The Gemma 3
270M GGUF itself: tests/test_gemma3_gguf.py."""

from __future__ import annotations

import gguf
import pytest

from engine.gguf_loader import open_gguf
from engine.tokenizer import (
    _BYTE_SYMBOL,
    SPM_SPACE,
    TokenizerError,
    build_gemma,
    set_special_wrapping,
    tokenizer_from_gguf,
    vocab_merges,
)
from tests.naive import naive_byte_bpe_ids, naive_generated_merges, naive_spm_bpe_ids

TRANSFORMERS_HINT = "transformers is not installed (pip install transformers) for the reference ids"

# llama.cpp's own spelling of the split regexes (src/llama-vocab.cpp, llm_tokenizer_bpe): the
# contractions written as character classes instead of transformers' (?i:...) group.
LLAMA_CPP_SPLIT = {
    "qwen2": r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "llama-bpe": r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
    r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}

TRICKY = [
    "Hello, world!",
    "",
    " ",
    "   leading and trailing   ",
    "two  spaces,  then   three",
    "line one\nline two\n\n\nthree newlines\r\nCRLF",
    "tab\tseparated\t\tcolumns",
    "In 2024, 1,000,000 people paid $3.14159 each; 12345678901234567890.",
    "It's, they're, we've, I'M, YOU'LL, he'd, O'Neil's",
    "naïve café — “quotes” ‘single’ … ½ ² ℃",
    "emoji 🙂🚀👩‍👩‍👧 and flags 🇫🇷",
    "中文字符，日本語のテキスト、한국어 텍스트",
    "Ελληνικά Русский עברית العربية हिन्दी",
    "control \x00\x01\x7f and private \ue000 chars",
    "a<|im_start|>user\nhi<|im_end|>b <think>x</think>",
    "<bos>text with <start_of_turn> and <eos> inside",
    "x" * 300 + " " + "ab" * 100,
]


def _transformers_converter():
    try:
        from transformers.integrations.gguf import convert_gguf_tokenizer, get_gguf_tokenizer
    except ImportError:
        pytest.skip(TRANSFORMERS_HINT)
    return convert_gguf_tokenizer, get_gguf_tokenizer


# ----------------------------------------------------------------------------- byte-level BPE
def _bpe_vocab():
    """Byte symbols, merges that fuse across the split boundaries of one pre-type or the other
    (digit runs, contractions, space + word, newline runs), control and user-defined tokens."""
    sp, nl = _BYTE_SYMBOL[ord(" ")], _BYTE_SYMBOL[ord("\n")]
    merges = [
        "1 2",
        "12 3",
        "0 0",
        "00 0",
        f"{sp} t",
        "h e",
        f"{sp}t he",
        "' s",
        f"{nl} {nl}",
        f"{sp} {sp}",
        "l l",
        "he ll",
        "hell o",
        "H e",
        "He ll",
        "Hell o",
        f"{sp} w",
        "o r",
        f"{sp}w or",
        "l d",
        f"{sp}wor ld",
    ]
    merges += [f"{_BYTE_SYMBOL[0xC3]} {_BYTE_SYMBOL[0xA9]}"]  # "é" as one token
    merged = ["".join(m.split(" ")) for m in merges]
    control, user = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], ["<think>", "</think>"]
    tokens = control + list(_BYTE_SYMBOL) + merged + user
    ttypes = [3] * len(control) + [1] * (len(tokens) - len(control) - len(user)) + [4] * len(user)
    return tokens, merges, ttypes, control + user


def _write_bpe_gguf(path, pre, add_bos=False):
    tokens, merges, ttypes, _ = _bpe_vocab()
    w = gguf.GGUFWriter(str(path), "qwen2" if pre == "qwen2" else "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_merges(merges)
    w.add_token_types(ttypes)
    w.add_bos_token_id(0)
    w.add_eos_token_id(2)
    w.add_add_bos_token(add_bos)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("pre", ["qwen2", "llama-bpe"])
@pytest.mark.parametrize("text", TRICKY)
def test_split_regex_bpe_matches_oracle(tmp_path, pre, text):
    pytest.importorskip("regex")
    tokens, merges, _, added = _bpe_vocab()
    tok = tokenizer_from_gguf(open_gguf(_write_bpe_gguf(tmp_path / "t.gguf", pre)))
    want = naive_byte_bpe_ids(text, tokens, merges, LLAMA_CPP_SPLIT[pre], added)
    assert tok.encode(text).ids == want
    assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == text


def test_split_regex_types_differ(tmp_path):
    """The two pre-types are not the same tokenizer: Llama-3 keeps up to 3 digits together."""
    q = tokenizer_from_gguf(open_gguf(_write_bpe_gguf(tmp_path / "q.gguf", "qwen2")))
    ll = tokenizer_from_gguf(open_gguf(_write_bpe_gguf(tmp_path / "l.gguf", "llama-bpe")))
    assert q.encode("123").tokens == ["1", "2", "3"]
    assert ll.encode("123").tokens == ["123"]


@pytest.mark.parametrize("pre", ["qwen2", "llama-bpe"])
def test_split_regex_bpe_matches_transformers(tmp_path, pre):
    convert, read = _transformers_converter()
    path = _write_bpe_gguf(tmp_path / "t.gguf", pre)
    ours = tokenizer_from_gguf(open_gguf(path))
    arch, tdict, tconfig = read(str(path))
    ref, _ = convert(arch, tdict)
    for text in TRICKY:
        # the split itself, piece by piece, then the ids
        assert ours.pre_tokenizer.pre_tokenize_str(text) == ref.pre_tokenizer.pre_tokenize_str(text)
        assert ours.encode(text).ids == ref.encode(text, add_special_tokens=False).ids, text
    assert bool(tconfig.get("add_bos_token")) is False and ours.encode("x").ids[0] != 0


def test_bpe_add_bos(tmp_path):
    tok = tokenizer_from_gguf(open_gguf(_write_bpe_gguf(tmp_path / "b.gguf", "qwen2", True)))
    assert tok.encode("hello").ids[0] == 0  # <|endoftext|> is this file's BOS
    assert tok.encode("hello").ids[1:] == tok.encode("hello", add_special_tokens=False).ids
    assert tok.decode(tok.encode("hello").ids) == "hello"


# ----------------------------------------------------------------------------- Gemma-style
def _spm_vocab():
    """A Gemma-like vocabulary: specials, user-defined newline runs and a run of spaces, the 256
    byte tokens, characters, and merged pieces in an order unlike their scores."""
    head = [
        ("<pad>", 3),
        ("<eos>", 3),
        ("<bos>", 3),
        ("<unk>", 3),
        ("<mask>", 3),
        ("[multimodal]", 4),
        ("\n", 4),
        ("\n\n", 4),
        ("  ", 4),  # spaces: looked up as U+2581 U+2581, never added (transformers' rule)
        ("<start_of_turn>", 3),
        ("<end_of_turn>", 3),
    ]
    head += [(f"<0x{b:02X}>", 6) for b in range(256)]
    chars = list("abdehilnorstwxy12,.!'é中文") + [SPM_SPACE, "\t"]
    pieces = ["he", "ll", "hell", "▁hello", "hello", "▁t", "▁the", "lo", "or", "▁w"]
    pieces += ["▁wor", "wor", "ld", "▁world", "12", "▁1", "ab", "ba", "aba", "中文", "x▁", "xx"]
    body = [(t, 1) for t in chars + pieces]
    tokens = [t for t, _ in head + body]
    ttypes = [k for _, k in head + body]
    return tokens, ttypes


def _write_spm_gguf(path, arch="gemma3", add_bos=True, with_flag=True):
    tokens, ttypes = _spm_vocab()
    w = gguf.GGUFWriter(str(path), arch)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    # scores increasing with the position: the opposite of the merge order (as in Gemma)
    w.add_token_scores([float(i) for i in range(len(tokens))])
    w.add_token_types(ttypes)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_pad_token_id(0)
    if with_flag:
        w.add_add_bos_token(add_bos)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _spm_added():
    tokens, ttypes = _spm_vocab()
    return [t for t, k in zip(tokens, ttypes) if k == 3 or (k == 4 and t.strip())]


SPM_TEXTS = TRICKY + [
    "hello world, the world!",
    " hello  hello   hello",
    "xx xxx x x\t\tx\n\nx\n\n\nx",
    "aba bab abab 121212 中文中",
    "ü and 🙂 fall back to bytes",
]


@pytest.mark.parametrize("text", SPM_TEXTS)
def test_spm_matches_oracle(tmp_path, text):
    tokens, _ = _spm_vocab()
    tok = tokenizer_from_gguf(open_gguf(_write_spm_gguf(tmp_path / "g.gguf")))
    assert tok.encode(text).ids == naive_spm_bpe_ids(text, tokens, _spm_added(), bos_id=2)
    assert tok.decode(tok.encode(text).ids) == text.replace("<bos>", "").replace(
        "<start_of_turn>", ""
    ).replace("<eos>", "")  # special tokens are dropped on decode


def test_spm_matches_transformers(tmp_path):
    convert, read = _transformers_converter()
    path = _write_spm_gguf(tmp_path / "g.gguf")
    ours = tokenizer_from_gguf(open_gguf(path))
    arch, tdict, tconfig = read(str(path))
    ref, _ = convert(arch, tdict)
    assert tconfig["add_bos_token"] is True
    for text in SPM_TEXTS:
        assert ours.encode(text).ids == [2] + ref.encode(text, add_special_tokens=False).ids, text


def test_spm_bos_flag(tmp_path):
    on = tokenizer_from_gguf(open_gguf(_write_spm_gguf(tmp_path / "a.gguf", add_bos=True)))
    off = tokenizer_from_gguf(open_gguf(_write_spm_gguf(tmp_path / "b.gguf", add_bos=False)))
    unset = tokenizer_from_gguf(open_gguf(_write_spm_gguf(tmp_path / "c.gguf", with_flag=False)))
    body = off.encode("hello world").ids
    assert body and body[0] != 2
    assert on.encode("hello world").ids == [2] + body
    assert unset.encode("hello world").ids == [2] + body  # SentencePiece default: add BOS
    assert on.encode("hello world", add_special_tokens=False).ids == body
    assert on.encode("").ids == [2]


def test_spm_merge_order_is_file_order():
    """'▁hello' (position p) must win over a split that scores would prefer: with the file order
    reversed the pieces still merge, but ranks follow the new order."""
    tokens, ttypes = _spm_vocab()
    tok = build_gemma(tokens, ttypes)
    assert tok.encode(" hello").tokens == ["▁hello"]
    assert tok.encode("aba").ids == naive_spm_bpe_ids("aba", tokens)
    # swap the order of 'ab' and 'ba': the merge of a|b|a changes with the ranks
    i, j = tokens.index("ab"), tokens.index("ba")
    swapped = list(tokens)
    swapped[i], swapped[j] = swapped[j], swapped[i]
    tok2 = build_gemma(swapped, ttypes)
    assert tok.encode("abab").tokens != tok2.encode("abab").tokens
    assert tok2.encode("abab").ids == naive_spm_bpe_ids("abab", swapped)


def test_vocab_merges_match_generate_merges_recipe():
    """The loop order of vocab_merges is the sort order of transformers' recipe (naive oracle),
    on the small vocabulary and on random ones over a 3-letter alphabet (many tokens with more
    than one split, so the order among a token's splits matters)."""
    import random

    tokens, _ = _spm_vocab()
    assert vocab_merges(tokens) == naive_generated_merges(tokens)
    rng = random.Random(15)
    for _ in range(50):
        words = {"".join(rng.choice("abc") for _ in range(rng.randint(1, 6))) for _ in range(40)}
        vocab = list("abc") + sorted(words - set("abc"), key=lambda _: rng.random())
        assert vocab_merges(vocab) == naive_generated_merges(vocab)


# ----------------------------------------------------------------------------- errors
def _write_other(path, model, arch="llama", pre="default"):
    w = gguf.GGUFWriter(str(path), arch)
    w.add_tokenizer_model(model)
    w.add_tokenizer_pre(pre)
    w.add_token_list(["a", "b"])
    w.add_token_merges([])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return open_gguf(path)


@pytest.mark.parametrize(
    "model, arch, pre, words",
    [
        ("bert", "bert", "default", ["'bert'", "gpt2", "llama", "gemma3"]),
        ("t5", "t5", "default", ["'t5'", "supported"]),
        ("llama", "llama", "default", ["'llama'", "gemma3"]),  # a Llama-2 SentencePiece vocab
        ("gpt2", "qwen2", "tekken", ["'tekken'", "qwen2", "llama-bpe", "smollm"]),
    ],
)
def test_unsupported_is_one_line(tmp_path, model, arch, pre, words):
    with pytest.raises(TokenizerError) as e:
        tokenizer_from_gguf(_write_other(tmp_path / "x.gguf", model, arch, pre))
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_wrapping_errors():
    tokens, ttypes = _spm_vocab()
    tok = build_gemma(tokens, ttypes)
    with pytest.raises(TokenizerError, match="bos token '<nope>'"):
        set_special_wrapping(tok, "<nope>", None, True, False)
    with pytest.raises(TokenizerError, match="unknown token"):
        build_gemma(["a", "b"], None, unk="<unk>")
    set_special_wrapping(tok, "<bos>", "<eos>", True, True)
    assert tok.encode("he").ids == [2, tokens.index("he"), 1]
    set_special_wrapping(tok, "<bos>", "<eos>", False, False)
    assert tok.encode("he").ids == [tokens.index("he")]
