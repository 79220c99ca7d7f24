"""Verilog-2005 for the NLI unit of one table (numerics §3, precision fp32 or fp16), bit-exact.

A plain Python emitter rather than an HDL framework: the design is one fixed pipeline
whose only table-dependent parts are constants, the exactness arguments below map
one-to-one onto integer operations, and the output must be a dependency-free
Verilog-2005 file that Icarus and Yosys read as is.

The datapath works on integers with explicit binary exponents, never on packed FP32:

* FP16 values become signed integers in units of 2^-24 (``fix16``: at most 41 bits),
  so ``x - c_I`` and ``y1 - y0`` are exact integer differences.
* ``RNE32`` of a non-negative integer is ``normW``: normalize (log-depth leading-zero
  shift), keep 24 bits, round to nearest-even on the dropped bits; the result is a
  24-bit significand ``sig`` and an exponent ``e`` with value ``sig * 2^e``. No FP32
  subnormal can arise (numerics §7 and hw_sim/unit.py: dx >= 2^-24, mul > 2^-17,
  p >= 2^-88), so this is the FP32 rounding exactly.
* ``u = RNE32(dx * mul)``, ``p = RNE32(t * dy)``: 24 x 24-bit integer products, then
  ``norm48``.
* Step 6 on ``u = us * 2^Eu`` (us normalized, u < 2^17 so Eu <= -7): ``a = us >> -Eu``,
  clamped to ``bins - 1``; ``t = us - (a << -Eu)`` is exact with the same exponent.
* ``RNE32(y0 + p)``: a sign-magnitude sum in units of 2^-51 in which the last bit is a
  sticky bit for the part of ``p`` below 2^-50. Exact whenever |p| >= 2^-27 (then p is
  a multiple of 2^-50); otherwise |y0 + p| > 2^-25 or y0 = 0, the FP32 midpoints lie on
  the 2^-49 grid and the sticky value stays strictly between the same 2^-50 grid points
  as the exact sum, so the rounding is the same (and when y0 = 0, both sides round to a
  signed FP16 zero or are exact).
* ``RNE16`` of that FP32 value: one right shift with round-to-nearest-even by 13 bits
  (normal) or more (FP16 subnormal), carrying into the exponent field up to +inf.

The fp16 unit (numerics §3, primed steps) reuses the pipeline: ``dx`` and ``dy`` are
``RNE16`` of the RNE32 results (equal to one RNE16 of the exact difference, numerics §7),
``u`` is ``RNE16`` of the exact 11 x 11-bit product with ``RNE16(mul)``, the FMA's exact
sum is rounded to odd at 24 bits (``norm70odd``) and then to FP16, which is one correct
rounding (numerics §8); an overflowed ``dx``/``u`` gives ``t = inf`` and y = +-inf after
dy's sign, or NaN when dy = 0.

Pipeline (one register stage each, LATENCY = 14): 1 comparators and interval, 2 x - c_I,
3 dx rounding and the interval's constants, 4 dx * mul, 5 u rounding, 6 floor, t and g,
7 LUT read, 8 y1 - y0, 9 dy rounding, 10 t * dy, 11 p rounding, 12 aligned y0 + p, 13 its
RNE32 (fp16 unit: round to odd), 14 RNE16 and the NaN/below/above select. Only the valid
bits are reset; ``out_valid`` is the last one.

Zero signs (numerics §1): t is never -0, so p carries the sign of ``y1 - y0`` (+0 when
equal); the sum of two zeros is -0 only when both are -0, and an exact cancellation is +0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nli.codegen import check_width, comment_text, hex_words
from nli.table import Table, TableError

from .pipeline import FUNCTIONS, LATENCY, MODULE, core, lit, norm_module

__all__ = ["LATENCY", "MODULE", "MEM_MODULE", "constants", "verilog", "verilog_mem", "memh_files"]

MEM_MODULE = "nli_unit_mem"  # the $readmemh variant (same ports)


# ----------------------------------------------------------------------------- constants
@dataclass(frozen=True)
class UnitConstants:
    """A table as the integers the RTL uses. Per interval I: ``cut_key`` (K+1 signed order
    keys of the cutpoints), ``cfix`` (c_I in units of 2^-24), ``mul_sig``/``mul_exp``
    (mul[I] = mul_sig * 2^mul_exp, mul_sig a normalized 24-bit integer), ``top`` (bins - 1),
    ``base``; ``lut`` (FP16 bits), ``below``/``above``."""

    function: str
    precision: str
    cut_key: list[int]
    cfix: list[int]
    mul_sig: list[int]
    mul_exp: list[int]
    top: list[int]
    base: list[int]
    lut: list[int]
    below: int
    above: int

    @property
    def K(self) -> int:
        return len(self.top)

    @property
    def index_bits(self) -> int:
        return max(1, (self.K - 1).bit_length())


def order_key(h: int) -> int:
    """FP16 bits -> an integer that orders like the value (-0 and +0 both 0)."""
    m = h & 0x7FFF
    return -m if h & 0x8000 else m


def fix16(h: int) -> int:
    """Finite FP16 bits -> its value in units of 2^-24 (an exact integer, |v| < 2^40)."""
    e, m = (h >> 10) & 0x1F, h & 0x3FF
    v = m if e == 0 else (1024 + m) << (e - 1)
    return -v if h & 0x8000 else v


def constants(table: Table) -> UnitConstants:
    """The RTL's constants for ``table``; a table the unit cannot implement is a TableError."""
    if not isinstance(table, Table):
        raise TypeError(f"table: expected an nli Table, got {type(table).__name__}")
    if table.dtype != "fp16":  # the emitted datapath decodes and rounds FP16 (numerics §3)
        raise TableError(f"dtype: the RTL unit implements fp16 tables only, got {table.dtype}")
    cut = [int(c) for c in table.cutpoints]
    mul_sig, mul_exp = [], []
    mul32 = np.asarray(table.mul, dtype=np.float32)
    for i, m in enumerate(mul32.view(np.uint32).tolist()):
        e = (m >> 23) & 0xFF
        if e == 0 or e == 0xFF:  # cannot happen for a valid table (mul in (2^-17, 2^40])
            raise TableError(f"mul[{i}]: not a normal FP32 value")
        mul_sig.append((m & 0x7FFFFF) | 0x800000)
        mul_exp.append(e - 127 - 23)
    if table.precision == "fp16":  # the fp16 unit's scale registers hold RNE16(mul)
        mul_sig, mul_exp = [], []
        for i, h in enumerate(mul32.astype(np.float16).view(np.uint16).tolist()):
            e, m = (h >> 10) & 0x1F, h & 0x3FF
            if e == 0x1F:  # Table validation refuses these already (numerics §2)
                raise TableError(f"mul[{i}]: RNE16(mul) overflows; the fp16 unit cannot hold it")
            mul_sig.append(m if e == 0 else 1024 + m)
            mul_exp.append(-24 if e == 0 else e - 25)
    bins = check_width("bins", table.bins, 16)
    return UnitConstants(
        function=str(table.function),
        precision=table.precision,
        cut_key=[order_key(c) for c in cut],
        cfix=[fix16(c) for c in cut[:-1]],
        mul_sig=mul_sig,
        mul_exp=mul_exp,
        top=[b - 1 for b in bins],
        base=check_width("base", table.base, 16),
        lut=check_width("lut", table.lut, 16),
        below=int(table.below),
        above=int(table.above),
    )


