"""The table object (numerics §2), its validation, and its JSON file (section 6).

A :class:`Table` is the unit of exchange between the solver, the simulator,
the torch path and the ONNX export. FP16 values are ``uint16`` bit patterns,
``mul`` is ``float32``. It validates every rule of numerics §2 on
construction, so an invalid table cannot exist in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
import json
import os

import numpy as np

from .atomic import atomic_write
from .formats import DTYPES, PRECISIONS, TABLE_NUMERICS
from .grid import (
    bits_to_f64,
    f16_hex,
    f32_hex,
    parse_f16_hex,
    parse_f32_hex,
    rne16,
    rne32,
)
from .strict_json import JsonFileError, read_json_file, show
from .table_fields import (
    TableError,
    bit_patterns,
    check_cutpoints,
    check_dtype,
    check_end_value,
    check_lut,
    check_mul,
    int_list,
)

FORMAT = "nli-table"
VERSION = 1
# Size limits (also the widths the hardware files use: LUT addresses, bins and base are 16 bits)
MAX_ENTRIES = 1 << 16  # 1 + sum(bins) LUT entries; so bins[I] <= 65535 and K <= 65535
MAX_FUNCTION_CHARS = 256
MAX_TABLE_FILE_BYTES = 4 << 20  # a 65,536-entry table file is about 0.7 MB


def expected_mul(cutpoints_bits: np.ndarray, bins: np.ndarray, dtype: str = "fp16") -> np.ndarray:
    """mul[I] = RNE32(bins[I] / (c_{I+1} - c_I)), rounded once from the exact quotient.

    cutpoints_bits: uint16[K+1] patterns of ``dtype``; bins: int[K] -> float32[K].
    """
    c = bits_to_f64(cutpoints_bits, dtype)
    out = np.empty(len(bins), dtype=np.float32)
    for i, b in enumerate(bins):
        out[i] = np.float32(rne32(Fraction(int(b)) / (Fraction(c[i + 1]) - Fraction(c[i]))))
    return out


@dataclass(frozen=True, eq=False)
class Table:
    """One NLI table (numerics §2).

    Fields: ``function`` (name), ``cutpoints`` uint16[K+1], ``bins`` int64[K],
    ``base`` int64[K], ``mul`` float32[K], ``lut`` uint16[1 + sum(bins)],
    ``below``/``above`` bit patterns (int), ``precision`` ('fp32'|'fp16'),
    ``meta``: everything else the file records (objective, cost: the solver's
    objective value, domain, solver settings, provenance), and ``dtype`` ('fp16'|'bf16',
    numerics §13): the format of the cutpoints, LUT, below/above, inputs and outputs.
    """

    function: str
    cutpoints: np.ndarray
    bins: np.ndarray
    lut: np.ndarray
    below: int
    above: int
    precision: str = "fp32"
    base: np.ndarray | None = None
    mul: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    dtype: str = "fp16"

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        # Integer fields are checked as Python ints, against explicit bounds, before any numpy
        # arithmetic (int64 sums wrap silently): a table that passes can never make a kernel
        # index out of range (LUT addresses g + 1 <= sum(bins) < MAX_ENTRIES).
        if not isinstance(self.function, str) or len(self.function) > MAX_FUNCTION_CHARS:
            raise TableError(
                f"function: must be a string of at most {MAX_FUNCTION_CHARS} characters"
            )
        if not isinstance(self.meta, dict):
            raise TableError("meta: must be a dict")
        c = bit_patterns("cutpoints", self.cutpoints, MAX_ENTRIES)
        if c.size < 2:
            raise TableError("cutpoints: need at least 2 values (one macro interval)")
        set_("cutpoints", c)
        bins = int_list("bins", self.bins, MAX_ENTRIES)
        if len(bins) != c.size - 1:
            raise TableError(
                f"bins: need {c.size - 1} entries (one per macro interval), got {len(bins)}"
            )
        base, total = [], 0
        for i, b in enumerate(bins):
            if not 1 <= b <= MAX_ENTRIES - 1:
                raise TableError(
                    f"bins: every entry must be an integer in 1..{MAX_ENTRIES - 1}, "
                    f"bins[{i}] = {show(b)}"
                )
            base.append(total)
            total += b
            if total > MAX_ENTRIES - 1:
                raise TableError(
                    f"bins: sum(bins) must be at most {MAX_ENTRIES - 1} "
                    f"(1 + sum(bins) LUT entries, at most {MAX_ENTRIES})"
                )
        if self.base is not None and int_list("base", self.base, MAX_ENTRIES) != base:
            raise TableError("base: must be base[0] = 0, base[I+1] = base[I] + bins[I]")
        set_("bins", np.array(bins, dtype=np.int64))
        set_("base", np.array(base, dtype=np.int64))
        if self.precision not in PRECISIONS:
            raise TableError(f"precision: must be one of {PRECISIONS}, got {show(self.precision)}")
        check_dtype(self.dtype, self.precision)
        check_cutpoints(self.cutpoints, self.dtype)
        mul = expected_mul(self.cutpoints, self.bins, self.dtype)
        if self.mul is None:
            set_("mul", mul)
        else:
            try:
                given = np.asarray(self.mul, dtype=np.float32)
            except (TypeError, ValueError):
                raise TableError("mul: must be an array of FP32 values") from None
            if given.shape != mul.shape or not np.array_equal(
                given.view(np.uint32), mul.view(np.uint32)
            ):
                raise TableError(
                    "mul: must equal RNE32(bins[I] / (c[I+1] - c[I])) for every interval"
                )
            set_("mul", given)
        check_mul(self.mul)
        lut = bit_patterns("lut", self.lut, MAX_ENTRIES)
        n = 1 + total
        if lut.size != n:
            raise TableError(f"lut: need 1 + sum(bins) = {n} entries, got {lut.size}")
        set_("lut", lut)
        check_lut(self.lut, self.dtype)
        for name in ("below", "above"):
            set_(name, check_end_value(name, getattr(self, name), self.dtype))
        if self.precision == "fp16":
            for i, m in enumerate(self.mul):
                if np.isinf(rne16(float(m))):
                    raise TableError(
                        f"mul: RNE16(mul[{i}]) overflows FP16 in an fp16 table "
                        f"(macro interval {i} is narrower than bins/65504)"
                    )
        for a in ("cutpoints", "bins", "base", "mul", "lut"):
            getattr(self, a).setflags(write=False)

    # ------------------------------------------------------------------ derived views
    @property
    def K(self) -> int:
        """Number of macro intervals (= comparators)."""
        return int(self.bins.size)

    @property
    def entries(self) -> int:
        """Number of LUT entries, 1 + sum(bins)."""
        return int(self.lut.size)

    def cutpoint_values(self) -> np.ndarray:
        """float64[K+1] cutpoint values."""
        return bits_to_f64(self.cutpoints, self.dtype)

    def points(self) -> np.ndarray:
        """float64[entries]: the real point each LUT entry belongs to (section 2): the
        cutpoints themselves at m = 0 and m = bins[I], c_I + m (c_{I+1} - c_I) / bins[I] in
        float64 in between. (The float64 c_I + width can miss c_{I+1} when the width is not a
        float64, e.g. a bf16 interval from -8 to -2^-120; an entry at a cutpoint is f there.)"""
        c = self.cutpoint_values()
        pts = [c[0]]
        for i, b in enumerate(self.bins):
            m = np.arange(1, b + 1)
            p = c[i] + m * (c[i + 1] - c[i]) / b
            p[-1] = c[i + 1]
            pts.extend(p)
        return np.array(pts, dtype=np.float64)

    def with_lut(
        self, lut: np.ndarray, below: int | None = None, above: int | None = None, **meta
    ) -> "Table":
        """A copy with new LUT entries (and optionally below/above); meta is merged."""
        return Table(
            self.function,
            self.cutpoints,
            self.bins,
            np.asarray(lut, dtype=np.uint16),
            self.below if below is None else below,
            self.above if above is None else above,
            self.precision,
            meta={**self.meta, **meta},
            dtype=self.dtype,
        )

    def with_precision(self, precision: str) -> "Table":
        """The same table run by a unit of another internal precision."""
        return Table(
            self.function,
            self.cutpoints,
            self.bins,
            self.lut,
            self.below,
            self.above,
            precision,
            meta=dict(self.meta),
            dtype=self.dtype,
        )

    # ------------------------------------------------------------------ JSON
    def to_json_dict(self) -> dict:
        d = {"format": FORMAT, "version": VERSION, "numerics": TABLE_NUMERICS[self.dtype]}
        if self.dtype != "fp16":  # fp16 files are written as before 1.3 (section 13)
            d["dtype"] = self.dtype
        d |= {
            "function": self.function,
            "precision": self.precision,
            "cutpoints": [f16_hex(v) for v in self.cutpoints],
            "bins": [int(b) for b in self.bins],
            "base": [int(b) for b in self.base],
            "mul": [f32_hex(m) for m in self.mul],
            "lut": [f16_hex(v) for v in self.lut],
            "below": f16_hex(self.below),
            "above": f16_hex(self.above),
        }
        for k, v in self.meta.items():
            if k in d:
                raise TableError(f"meta key {k!r} collides with a spec field")
            d[k] = v
        return d

    @classmethod
    def from_json_dict(cls, d: dict) -> "Table":
        """Validate a parsed table file: every spec field must have its JSON type exactly
        (strings of exactly 4 / 8 hex digits, integers that are not booleans)."""
        if not isinstance(d, dict):
            raise TableError("table file: top level must be a JSON object")
        if d.get("format") != FORMAT:
            raise TableError(f"format: expected {FORMAT!r}, got {show(d.get('format'))}")
        v = d.get("version")
        if type(v) is not int or v != VERSION:  # bool is an int, 1.0 == 1: neither is a version
            raise TableError(f"version: expected {VERSION}, got {show(v)}")
        dtype = d.get("dtype", "fp16")  # absent: fp16 (section 13)
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise TableError(f"dtype: must be one of {', '.join(DTYPES)}, got {show(dtype)}")
        want = TABLE_NUMERICS[dtype]
        # absent numerics: an fp16 file written before 1.1, same datapath; bf16 files need it
        if ("numerics" in d or dtype != "fp16") and d.get("numerics") != want:
            raise TableError(
                f"numerics: expected {want!r} for a {dtype} table (docs/numerics.md), "
                f"got {show(d.get('numerics'))}"
            )
        for k in ("function", "cutpoints", "bins", "base", "mul", "lut", "below", "above"):
            if k not in d:
                raise TableError(f"{k}: missing")
        if not isinstance(d["function"], str):
            raise TableError("function: must be a string")
        precision = d.get("precision", "fp32")
        if not isinstance(precision, str):
            raise TableError(f"precision: must be a string, one of {PRECISIONS}")
        for k in ("cutpoints", "bins", "base", "mul", "lut"):
            if not isinstance(d[k], list):
                raise TableError(f"{k}: must be a list")
            if len(d[k]) > MAX_ENTRIES:
                raise TableError(f"{k}: at most {MAX_ENTRIES} entries, got {len(d[k])}")
        try:
            c = [parse_f16_hex(v, f"cutpoints[{i}]") for i, v in enumerate(d["cutpoints"])]
            lut = [parse_f16_hex(v, f"lut[{i}]") for i, v in enumerate(d["lut"])]
            mul = [parse_f32_hex(v, f"mul[{i}]") for i, v in enumerate(d["mul"])]
            below = parse_f16_hex(d["below"], "below")
            above = parse_f16_hex(d["above"], "above")
        except ValueError as e:
            raise TableError(str(e)) from None
        for k in ("bins", "base"):
            for i, b in enumerate(d[k]):
                if type(b) is not int:
                    raise TableError(f"{k}: every entry must be an integer, {k}[{i}] = {show(b)}")
        if len(d["base"]) != len(d["bins"]):
            raise TableError("base: must have one entry per macro interval")
        meta = {k: v for k, v in d.items() if k not in SPEC_KEYS}
        # bins/base stay Python lists: the constructor bounds them before any int64 arithmetic
        return cls(
            d["function"],
            np.array(c, dtype=np.uint16),
            d["bins"],
            np.array(lut, dtype=np.uint16),
            below,
            above,
            precision,
            base=d["base"],
            mul=np.array(mul, dtype=np.float32),
            meta=meta,
            dtype=dtype,
        )


SPEC_KEYS = {
    "format",
    "dtype",
    "version",
    "numerics",
    "function",
    "precision",
    "cutpoints",
    "bins",
    "base",
    "mul",
    "lut",
    "below",
    "above",
}


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :mod:`nli.atomic`)."""
    atomic_write(path, text)


