"""CLI subcommands `nli hw rtl` (generate the unit's Verilog) and `nli hw synth` (synthesize
it with Yosys). Registered from hw_sim.commands; argument parsing and file I/O live here."""

from __future__ import annotations

import json
from pathlib import Path

from nli.atomic import atomic_dir, atomic_write
from nli.cli import UserError, group
from nli.inputs import InputError, check_output_dir, check_output_path

RTL_FILE = "nli_unit.v"
MEM_RTL_FILE = "nli_unit_mem.v"


def _check_dir(path, what):
    try:
        return check_output_dir(path, what)
    except InputError as e:
        raise UserError(str(e)) from None


def _rtl(args):
    from nli.table import TableError, load_table

    from . import emit

    out = _check_dir(args.output, "-o/--output")
    try:
        table = load_table(args.table)
        c = emit.constants(table)
        files = {
            RTL_FILE: emit.verilog(c),
            MEM_RTL_FILE: emit.verilog_mem(c),
            **emit.memh_files(table, c),
        }
    except TableError as e:
        raise UserError(str(e)) from None
    # everything is generated before the first write; a new folder appears whole (atomic_dir),
    # an existing one gets each file replaced atomically (other files in it are left alone)
    if out.exists():
        for name, text in files.items():
            atomic_write(out / name, text)
    else:
        with atomic_dir(out) as tmp:
            for name, text in files.items():
                atomic_write(tmp / name, text)
    print(
        f"wrote {out / RTL_FILE} (module {emit.MODULE}), {out / MEM_RTL_FILE} "
        f"(module {emit.MEM_MODULE}) and {len(files) - 2} $readmemh files: "
        f"{table.function}, precision {table.precision}, K = {c.K}, {len(c.lut)} LUT entries"
    )
    print(f"LATENCY = {emit.LATENCY} cycles, one result per cycle")
    return 0


def _synth(args):
    from . import emit
    from .synth import SynthError, synthesize

    if args.json:
        try:
            check_output_path(args.json, "--json")
        except InputError as e:
            raise UserError(str(e)) from None
    srcs = []
    for d in args.dirs:
        src = Path(d) / RTL_FILE
        if not src.is_file():
            raise UserError(f"{d}: no {RTL_FILE} there (write one with: nli hw rtl TABLE -o {d})")
        srcs.append(src)
    results = []
    for d, src in zip(args.dirs, srcs):
        try:
            r = synthesize(src, emit.MODULE)
        except SynthError as e:
            raise UserError(str(e)) from None
        r["dir"] = str(d)
        results.append(r)
    ref = results[0]
    print(
        f"{'design':24s} {'cells':>8s} {'flip-flops':>10s} {'transistors':>12s} "
        f"{'max depth':>9s}  ratio to first (transistors)"
    )
    for r in results:
        r["ratio_transistors"] = r["logic_transistors"] / ref["logic_transistors"]
        r["ratio_cells"] = r["cmos_cells"] / ref["cmos_cells"]
        print(
            f"{r['dir'][-24:]:24s} {r['cmos_cells']:8d} {r['flip_flops']:10d} "
            f"{r['logic_transistors']:12d} {r['max_depth']:9d}  {r['ratio_transistors']:.2f}"
        )
        stages = ", ".join(f"{k}: {v}" for k, v in r["depth_per_stage"].items())
        print(f"  depth per stage (gates): {stages}")
        for w in r["check_warnings"]:
            print(f"  yosys check: {w}")
    print(
        f"({results[0]['yosys']}, synth -flatten; abc -g cmos2; stat -tech cmos: "
        "NAND/NOR/NOT transistors, flip-flops not counted)"
    )
    if args.json:
        atomic_write(args.json, json.dumps({"designs": results}, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


def register(sub, groups):
    """Add `nli hw rtl` and `nli hw synth` to the parser."""
    hw = group(sub, groups, "hw", "hardware: generate and synthesize the unit's RTL")
    p = hw.add_parser("rtl", help="write the unit's synthesizable Verilog for a table")
    p.add_argument("table", help="table JSON (precision fp32 or fp16)")
    p.add_argument("-o", "--output", required=True, help="directory to write into")
    p.set_defaults(func=_rtl)

    p = hw.add_parser("synth", help="synthesize generated units with Yosys (pyosys)")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="folders written by `nli hw rtl`")
    p.add_argument("--json", help="write the numbers here")
    p.set_defaults(func=_synth)
