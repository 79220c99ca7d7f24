"""engine.tokenizer: byte-level BPE from GGUF metadata (digits split one by one), the tiny byte
tokenizer."""

import pytest

from engine.tokenizer import _BYTE_SYMBOL, TokenizerError, build_bpe, byte_tokenizer

TEXTS = [
    "Hello, world!",
    "Price: 12345 apples, 3.14 pies.",
    "  two  spaces\nnew line\ttab",
    "naïve café — “quotes” 🙂",
    "",
]


def _small_bpe(pre="smollm"):
    """Byte symbols + merges that would fuse '12' and ' the' if the pre-tokenizer allowed it."""
    sp = _BYTE_SYMBOL[ord(" ")]
    tokens = ["<|endoftext|>"] + _BYTE_SYMBOL + ["12", sp + "t", "he", sp + "the", "123"]
    merges = ["1 2", f"{sp} t", "h e", f"{sp}t he", "12 3"]
    types = [3] + [1] * (len(tokens) - 1)
    return build_bpe(tokens, merges, types, pre)


@pytest.mark.parametrize("text", TEXTS)
def test_roundtrip(text):
    for tok in (_small_bpe(), byte_tokenizer()):
        assert tok.decode(tok.encode(text).ids) == text


def test_digits_split_individually():
    tok = _small_bpe("smollm")
    enc = tok.encode("x 12345 the")
    assert enc.tokens.count("12") == 0 and enc.tokens.count("123") == 0
    digits = [t for t in enc.tokens if t.strip(_BYTE_SYMBOL[ord(" ")]).isdigit()]
    assert digits == ["1", "2", "3", "4", "5"]
    assert _BYTE_SYMBOL[ord(" ")] + "the" in enc.tokens  # ordinary merges still apply
    # without the digit split (plain GPT-2 pre-tokenizer) the merges fuse digits
    assert "123" in _small_bpe("gpt2").encode("x 12345").tokens


def test_special_tokens():
    tok = _small_bpe()
    ids = tok.encode("a<|endoftext|>b").ids
    assert 0 in ids and len(ids) == 3


def test_byte_tokenizer_ids_are_bytes():
    tok = byte_tokenizer()
    text = "Aé\n"
    assert tok.encode(text).ids == list(text.encode("utf-8"))
    assert tok.get_vocab_size() == 257
    assert tok.encode("<|endoftext|>").ids == [256]


def test_errors():
    with pytest.raises(TokenizerError, match="pre"):
        _small_bpe("tekken")  # a llama.cpp pre-type not rebuilt here
    with pytest.raises(TokenizerError, match="merges"):
        build_bpe(["a", "b"], ["ab"], None, "smollm")


@pytest.mark.real_model
def test_smollm2_tokenizer():
    from engine.gguf_loader import open_gguf, smollm2_path
    from engine.tokenizer import tokenizer_from_gguf

    tok = tokenizer_from_gguf(open_gguf(smollm2_path()))
    assert tok.get_vocab_size() == 49152
    for text in TEXTS:
        assert tok.decode(tok.encode(text).ids) == text
    enc = tok.encode("In 2024, 1,000,000 people")
    assert [t for t in enc.tokens if t.isdigit()] == list("2024") + list("1") + list("000") + list(
        "000"
    )
    assert tok.encode("<|im_start|>user").ids[0] == 1  # a control token of the GGUF, id 1
