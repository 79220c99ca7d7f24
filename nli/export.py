"""Export a table for hardware flows: a C header, Verilog ``$readmemh`` files, numpy arrays.

The renderers are pure (table -> text / arrays); :func:`export_table` writes them
atomically (temp file + rename, so no file is ever half-written).

* ``c``: one header of ``uint16_t`` arrays (cutpoints, bins, base, lut, below,
  above: FP16 bit patterns and small integers) and ``uint32_t`` FP32 bit patterns
  for ``mul``.
* ``hex``: a directory of ``$readmemh`` files, one memory each
  (``cutpoints.hex``, ``mul.hex`` 32-bit words, ``bins.hex``, ``base.hex``,
  ``lut.hex``, ``clamps.hex`` = below then above), one hex word per line.
* ``npz``: ``numpy.savez`` of the same arrays (uint16 / uint32 / int64).
"""
from __future__ import annotations

import io
import os
from pathlib import Path
import re

import numpy as np

from .atomic import atomic_write
from .table import Table, atomic_write_text

FORMATS = ("c", "hex", "npz")


def table_arrays(table: Table) -> dict[str, np.ndarray]:
    """The numerics §2 fields as bit-pattern arrays: uint16 FP16 fields, uint32 mul bits, int64 bins/base."""
    return {
        "cutpoints": table.cutpoints.astype(np.uint16),
        "bins": table.bins.astype(np.int64),
        "base": table.base.astype(np.int64),
        "mul": table.mul.astype(np.float32).view(np.uint32),
        "lut": table.lut.astype(np.uint16),
        "below": np.array([table.below], dtype=np.uint16),
        "above": np.array([table.above], dtype=np.uint16),
    }


def _c_array(ctype: str, name: str, values, width: int) -> str:
    body = ",\n".join(
        "    " + ", ".join(f"0x{int(v):0{width}x}" for v in values[i:i + 8])
        for i in range(0, len(values), 8))
    return f"static const {ctype} {name}[{len(values)}] = {{\n{body}\n}};\n"


def c_header(table: Table, name: str | None = None) -> str:
    """A self-contained C header for ``table``; identifiers start with NLI_<NAME>_."""
    name = re.sub(r"[^A-Za-z0-9]", "_", name or table.function).upper()
    a = table_arrays(table)
    guard = f"NLI_TABLE_{name}_H"
    p = f"NLI_{name}"
    out = [f"/* NLI Engine table for {table.function}: numerics §2 fields as bit patterns.\n"
           f" * FP16 values are IEEE binary16 bit patterns, mul[] holds IEEE binary32 bit patterns.\n"
           f" * precision: {table.precision}; K = {table.K} macro intervals; {table.entries} LUT entries. */\n",
           f"#ifndef {guard}\n#define {guard}\n\n#include <stdint.h>\n\n",
           f"#define {p}_K {table.K}\n#define {p}_ENTRIES {table.entries}\n",
           f"#define {p}_PRECISION_FP32 {1 if table.precision == 'fp32' else 0}\n",
           f"#define {p}_BELOW ((uint16_t)0x{table.below:04x})\n#define {p}_ABOVE ((uint16_t)0x{table.above:04x})\n\n",
           _c_array("uint16_t", f"{p}_CUTPOINTS", a["cutpoints"], 4),
           _c_array("uint16_t", f"{p}_BINS", a["bins"], 4),
           _c_array("uint16_t", f"{p}_BASE", a["base"], 4),
           _c_array("uint32_t", f"{p}_MUL", a["mul"], 8),
           _c_array("uint16_t", f"{p}_LUT", a["lut"], 4),
           f"\n#endif /* {guard} */\n"]
    return "".join(out)


def readmemh_files(table: Table) -> dict[str, str]:
    """file name -> contents of one ``$readmemh`` memory image per field."""
    a = table_arrays(table)

    def mem(values, width, comment):
        return f"// {comment}\n" + "".join(f"{int(v):0{width}x}\n" for v in values)

    fn = table.function
    return {
        "cutpoints.hex": mem(a["cutpoints"], 4, f"{fn}: {table.K + 1} cutpoints, FP16 bits"),
        "mul.hex": mem(a["mul"], 8, f"{fn}: {table.K} scale registers, FP32 bits"),
        "bins.hex": mem(a["bins"], 4, f"{fn}: bins per macro interval"),
        "base.hex": mem(a["base"], 4, f"{fn}: LUT base index per macro interval"),
        "lut.hex": mem(a["lut"], 4, f"{fn}: {table.entries} LUT entries, FP16 bits"),
        "clamps.hex": mem([table.below, table.above], 4, f"{fn}: below, above, FP16 bits"),
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
            raise ValueError(f"{path}: --format hex writes a directory of .hex files, but this is a file")
        written = []
        for name, text in readmemh_files(table).items():
            atomic_write_text(path / name, text)
            written.append(path / name)
        return written
    if fmt == "npz":
        buf = io.BytesIO()
        np.savez(buf, **table_arrays(table))
        _atomic_write_bytes(path, buf.getvalue())
        return [path]
    raise ValueError(f"format: must be one of {', '.join(FORMATS)}, got {fmt!r}")
