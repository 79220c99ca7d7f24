"""Tokenizers for the engine's models, built with the ``tokenizers`` library.

* :func:`tokenizer_from_gguf`: the tokenizer described by a GGUF's
  ``tokenizer.ggml.*`` metadata, dispatched on ``tokenizer.ggml.model``:

  - ``gpt2`` (byte-level BPE, :func:`build_bpe`), by ``tokenizer.ggml.pre``:
    ``smollm`` (SmolLM2) and the other DIGIT_SPLIT_PRE types: llama.cpp first
    splits every digit into its own piece (``\\p{N}``), then applies the GPT-2
    byte-level regex; we build the same pipeline: ``Digits(individual_digits=True)``
    then ``ByteLevel``. ``qwen2`` (Qwen2/Qwen3) and ``llama-bpe`` (Llama-3) and
    their aliases (SPLIT_REGEX): that split regex (llama.cpp's, as transformers'
    GGUF converter spells it), then ``ByteLevel`` without its own regex.
  - ``llama`` (SentencePiece vocabulary) of a Gemma architecture
    (:func:`build_gemma`, Gemma 3 270M): the BPE that transformers' GGUF converter builds
    (``gemma_tokenizer`` in ``transformers.integrations.gguf``, formerly
    ``GGUFGemmaConverter``): spaces become U+2581,
    no pre-split, byte fallback to the ``<0xXX>`` tokens, merges rebuilt from the
    vocabulary in file order (:func:`vocab_merges`; the file has none).

  Control tokens (``token_type == 3``, e.g. ``<|im_start|>``, ``<bos>``) are special
  tokens; user-defined ones (``token_type == 4``, e.g. Gemma's ``"\\n\\n"``) are
  matched whole as plain added tokens. ``tokenizer.ggml.add_bos_token`` /
  ``add_eos_token`` become a ``TemplateProcessing`` post-processor
  (:func:`set_special_wrapping`), so ``encode(text).ids`` equals transformers'
  ``tokenizer(text).input_ids`` (Gemma: ``<bos>`` first; SmolLM2: nothing added).
  ``encode(text, add_special_tokens=False)`` leaves them out.
* :func:`byte_tokenizer`: the tiny test model's tokenizer, one token per byte
  (ids 0..255) plus an end-of-text token.

All return a :class:`tokenizers.Tokenizer`; ``encode(text).ids`` gives ids
and ``decode(ids)`` the text.
"""

from __future__ import annotations

from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
)

CONTROL = 3  # llama.cpp token type of control tokens
USER_DEFINED = 4  # llama.cpp token type of user-defined tokens (matched whole, not special)
# llama.cpp pre-tokenizer types that split digits one by one before the GPT-2 regex
DIGIT_SPLIT_PRE = ("smollm", "starcoder", "refact", "codeshell")
PLAIN_PRE = ("gpt-2", "gpt2", "default")
# llama.cpp's split regexes (as transformers' GGUF converter writes them) by pre-tokenizer type
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPLIT_REGEX = {
    "llama-bpe": _LLAMA3_SPLIT,  # Llama-3
    "llama3": _LLAMA3_SPLIT,
    "llama-v3": _LLAMA3_SPLIT,
    "qwen2": _QWEN2_SPLIT,  # Qwen2, Qwen2.5, Qwen3
    "deepseek-r1-qwen": _QWEN2_SPLIT,
}
GPT2_PRE = DIGIT_SPLIT_PRE + PLAIN_PRE + tuple(SPLIT_REGEX)
# tokenizer.ggml.model "llama" (SentencePiece vocabulary): the architectures rebuilt here
GEMMA_ARCHITECTURES = ("gemma", "gemma2", "gemma3")
SUPPORTED = (
    "gpt2 (pre: " + ", ".join(GPT2_PRE) + "), llama (" + ", ".join(GEMMA_ARCHITECTURES) + ")"
)
SPM_SPACE = "\u2581"  # SentencePiece's visible space


class TokenizerError(ValueError):
    """GGUF tokenizer metadata this module cannot rebuild."""


def build_bpe(
    tokens: list[str], merges: list[str], token_types: list[int] | None, pre: str
) -> Tokenizer:
    """A byte-level BPE tokenizer from GGUF-style vocab (id order), merges ("a b") and types.

    pre: llama.cpp's ``tokenizer.ggml.pre`` name; one of GPT2_PRE.
    """
    vocab = _vocab(tokens)
    pairs = []
    for m in merges:
        a, sep, b = m.partition(" ")
        if not sep:
            raise TokenizerError(f"tokenizer.ggml.merges entry {m!r} is not 'left right'")
        pairs.append((a, b))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False, byte_fallback=False))
    if pre in DIGIT_SPLIT_PRE:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            ]
        )
    elif pre in PLAIN_PRE:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif pre in SPLIT_REGEX:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(SPLIT_REGEX[pre]), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        raise TokenizerError(
            f"tokenizer.ggml.pre {pre!r} is not supported (supported: {', '.join(GPT2_PRE)})"
        )
    tok.decoder = decoders.ByteLevel()
    _add_typed_tokens(tok, tokens, token_types)
    return tok


def vocab_merges(tokens: list[str], vocab: dict[str, int] | None = None) -> list[tuple[str, str]]:
    """BPE merges implied by a vocabulary without merges: every split ``(left, right)`` of a
    token into two vocabulary entries, tokens in file order, longer left parts first.

    This is transformers' ``generate_merges`` ranked by file position (what its GGUF converter
    does for Gemma, whose scores do not follow the merge order), written directly: the sort key
    (position, len(left)) is the loop order. ``vocab``: ``{token: id}`` of ``tokens`` if the
    caller has it.
    """
    vocab = _vocab(tokens) if vocab is None else vocab
    merges = []
    for t in tokens:
        for i in range(len(t) - 1, 0, -1):
            left = t[:i]
            if left in vocab:
                right = t[i:]
                if right in vocab:
                    merges.append((left, right))
    return merges