_PORTS = """(
  input  wire        clk,
  input  wire        rst,        // synchronous, active high
  input  wire        in_valid,
  input  wire [15:0] x,          // FP16 bit pattern
  output wire        out_valid,
  output wire [15:0] y           // FP16 bit pattern
);"""


def _case_function(name: str, ret: str, iw: int, values: list[str]) -> str:
    lines = [f"  function {ret} {name};", f"    input [{iw - 1}:0] i;", "    case (i)"]
    lines += [f"      {iw}'d{j}: {name} = {v};" for j, v in enumerate(values)]
    lines += [f"      default: {name} = {values[0]};", "    endcase", "  endfunction"]
    return "\n".join(lines)


def _header(c: UnitConstants, what: str) -> str:
    return (
        f"// {what}\n"
        f"// generated by `nli hw rtl` from table: {comment_text(c.function)}, "
        f"precision {c.precision}, K = {c.K}, {len(c.lut)} LUT entries\n"
        f"// numerics 1.1 section 3; latency {LATENCY} clock cycles, one result per cycle\n"
        "`timescale 1ns / 1ps\n"
    )


def _modules(fp16: bool) -> str:
    return "".join(norm_module(w) for w in (41, 48)) + norm_module(70, odd=fp16)


def verilog(c: UnitConstants) -> str:
    """``nli_unit.v``: the unit with the table's constants baked in."""
    k, iw = c.K, c.index_bits
    funcs = [
        _case_function("f_cut", "signed [16:0]", 16, [lit(17, v) for v in c.cut_key]),
        _case_function("f_cfix", "signed [41:0]", iw, [lit(42, v) for v in c.cfix]),
        _case_function("f_mulsig", "[23:0]", iw, [f"24'h{v:06x}" for v in c.mul_sig]),
        _case_function("f_mulexp", "signed [11:0]", iw, [lit(12, v) for v in c.mul_exp]),
        _case_function("f_top", "[15:0]", iw, [f"16'd{v}" for v in c.top]),
        _case_function("f_base", "[15:0]", iw, [f"16'd{v}" for v in c.base]),
        _case_function("f_lut", "[15:0]", 16, [f"16'h{v:04x}" for v in c.lut]),
    ]
    lk = {n: f"f_{n}({{}})" for n in ("cut", "cfix", "mulsig", "mulexp", "top", "base", "lut")}
    lk["below"], lk["above"] = f"16'h{c.below:04x}", f"16'h{c.above:04x}"
    return (
        _header(c, "NLI unit, table constants baked in")
        + f"module {MODULE} {_PORTS}\n  localparam LATENCY = {LATENCY};\n"
        + FUNCTIONS
        + "\n".join(funcs)
        + core(k, iw, lk, c.precision == "fp16")
        + "endmodule\n\n"
        + _modules(c.precision == "fp16")
    )


