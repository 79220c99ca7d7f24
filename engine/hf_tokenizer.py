"""A transformers tokenizer behind the ``tokenizers.Tokenizer`` calls the engine makes
(:class:`HFTokenizer`), so an ``hf:`` model's tokenizer serves ``nli eval`` and the experiments
like the engine's own tokenizers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TokenIds:
    """What ``HFTokenizer.encode`` returns: ``ids`` as a ``tokenizers.Encoding`` has them."""

    ids: list


class HFTokenizer:
    """A transformers tokenizer behind the ``tokenizers.Tokenizer`` calls the engine makes:
    ``encode(text).ids`` (with transformers' own special tokens, e.g. BOS, as
    ``tokenizer.encode(text)`` adds them), ``decode(ids)``, ``get_vocab_size()``,
    ``token_to_id(token)``."""

    def __init__(self, tok):
        self.hf = tok
        tok.model_max_length = int(1e30)  # texts are windowed by the engine, not truncated here

    def encode(self, text: str) -> TokenIds:
        return TokenIds(list(self.hf.encode(text)))

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def get_vocab_size(self) -> int:
        return len(self.hf)

    def token_to_id(self, token: str):
        return self.hf.get_vocab().get(token)
