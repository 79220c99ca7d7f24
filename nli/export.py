"""Export a table for hardware flows: a C header, Verilog ``$readmemh`` files, numpy arrays.

The renderers are pure (table -> text / arrays); :func:`export_table` writes them
atomically (temp file + rename, so no file is ever half-written).

* ``c``: one header of ``uint16_t`` arrays (cutpoints, bins, base, lut, below,
  above: FP16 bit patterns and small integers) and ``uint32_t`` FP32 bit patterns
  for ``mul``; ``NLI_<NAME>_DTYPE_BF16`` is 1 for a bf16 table (numerics §13: the 16-bit
  fields are then BF16 bit patterns), 0 for fp16.
* ``hex``: a directory of ``$readmemh`` files, one memory each
  (``cutpoints.hex``, ``mul.hex`` 32-bit words, ``bins.hex``, ``base.hex``,
  ``lut.hex``, ``clamps.hex`` = below then above), one hex word per line; each file's
  comment line names the format of its words (FP16 or BF16 bits).
* ``npz``: ``numpy.savez`` of the same arrays (uint16 / uint32 / int64) and ``dtype``, a 0-d
  string array ("fp16" or "bf16").
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .codegen import c_identifier, check_width, comment_text, hex_words
from .table import Table, atomic_write_text

FORMATS = ("c", "hex", "npz")


def table_arrays(table: Table) -> dict[str, np.ndarray]:
    """The numerics §2 fields as bit-pattern arrays: uint16 FP16 (or BF16) fields, uint32 mul
    bits, int64 bins/base."""
    return {
        "cutpoints": table.cutpoints.astype(np.uint16),
        "bins": table.bins.astype(np.int64),
        "base": table.base.astype(np.int64),
        "mul": table.mul.astype(np.float32).view(np.uint32),
        "lut": table.lut.astype(np.uint16),
        "below": np.array([table.below], dtype=np.uint16),
        "above": np.array([table.above], dtype=np.uint16),
    }


# field -> (C type, bits) of the fixed-width memory / array each field is written into
WIDTHS = {
    "cutpoints": ("uint16_t", 16),
    "bins": ("uint16_t", 16),
    "base": ("uint16_t", 16),
    "mul": ("uint32_t", 32),
    "lut": ("uint16_t", 16),
    "clamps": ("uint16_t", 16),
}


def _c_array(field: str, name: str, values) -> str:
    ctype, bits = WIDTHS[field]
    words = hex_words(field, values, bits)
    body = ",\n".join(
        "    " + ", ".join(f"0x{w}" for w in words[i : i + 8]) for i in range(0, len(words), 8)
    )
    return f"static const {ctype} {name}[{len(words)}] = {{\n{body}\n}};\n"


def c_header(table: Table, name: str | None = None) -> str:
    """A self-contained C header for ``table``; identifiers start with NLI_<NAME>_ (NAME: a safe
    identifier made from ``name`` or the function); the function name appears only in a
    comment, made safe (see :mod:`nli.codegen`)."""
    name = c_identifier(name or table.function)
    a = table_arrays(table)
    fmt = "FP16 values are IEEE binary16" if table.dtype == "fp16" else "BF16 values are bfloat16"
    below, above = hex_words("clamps", [table.below, table.above], 16)
    k, entries = check_width("K", [table.K], 16)[0], check_width("entries", [table.entries], 17)[0]
    guard = f"NLI_TABLE_{name}_H"
    p = f"NLI_{name}"
    out = [
        f"/* NLI Engine table for {comment_text(table.function)}: "
        "numerics §2 fields as bit patterns.\n"
        f" * {fmt} bit patterns, mul[] holds IEEE binary32 bit patterns.\n"
        f" * precision: {comment_text(table.precision)}; K = {k} macro intervals; "
        f"{entries} LUT entries. */\n",
        f"#ifndef {guard}\n#define {guard}\n\n#include <stdint.h>\n\n",
        f"#define {p}_K {k}\n#define {p}_ENTRIES {entries}\n",
        f"#define {p}_PRECISION_FP32 {1 if table.precision == 'fp32' else 0}\n",
        f"#define {p}_DTYPE_BF16 {1 if table.dtype == 'bf16' else 0}\n",
        f"#define {p}_BELOW ((uint16_t)0x{below})\n#define {p}_ABOVE ((uint16_t)0x{above})\n\n",
        _c_array("cutpoints", f"{p}_CUTPOINTS", a["cutpoints"]),
        _c_array("bins", f"{p}_BINS", a["bins"]),
        _c_array("base", f"{p}_BASE", a["base"]),
        _c_array("mul", f"{p}_MUL", a["mul"]),
        _c_array("lut", f"{p}_LUT", a["lut"]),
        f"\n#endif /* {guard} */\n",
    ]
    return "".join(out)


def readmemh_files(table: Table) -> dict[str, str]:
    """file name -> contents of one ``$readmemh`` memory image per field: a ``//`` comment line
    (made safe, see :mod:`nli.codegen`) then one range-checked hex word per line."""
    a = table_arrays(table)

    def mem(field, values, comment):
        return f"// {comment_text(comment)}\n" + "".join(
            w + "\n" for w in hex_words(field, values, WIDTHS[field][1])
        )

    fn = table.function
    f16 = table.dtype.upper()  # FP16 or BF16: the format of the 16-bit words
    return {
        "cutpoints.hex": mem(
            "cutpoints", a["cutpoints"], f"{fn}: {table.K + 1} cutpoints, {f16} bits"
        ),
        "mul.hex": mem("mul", a["mul"], f"{fn}: {table.K} scale registers, FP32 bits"),
        "bins.hex": mem("bins", a["bins"], f"{fn}: bins per macro interval"),
        "base.hex": mem("base", a["base"], f"{fn}: LUT base index per macro interval"),
        "lut.hex": mem("lut", a["lut"], f"{fn}: {table.entries} LUT entries, {f16} bits"),
        "clamps.hex": mem("clamps", [table.below, table.above], f"{fn}: below, above, {f16} bits"),
    }


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, data)


def export_table(table: Table, fmt: str, path: str | os.PathLike) -> list[Path]:
    """Write ``table`` in format ``fmt`` (one of FORMATS) to ``path`` (a directory for ``hex``).
    Every file is written atomically. Returns the paths written."""
    path = Path(path)
    if fmt == "c":
        atomic_write_text(path, c_header(table))
        return [path]
    if fmt == "hex":
        if path.exists() and not path.is_dir():
            raise ValueError(
                f"{path}: --format hex writes a directory of .hex files, but this is a file"
            )
        written = []
        for name, text in readmemh_files(table).items():
            atomic_write_text(path / name, text)
            written.append(path / name)
        return written
    if fmt == "npz":
        buf = io.BytesIO()
        np.savez(buf, **table_arrays(table), dtype=np.array(table.dtype))
        _atomic_write_bytes(path, buf.getvalue())
        return [path]
    raise ValueError(f"format: must be one of {', '.join(FORMATS)}, got {fmt!r}")
