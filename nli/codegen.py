"""Safe text and fixed-width fields for generated hardware files (C headers, ``$readmemh``
memory images, and any RTL generator that follows).

Every string that reaches generated code is treated as hostile (a table's ``function``
field comes from whoever wrote the file):

* :func:`c_identifier`: what is used as (part of) a C / Verilog identifier keeps only
  ASCII letters, digits and single underscores.
* :func:`comment_text`: what goes into a comment keeps only a small set of printable
  ASCII characters. No ``/``, ``*``, ``\\``, ``?`` (trigraphs such as ``??/``), ``@``,
  quotes or control characters survive, so it can neither end a ``/* */`` comment, open
  one, continue a ``//`` line, nor start a data word or an ``@address`` line of a
  ``$readmemh`` file.

Every number is range-checked against the width it is written into
(:func:`check_width`, :func:`hex_words`): a value that does not fit is an error, never
silently truncated.
"""

from __future__ import annotations

import re

from .table import TableError

MAX_IDENTIFIER_CHARS = 32
MAX_COMMENT_CHARS = 64
_UNSAFE_IDENT = re.compile(r"[^A-Za-z0-9]+")
_UNSAFE_COMMENT = re.compile(r"[^A-Za-z0-9 _.,:;=+()\[\]-]")


def c_identifier(text: str, fallback: str = "TABLE") -> str:
    """``text`` as an upper-case C identifier fragment: ASCII letters and digits, runs of
    anything else one ``_``, no leading/trailing ``_``, at most MAX_IDENTIFIER_CHARS; a fragment
    that would be empty or start with a digit gets ``fallback`` (itself safe) in front."""
    ident = _UNSAFE_IDENT.sub("_", str(text)).strip("_").upper()[:MAX_IDENTIFIER_CHARS].rstrip("_")
    if not ident:
        return fallback
    return f"{fallback}_{ident}" if ident[0].isdigit() else ident


def comment_text(text: str) -> str:
    """``text`` made safe inside a C ``/* */`` or ``//`` comment and a ``$readmemh`` ``//``
    comment: each character outside the safe set becomes ``_``; cut to MAX_COMMENT_CHARS."""
    s = _UNSAFE_COMMENT.sub("_", str(text))
    return s if len(s) <= MAX_COMMENT_CHARS else s[: MAX_COMMENT_CHARS - 3] + "..."


def check_width(field: str, values, bits: int) -> list[int]:
    """``values`` as Python ints, each checked to fit an unsigned ``bits``-bit field."""
    out = []
    for i, v in enumerate(values):
        v = int(v)
        if not 0 <= v < (1 << bits):
            raise TableError(
                f"{field}[{i}] = {v} does not fit the {bits}-bit field it is written into"
            )
        out.append(v)
    return out


def hex_words(field: str, values, bits: int) -> list[str]:
    """Range-checked fixed-width lowercase hex words (bits / 4 digits each)."""
    return [f"{v:0{bits // 4}x}" for v in check_width(field, values, bits)]
