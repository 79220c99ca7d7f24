"""Tokenizers for the engine's models, built with the ``tokenizers`` library.

* :func:`tokenizer_from_gguf`: the byte-level BPE described by a GGUF's
  ``tokenizer.ggml.*`` metadata (``model = gpt2``). For the ``smollm`` pre-type
  (SmolLM2) llama.cpp first splits every digit into its own piece
  (``\\p{N}``), then applies the GPT-2 byte-level regex; we build the same
  pipeline: ``Digits(individual_digits=True)`` then ``ByteLevel``. Control
  tokens (``token_type == 3``, e.g. ``<|im_start|>``) are special tokens.
* :func:`byte_tokenizer`: the tiny test model's tokenizer, one token per byte
  (ids 0..255) plus an end-of-text token.

Both return a :class:`tokenizers.Tokenizer`; ``encode(text).ids`` gives ids
and ``decode(ids)`` the text.
"""

from __future__ import annotations

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

CONTROL = 3  # llama.cpp token type of control tokens
# llama.cpp pre-tokenizer types that split digits one by one before the GPT-2 regex
DIGIT_SPLIT_PRE = ("smollm", "starcoder", "refact", "codeshell")
PLAIN_PRE = ("gpt-2", "gpt2", "default")


class TokenizerError(ValueError):
    """GGUF tokenizer metadata this module cannot rebuild."""


def build_bpe(
    tokens: list[str], merges: list[str], token_types: list[int] | None, pre: str
) -> Tokenizer:
    """A byte-level BPE tokenizer from GGUF-style vocab (id order), merges ("a b") and types.

    pre: llama.cpp's ``tokenizer.ggml.pre`` name; one of DIGIT_SPLIT_PRE or PLAIN_PRE.
    """
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise TokenizerError("tokenizer.ggml.tokens has duplicate entries")
    pairs = []
    for m in merges:
        a, sep, b = m.partition(" ")
        if not sep:
            raise TokenizerError(f"tokenizer.ggml.merges entry {m!r} is not 'left right'")
        pairs.append((a, b))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False, byte_fallback=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in DIGIT_SPLIT_PRE:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level]
        )
    elif pre in PLAIN_PRE:
        tok.pre_tokenizer = byte_level
    else:
        raise TokenizerError(
            f"tokenizer.ggml.pre {pre!r} is not supported (supported: "
            f"{', '.join(DIGIT_SPLIT_PRE + PLAIN_PRE)})"
        )
    tok.decoder = decoders.ByteLevel()
    if token_types is not None:
        special = [
            AddedToken(tokens[i], special=True, normalized=False)
            for i, t in enumerate(token_types)
            if int(t) == CONTROL
        ]
        tok.add_special_tokens(special)
    return tok


def tokenizer_from_gguf(reader) -> Tokenizer:
    """The tokenizer described by an open ``gguf.GGUFReader``'s ``tokenizer.ggml.*`` metadata."""
    from .gguf_loader import field_value

    model = field_value(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        raise TokenizerError(
            f"tokenizer.ggml.model {model!r} is not supported (only byte-level BPE 'gpt2')"
        )
    tokens = list(field_value(reader, "tokenizer.ggml.tokens"))
    merges = list(field_value(reader, "tokenizer.ggml.merges", default=[], required=False))
    types = field_value(reader, "tokenizer.ggml.token_type", default=None, required=False)
    pre = field_value(reader, "tokenizer.ggml.pre", default="default", required=False)
    return build_bpe(tokens, merges, None if types is None else list(types), pre)


def byte_tokenizer() -> Tokenizer:
    """One token per byte (ids 0..255, byte-level symbols) plus ``<|endoftext|>`` = 256:
    vocab 257."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    # ByteLevel maps byte b to a printable symbol; order the vocab by byte value
    symbols = [_BYTE_SYMBOL[b] for b in range(256)]
    assert set(symbols) == set(alphabet)
    tok = Tokenizer(models.BPE(vocab={s: i for i, s in enumerate(symbols)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    return tok


def _gpt2_byte_symbols() -> list[str]:
    """GPT-2's byte -> printable-character map (the one ByteLevel uses), by byte value."""
    keep = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs, n = {}, 0
    for b in range(256):
        if b in keep:
            cs[b] = chr(b)
        else:
            cs[b] = chr(256 + n)
            n += 1
    return [cs[b] for b in range(256)]


_BYTE_SYMBOL = _gpt2_byte_symbols()