def save_table(table: Table, path: str | os.PathLike) -> None:
    """Write a table as numerics §6 JSON, atomically."""
    try:
        text = json.dumps(table.to_json_dict(), indent=1, allow_nan=False)
    except ValueError:  # NaN / Infinity in meta: the file would not load back (strict JSON)
        raise TableError(
            "meta: a non-finite number (NaN or Infinity) cannot be written to a table file"
        ) from None
    atomic_write_text(path, text + "\n")


def load_table(path: str | os.PathLike) -> Table:
    """Read and validate a table file; errors name the file and the broken field.

    The file must be a regular file of at most MAX_TABLE_FILE_BYTES, strict JSON
    (no duplicate keys, no NaN/Infinity; see :mod:`nli.strict_json`)."""
    try:
        d = read_json_file(path, MAX_TABLE_FILE_BYTES)
    except FileNotFoundError:
        raise TableError(f"{path}: no such table file") from None
    except JsonFileError as e:
        raise TableError(str(e)) from None
    try:
        return Table.from_json_dict(d)
    except TableError as e:
        raise TableError(f"{path}: {e}") from None


def table_from_cutpoints(
    function: str, cutpoints_bits, bins, precision: str = "fp32", dtype: str = "fp16", **meta
) -> Table:
    """The default table for given cutpoints: lut = RNE(f(point)) in ``dtype`` (RNE16 or
    RNE_bf16, rounded once from float64), below = lut[0], above = lut[-1].

    cutpoints_bits: uint16[K+1] patterns of ``dtype``; bins: int[K].
    """
    from .functions import get_function
    from .grid import f64_to_bits, is_finite_bits

    f = get_function(function)
    entries = 1 + sum(int_list("bins", bins, MAX_ENTRIES))  # Python ints: no wraparound
    if entries > MAX_ENTRIES:
        raise TableError(f"bins: sum(bins) must be at most {MAX_ENTRIES - 1}")
    zeros = np.zeros(entries, np.uint16)
    proto = Table(function, cutpoints_bits, bins, zeros, 0, 0, precision, dtype=dtype)
    lut = f64_to_bits(f(proto.points()), dtype)
    if not np.all(is_finite_bits(lut, dtype)):
        raise TableError(
            f"lut: f({function}) overflows {dtype.upper()} at a table point; narrow the domain"
        )
    return Table(
        function,
        proto.cutpoints,
        proto.bins,
        lut,
        int(lut[0]),
        int(lut[-1]),
        precision,
        meta=meta,
        dtype=dtype,
    )