def build_gemma(tokens: list[str], token_types: list[int] | None, unk: str = "<unk>") -> Tokenizer:
    """Gemma's SentencePiece-style BPE from a GGUF's vocabulary (id order) and token types.

    A whitespace-only token with a space in it (user-defined, e.g. ``"  "``) is looked up as
    that many U+2581, as the normalized text spells it (transformers' rule); the file lists
    no merges, so they come from :func:`vocab_merges`.
    """
    spelled = [SPM_SPACE * len(t) if " " in t and not t.strip() else t for t in tokens]
    vocab = _vocab(spelled)
    if unk not in vocab:
        raise TokenizerError(f"the unknown token {unk!r} is not in tokenizer.ggml.tokens")
    tok = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=vocab_merges(spelled, vocab),
            unk_token=unk,
            fuse_unk=True,
            byte_fallback=True,
        )
    )
    tok.normalizer = normalizers.Replace(" ", SPM_SPACE)
    # a no-op after the normalizer (there are no spaces left); kept as transformers has it
    tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    tok.decoder = decoders.Sequence(
        [decoders.Replace(SPM_SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    _add_typed_tokens(tok, tokens, token_types, known=vocab)
    return tok


def set_special_wrapping(
    tok: Tokenizer, bos: str | None, eos: str | None, add_bos: bool, add_eos: bool
) -> Tokenizer:
    """Make ``tok.encode`` add ``bos`` first and/or ``eos`` last (a ``TemplateProcessing``
    post-processor, the one transformers sets: pairs get ``bos`` before each part); neither:
    no post-processor. Returns ``tok``."""
    ends = [(name, t, on) for name, t, on in (("bos", bos, add_bos), ("eos", eos, add_eos)) if on]
    if not ends:
        tok.post_processor = None
        return tok
    special = []
    for name, t, _ in ends:
        tid = None if t is None else tok.token_to_id(t)
        if tid is None:
            raise TokenizerError(f"add_{name}_token is set but the {name} token {t!r} is unknown")
        special.append((t, tid))
    pre = f"{bos}:0 " if add_bos else ""
    single = f"{pre}$A:0" + (f" {eos}:0" if add_eos else "")
    pair = single + (f" {bos}:1" if add_bos else "") + " $B:1" + (f" {eos}:1" if add_eos else "")
    tok.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=special
    )
    return tok


def tokenizer_from_gguf(reader) -> Tokenizer:
    """The tokenizer described by an open ``gguf.GGUFReader``'s ``tokenizer.ggml.*`` metadata.

    Raises TokenizerError (one line, naming the supported kinds) for another tokenizer model,
    pre-tokenizer type or SentencePiece architecture.
    """
    from .gguf_loader import field_value

    def meta(key, default=None):
        return field_value(reader, f"tokenizer.ggml.{key}", default=default, required=False)

    model = field_value(reader, "tokenizer.ggml.model")
    tokens = list(field_value(reader, "tokenizer.ggml.tokens"))
    types = meta("token_type")
    types = None if types is None else [int(t) for t in types]
    if model == "gpt2":
        tok = build_bpe(tokens, list(meta("merges", [])), types, meta("pre", "default"))
        add_bos = bool(meta("add_bos_token", False))
    elif model == "llama":
        arch = field_value(reader, "general.architecture", default="?", required=False)
        if arch not in GEMMA_ARCHITECTURES:
            raise TokenizerError(
                f"tokenizer.ggml.model 'llama' of architecture {arch!r} is not supported "
                f"(supported: {SUPPORTED})"
            )
        unk_id = meta("unknown_token_id")
        tok = build_gemma(tokens, types, "<unk>" if unk_id is None else _token(tokens, unk_id))
        # llama.cpp (and transformers) add BOS to a SentencePiece vocabulary unless told not to
        add_bos = bool(meta("add_bos_token", True))
    else:
        raise TokenizerError(
            f"tokenizer.ggml.model {model!r} is not supported (supported: {SUPPORTED})"
        )
    bos_id, eos_id = meta("bos_token_id"), meta("eos_token_id")
    return set_special_wrapping(
        tok,
        None if bos_id is None else _token(tokens, bos_id),
        None if eos_id is None else _token(tokens, eos_id),
        add_bos,
        bool(meta("add_eos_token", False)),
    )


def _vocab(tokens: list[str]) -> dict[str, int]:
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise TokenizerError("tokenizer.ggml.tokens has duplicate entries")
    return vocab


def _token(tokens: list[str], i) -> str:
    if not 0 <= int(i) < len(tokens):
        raise TokenizerError(f"token id {int(i)} is outside the vocabulary of {len(tokens)}")
    return tokens[int(i)]


def _add_typed_tokens(
    tok: Tokenizer, tokens: list[str], token_types: list[int] | None, known=None
) -> None:
    """Control tokens as special tokens, then user-defined ones (present in ``known``, default
    all) as plain added tokens, both matched whole in the raw text."""
    if token_types is None:
        return
    if len(token_types) != len(tokens):
        raise TokenizerError(
            f"tokenizer.ggml.token_type has {len(token_types)} entries for {len(tokens)} tokens"
        )
    control = [tokens[i] for i, t in enumerate(token_types) if t == CONTROL]
    user = [
        tokens[i]
        for i, t in enumerate(token_types)
        if t == USER_DEFINED and (known is None or tokens[i] in known)
    ]
    if control:
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    if user:
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in user])


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
