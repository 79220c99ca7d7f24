"""One source for each format constant and vocabulary: nli/formats.py.

Scans the project's source packages (nli, hw_sim, engine, moe, benchmarks) with ``ast`` and fails
if a copy of an owned constant or vocabulary appears outside nli/formats.py:

* a module-level assignment to one of the owned names (``FP16_NAN = ...``); importing the name
  is fine;
* the bare literals 65520 (the FP16 overflow threshold) or 0x7E00 (the canonical NaN) in code
  (comments and strings are not code; ast never sees comments);
* a tuple / list / set literal holding exactly the members of an owned vocabulary, in any order
  (e.g. ``("reduced", "direct")``), anywhere in the code;
* a dict literal equal to OP_TABLES.

tests/ is not scanned, on purpose: tests/naive.py is the independent oracle and keeps its own
constants so that a wrong value in nli/formats.py cannot make both sides agree, and test
parametrizations spell their cases out so a test reads on its own.
"""

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from nli import formats

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("nli", "hw_sim", "engine", "moe", "benchmarks")
OWNER = ROOT / "nli" / "formats.py"

OWNED_NAMES = {
    "FP16_MAX",
    "FP16_OVERFLOW",
    "FP16_MIN_NORMAL",
    "FP16_MIN_SUBNORMAL",
    "FP16_NAN",
    "FP16_INF",
    "FP16_POS_INF",
    "FP16_NEG_INF",
    "FP16_MAX_BITS",
    "BF16_MAX",
    "BF16_OVERFLOW",
    "BF16_MIN_NORMAL",
    "BF16_MIN_SUBNORMAL",
    "BF16_NAN",
    "BF16_POS_INF",
    "BF16_NEG_INF",
    "BF16_MAX_BITS",
    "DTYPES",
    "DTYPE_FORMATS",
    "TABLE_NUMERICS",
    "FP32_MAX",
    "FP32_NAN",
    "FP32_INF",
    "FP32_POS_INF",
    "NUMERICS_VERSION",
    "MODES",
    "RECIPROCAL_MODES",
    "PRECISIONS",
    "OPS",
    "OP_TABLES",
    "UNIT_FUNCTIONS",
    "INVERSE_FUNCTIONS",
    "SELECT_ON_CHOICES",
    "BACKENDS",
    "RMSNORM_INPUTS",
    "RMSNORM_PRESCALE_TOP",
}
OWNED_NUMBERS = {
    formats.FP16_OVERFLOW,
    formats.FP16_NAN,
}  # 65520 and 0x7E00 (int or float spelling)
OWNED_VOCABULARIES = {
    name: frozenset(getattr(formats, name))
    for name in (
        "MODES",
        "PRECISIONS",
        "OPS",
        "UNIT_FUNCTIONS",
        "INVERSE_FUNCTIONS",
        "SELECT_ON_CHOICES",
        "BACKENDS",
        "RMSNORM_INPUTS",
    )
}


def _sources():
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            if p != OWNER:
                yield p


def _str_members(node):
    """The set of strings of a tuple/list/set literal made only of string constants, else None."""
    if (
        isinstance(node, (ast.Tuple, ast.List, ast.Set))
        and node.elts
        and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts)
    ):
        return frozenset(e.value for e in node.elts)
    return None


def _literal_dict(node):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        return None