def verilog_mem(c: UnitConstants) -> str:
    """``nli_unit_mem.v``: the same pipeline reading the table from ``$readmemh`` files at
    elaboration (any table with the same K and number of LUT entries)."""
    k, iw, n = c.K, c.index_bits, len(c.lut)
    decl = [
        f'  parameter CUT_FILE = "{MODULE}_cut.memh";   // K+1 cutpoints, FP16 bits',
        f'  parameter MUL_FILE = "{MODULE}_mul.memh";   // K scales, FP32 bits',
        f'  parameter BINS_FILE = "{MODULE}_bins.memh"; // K bin counts',
        f'  parameter BASE_FILE = "{MODULE}_base.memh"; // K LUT offsets',
        f'  parameter LUT_FILE = "{MODULE}_lut.memh";   // LUT entries, FP16 bits',
        f'  parameter EDGE_FILE = "{MODULE}_edge.memh"; // below, above: FP16 bits',
        f"  reg [15:0] cut_mem [0:{k}];",
        f"  reg [31:0] mul_mem [0:{k - 1}];",
        f"  reg [15:0] bins_mem [0:{k - 1}];",
        f"  reg [15:0] base_mem [0:{k - 1}];",
        f"  reg [15:0] lut_mem [0:{n - 1}];",
        "  reg [15:0] edge_mem [0:1];",
        "  initial begin",
        "    $readmemh(CUT_FILE, cut_mem);",
        "    $readmemh(MUL_FILE, mul_mem);",
        "    $readmemh(BINS_FILE, bins_mem);",
        "    $readmemh(BASE_FILE, base_mem);",
        "    $readmemh(LUT_FILE, lut_mem);",
        "    $readmemh(EDGE_FILE, edge_mem);",
        "  end",
    ]
    lk = {
        "cut": "key16(cut_mem[{}])",
        "cfix": "fix16(cut_mem[{}])",
        "mulsig": "{{1'b1, mul_mem[{}][22:0]}}",
        "mulexp": "($signed({{4'd0, mul_mem[{}][30:23]}}) - 12'sd150)",
        "top": "(bins_mem[{}] - 16'd1)",
        "base": "base_mem[{}]",
        "lut": "lut_mem[{}]",
        "below": "edge_mem[0]",
        "above": "edge_mem[1]",
    }
    if c.precision == "fp16":  # RNE16(mul) from the FP32 words
        m16 = (
            "f16_mag({{1'b1, mul_mem[{0}][22:0]}}, "
            "$signed({{4'd0, mul_mem[{0}][30:23]}}) - 12'sd150)"
        )
        lk["mulsig"] = "{{13'd0, f16_sig(" + m16 + ")}}"
        lk["mulexp"] = "f16_exp(" + m16 + ")"
    return (
        _header(c, "NLI unit, table read by $readmemh at elaboration")
        + f"module {MEM_MODULE} {_PORTS}\n  localparam LATENCY = {LATENCY};\n"
        + "\n".join(decl)
        + "\n"
        + FUNCTIONS
        + core(k, iw, lk, c.precision == "fp16")
        + "endmodule\n\n"
        + _modules(c.precision == "fp16")
    ).replace(f"{MODULE}_norm", f"{MEM_MODULE}_norm")


def memh_files(table: Table, c: UnitConstants) -> dict[str, str]:
    """The ``$readmemh`` images of ``table`` for :func:`verilog_mem`: file name -> text."""
    note = f"// {comment_text(c.function)}: "
    files = {
        "cut": ("K+1 cutpoints, FP16", hex_words("cutpoints", table.cutpoints, 16)),
        "mul": (
            "K scales, FP32",
            hex_words("mul", np.asarray(table.mul, np.float32).view(np.uint32), 32),
        ),
        "bins": ("K bin counts", hex_words("bins", table.bins, 16)),
        "base": ("K LUT offsets", hex_words("base", table.base, 16)),
        "lut": ("LUT entries, FP16", hex_words("lut", table.lut, 16)),
        "edge": ("below, above, FP16", hex_words("edge", [table.below, table.above], 16)),
    }
    return {
        f"{MODULE}_{name}.memh": note + what + "\n" + "\n".join(words) + "\n"
        for name, (what, words) in files.items()
    }
