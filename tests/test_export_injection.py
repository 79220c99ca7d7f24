"""Hostile strings cannot inject code or data into generated hardware files.

A table's ``function`` is free text from whoever wrote the file. Its C header must
compile (``cc -fsyntax-only``) and preprocess to exactly the declarations of a benign
table's header; its ``$readmemh`` files, read as ``$readmemh`` reads them (comments
stripped, hex words and @addresses), must hold exactly the benign table's words.
"""

import re
import shutil
import subprocess

import numpy as np
import pytest

from nli.codegen import c_identifier, check_width, comment_text
from nli.export import c_header, readmemh_files
from nli.published import published_table
from nli.table import Table, TableError

HOSTILE = [
    "*/ int evil; /*",
    "silu */\nint evil = 1;\n/*",
    "x\n#define NLI_SILU_K 99\n",
    "a\\",  # backslash: would continue a // line
    "a??/",  # trigraph for backslash
    "??/\n*/ int evil; /*",
    "//\n@0\ndead\nbeef",  # a $readmemh address and data words on new lines
    "/* 1234 */ 5678",
    "\r0000\r",
    "\u2028dead\u2029beef",  # Unicode line / paragraph separators
    "é✓ 𝟘𝟙",  # non-ASCII, mathematical digits
    "a\x00b\x0bc\x0cd",  # NUL, vertical tab, form feed
    "\"'`",
    "",
    "9lives",
    "x" * 250,
]

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")


@pytest.fixture(scope="module")
def benign():
    return published_table("silu")


def _as(t: Table, function: str) -> Table:
    return Table(function, t.cutpoints, t.bins, t.lut, t.below, t.above, t.precision)


def _preprocessed(path) -> str:
    out = subprocess.run(
        ["cc", "-E", "-P", "-dD", "-x", "c", str(path)], capture_output=True, text=True, check=True
    )
    # keep what comes after <stdint.h>'s own definitions: the header's macros and declarations
    text = out.stdout[out.stdout.index("#define NLI_") :]
    return "\n".join(line for line in text.splitlines() if line.strip())


@needs_cc
@pytest.mark.parametrize("fn", HOSTILE, ids=range(len(HOSTILE)))
def test_c_header_of_hostile_function_compiles_to_exactly_the_table(tmp_path, benign, fn):
    t = _as(benign, fn)
    ident = c_identifier(fn)
    assert re.fullmatch(r"[A-Z][A-Z0-9_]*", ident)
    hdr = tmp_path / "t.h"
    hdr.write_text(c_header(t))
    good = tmp_path / "good.h"
    good.write_text(
        c_header(_as(benign, "silu"))
        .replace("NLI_SILU_", f"NLI_{ident}_")
        .replace("NLI_TABLE_SILU_H", f"NLI_TABLE_{ident}_H")
    )
    p = f"NLI_{ident}"
    checks = tmp_path / "checks.c"
    checks.write_text(
        f'#include "t.h"\n#include "t.h"\n'  # the include guard works
        f'_Static_assert({p}_K == {t.K}, "K");\n'
        f'_Static_assert({p}_ENTRIES == {t.entries}, "entries");\n'
        f'_Static_assert(sizeof {p}_CUTPOINTS == {t.K + 1} * sizeof(uint16_t), "cutpoints");\n'
        f'_Static_assert(sizeof {p}_BINS == {t.K} * sizeof(uint16_t), "bins");\n'
        f'_Static_assert(sizeof {p}_BASE == {t.K} * sizeof(uint16_t), "base");\n'
        f'_Static_assert(sizeof {p}_MUL == {t.K} * sizeof(uint32_t), "mul");\n'
        f'_Static_assert(sizeof {p}_LUT == {t.entries} * sizeof(uint16_t), "lut");\n'
        f'_Static_assert({p}_BELOW == 0x{t.below:04x} && {p}_ABOVE == 0x{t.above:04x}, "clamps");\n'
        f"const void *use[] = {{{p}_CUTPOINTS, {p}_BINS, {p}_BASE, {p}_MUL, {p}_LUT}};\n"
    )
    r = subprocess.run(
        ["cc", "-std=c11", "-trigraphs", "-Wall", "-Werror", "-fsyntax-only", str(checks)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    # with comments gone, the hostile header is the benign one, declaration for declaration
    assert _preprocessed(hdr) == _preprocessed(good)


def _readmemh_tokens(text: str) -> list[str]:
    """What $readmemh reads: // and /* */ comments stripped, then whitespace-separated
    hex words and @addresses."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.DOTALL)
    text = re.sub(r"//[^\n]*", " ", text)
    return text.split()


@pytest.mark.parametrize("fn", HOSTILE, ids=range(len(HOSTILE)))
def test_readmemh_files_of_hostile_function_hold_the_same_words(benign, fn):
    good = readmemh_files(_as(benign, "silu"))
    bad = readmemh_files(_as(benign, fn))
    assert bad.keys() == good.keys()
    for name in good:
        toks = _readmemh_tokens(bad[name])
        assert toks == _readmemh_tokens(good[name]), name
        assert all(re.fullmatch(r"[0-9a-f]{4}|[0-9a-f]{8}", w) for w in toks), name
        # one comment line, then words only: no line of the comment can reach the data
        lines = bad[name].split("\n")
        assert lines[0].startswith("// ") and len(lines[0]) < 100 and "\r" not in bad[name]


def test_comment_text_and_identifier_keep_only_safe_characters():
    for fn in HOSTILE:
        s = comment_text(fn)
        assert re.fullmatch(r"[A-Za-z0-9 _.,:;=+()\[\]-]*", s) and len(s) <= 64
        assert "*/" not in s and "//" not in s and "??" not in s
    assert c_identifier("silu") == "SILU" and c_identifier("rsqrt_reduced") == "RSQRT_REDUCED"
    assert c_identifier("9lives") == "TABLE_9LIVES" and c_identifier("*/") == "TABLE"


def test_values_are_range_checked_against_their_field_width():
    assert check_width("bins", [0, 65535], 16) == [0, 65535]
    for bad in ([65536], [-1], [2**63]):
        with pytest.raises(TableError, match=r"bins\[0\].*16-bit"):
            check_width("bins", bad, 16)
    with pytest.raises(TableError, match="32-bit"):
        check_width("mul", [np.uint64(2**32)], 32)