def copies_in(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for every copy of an owned constant or vocabulary in a parsed module."""
    out = []
    for stmt in tree.body:  # module-level assignments of owned names
        targets = (
            stmt.targets
            if isinstance(stmt, ast.Assign)
            else [stmt.target]
            if isinstance(stmt, (ast.AnnAssign, ast.AugAssign))
            else []
        )
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Name) and n.id in OWNED_NAMES:
                    out.append((stmt.lineno, f"assigns {n.id}"))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, (int, float))
            and not isinstance(node.value, bool)
            and node.value in OWNED_NUMBERS
        ):
            v = node.value
            out.append((node.lineno, f"literal {hex(v) if isinstance(v, int) else repr(v)}"))
        members = _str_members(node)
        if members is not None:
            out += [
                (node.lineno, f"copy of {name}")
                for name, v in OWNED_VOCABULARIES.items()
                if members == v
            ]
        if isinstance(node, ast.Dict) and _literal_dict(node) == formats.OP_TABLES:
            out.append((node.lineno, "copy of OP_TABLES"))
    return out


def test_no_copy_of_an_owned_constant_or_vocabulary():
    found = [
        f"{p.relative_to(ROOT)}:{line}: {what}"
        for p in _sources()
        for line, what in copies_in(ast.parse(p.read_text(encoding="utf-8"), str(p)))
    ]
    assert not found, "copies of nli/formats.py constants (import them instead):\n" + "\n".join(
        found
    )


@pytest.mark.parametrize(
    "source,what",
    [
        ("FP16_NAN = 0x7E00\n", "assigns FP16_NAN"),
        ("RECIPROCAL_MODES: tuple = ('reduced', 'direct')\n", "assigns RECIPROCAL_MODES"),
        ("def f(v):\n    return v >= 65520.0\n", "literal 65520.0"),
        ("y = np.uint16(0x7e00)\n", "literal 0x7e00"),
        (
            "def f(m):\n    if m not in ['reduced', 'direct']:\n        raise ValueError(m)\n",
            "copy of MODES",
        ),
        (
            "p.add_argument('--select-on', choices=('probs', 'logits'))\n",
            "copy of SELECT_ON_CHOICES",
        ),
        (
            "T = {'softmax': ('exp', 'reciprocal'), 'act': ('<activation>',),"
            " 'rmsnorm': ('rsqrt',)}\n",
            "copy of OP_TABLES",
        ),
    ],
)
def test_scanner_flags_each_kind_of_copy(source, what):
    assert what in [w for _, w in copies_in(ast.parse(source))]


@pytest.mark.parametrize(
    "source",
    [
        "from nli.formats import FP16_NAN, MODES\n",  # imports are the point
        "# |v| >= 65520 overflows; NaN is 0x7e00\nx = 1\n",  # comments are not code
        "def f():\n    '''rounds to 65520 -> inf, NaN 0x7e00'''\n",  # nor are docstrings
        "MODES_HELP = 'direct or reduced'\nk = ('direct',)\n",  # a subset is not the vocabulary
        "x = 65504.0\nNAN32 = 0x7FC00000\n",  # not owned literals
        "def f():\n    FP16_NAN = 1\n    return FP16_NAN\n",  # a local, not a module constant
    ],
)
def test_scanner_leaves_legitimate_code_alone(source):
    assert copies_in(ast.parse(source)) == []


def test_the_constants_are_the_ieee_values():
    """Derived from the bit widths, checked against numpy and the bit patterns spelled out."""
    assert formats.FP16_MAX == float(np.finfo(np.float16).max) == 65504.0
    assert formats.FP32_MAX == float(np.finfo(np.float32).max)
    assert formats.FP16_MIN_NORMAL == float(np.finfo(np.float16).tiny) == 2.0**-14
    assert formats.FP16_MIN_SUBNORMAL == 2.0**-24
    with np.errstate(over="ignore"):
        assert (
            np.float16(formats.FP16_OVERFLOW) == np.inf
        )  # the tie goes to even: away from 65504 (odd)
    assert np.float16(np.nextafter(formats.FP16_OVERFLOW, 0.0)) == formats.FP16_MAX
    assert (
        formats.FP16_NAN,
        formats.FP16_POS_INF,
        formats.FP16_NEG_INF,
        formats.FP16_MAX_BITS,
    ) == (0x7E00, 0x7C00, 0xFC00, 0x7BFF)
    assert np.uint16(formats.FP16_MAX_BITS).view(np.float16) == formats.FP16_MAX
    assert math.isnan(np.uint16(formats.FP16_NAN).view(np.float16))
    assert (formats.FP32_NAN, formats.FP32_POS_INF) == (0x7FC00000, 0x7F800000)
    assert (
        np.uint32(formats.FP32_NAN).view(np.float32).astype(np.float16).view(np.uint16)
        == formats.FP16_NAN
    )
    assert formats.OPS == tuple(formats.OP_TABLES)
    assert set(formats.UNIT_FUNCTIONS) == {
        f for a in formats.ACTIVATIONS for f in formats.op_functions(formats.OPS, a)
    }
    assert set(formats.ACTIVATIONS) <= set(formats.UNIT_FUNCTIONS)
    assert set(formats.OP_ALIASES.values()) <= set(formats.OPS)
    assert set(formats.INVERSE_FUNCTIONS) <= set(formats.UNIT_FUNCTIONS)


def test_numerics_document_states_the_version_tables_carry():
    head = (ROOT / "docs" / "numerics.md").read_text(encoding="utf-8").splitlines()[0]
    assert f"numerics {formats.NUMERICS_VERSION}" in head.lower()


def test_no_reference_outside_the_repository_to_a_spec():
    """The numerics live in docs/numerics.md; nothing points at the former shared spec."""
    hits = [
        str(p.relative_to(ROOT))
        for p in ROOT.rglob("*")
        if p.suffix in {".py", ".md", ".toml", ".sh", ".txt"}
        and p.is_file()
        and ".venv" not in p.parts
        and ".git" not in p.parts
        and "shared/spec" in p.read_text(encoding="utf-8", errors="replace")
        and p != Path(__file__).resolve()
    ]
    assert not hits, hits
