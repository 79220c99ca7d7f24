"""`nli export onnx-op` and `nli export onnx`: argument parsing, file I/O and printing.

The graphs are built by :mod:`engine.onnx_export` (one op) and
:mod:`engine.onnx_model_export` (the model); this module only loads the tables and the
model, calls them and writes the file atomically.
"""

from __future__ import annotations

from pathlib import Path

from nli.cli import UserError, group
from nli.formats import (
    DTYPES,
    INVERSE_FUNCTIONS,
    MODES,
    OP_ALIASES,
    OPS,
    RMSNORM_INPUTS,
    UNIT_FUNCTIONS,
    op_functions,
)

OPS_DEFAULT = ",".join(OPS)


def register_export(sub, groups):
    """Add `nli export onnx-op` and `nli export onnx` to the parser."""
    g = group(sub, groups, "export", "export tables and models (ONNX)")
    p = g.add_parser(
        "onnx-op",
        help="one elementwise NLI op as ONNX (x float16 -> y float16; bfloat16 for a bf16 table)",
    )
    p.add_argument("table", help="table JSON file (numerics §6)")
    p.add_argument("-o", "--out", required=True, help="output .onnx file")
    p.set_defaults(func=_onnx_op)
    p = g.add_parser("onnx", help="the whole LLaMA model with NLI-substituted ops as ONNX")
    p.add_argument(
        "--model",
        default="tiny",
        help="tiny | smollm2 | gemma3 | a .gguf path | an MoE checkpoint (default: tiny)",
    )
    p.add_argument(
        "--ops",
        default=OPS_DEFAULT,
        help="comma-separated ops on the NLI datapath; '' or 'none' for all-reference "
        f"(default: {OPS_DEFAULT})",
    )
    p.add_argument(
        "--reciprocal-mode",
        default="reduced",
        choices=MODES,
        help="reciprocal / rsqrt mode, numerics §5 (default: reduced)",
    )
    p.add_argument(
        "--dtype",
        default=DTYPES[0],
        choices=DTYPES,
        help="the unit's 16-bit format, numerics §13: every table must be of it "
        f"(default: {DTYPES[0]})",
    )
    p.add_argument(
        "--rmsnorm-input",
        default=None,
        choices=RMSNORM_INPUTS,
        help="how RMSNorm's FP32 rows enter the unit, numerics §4.1: scaled (the fp16 default: "
        "the row prescale, nli.RMSNormPrescale) | plain (RNE16 alone; bf16's only choice)",
    )
    p.add_argument(
        "--table",
        action="append",
        default=[],
        metavar="FUNCTION=FILE",
        help=f"use this table file for {' / '.join(UNIT_FUNCTIONS)} instead of the shipped default",
    )
    p.add_argument("-o", "--out", required=True, help="output .onnx file")
    p.set_defaults(func=_onnx_model)


def _load(path: str):
    from nli.table import TableError, load_table

    try:
        return load_table(path)
    except TableError as e:
        raise UserError(str(e)) from None


def _onnx_op(args) -> int:
    from nli.inputs import check_output_path

    from .onnx_export import export_elementwise, save_onnx

    check_output_path(args.out, "--out")
    table = _load(args.table)
    proto = export_elementwise(table)
    out = save_onnx(proto, args.out)
    print(
        f"wrote {out}: nli.{proto.graph.node[0].op_type} for {table.function!r} (K={table.K}, "
        f"{table.entries} LUT entries, {table.dtype}, {table.precision}); "
        "checked with onnx.checker"
    )
    return 0


def parse_table_overrides(items) -> dict:
    """['exp=path.json', ...] -> {function: Table}; the file's function must match."""
    out = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--table: expected FUNCTION=FILE, got {item!r}")
        fn, path = item.split("=", 1)
        fn = fn.strip()
        if fn not in UNIT_FUNCTIONS:
            raise UserError(
                f"--table: unknown function {fn!r}; expected one of {', '.join(UNIT_FUNCTIONS)}"
            )
        t = _load(path)
        if t.function != fn:
            raise UserError(
                f"--table {fn}={path}: the file holds a {t.function!r} table, not {fn!r}"
            )
        out[fn] = t
    return out


def model_tables(
    ops, mode: str, overrides: dict, activation: str = "silu", dtype: str = "fp16"
) -> dict:
    """{function: Table} for ``ops`` in a model whose activation is ``activation``: overrides
    first, else the shipped default tables (of ``dtype``, numerics §13)."""
    from nli.defaults import default_table
    from nli.table import TableError

    tables = {}
    for op in ops:
        for fn in op_functions([op], activation):
            if fn in overrides:
                tables[fn] = overrides[fn]
                continue
            try:
                fn_mode = mode if fn in INVERSE_FUNCTIONS else "direct"
                tables[fn] = default_table(fn, fn_mode, dtype)
            except TableError as e:
                raise UserError(f"{e} (or pass --table {fn}=FILE)") from None
    return tables


def _onnx_model(args) -> int:
    from nli.inputs import check_output_path

    from . import load_model
    from .onnx_model_export import export_model
    from .onnx_tables import check_rmsnorm_input, save_onnx

    check_output_path(args.out, "--out")
    ops = tuple(
        dict.fromkeys(
            OP_ALIASES.get(o.strip(), o.strip())
            for o in args.ops.split(",")
            if o.strip() and o.strip() != "none"
        )
    )
    bad = [o for o in ops if o not in OPS]
    if bad:
        raise UserError(f"--ops: unknown op(s) {', '.join(bad)}; choose from {', '.join(OPS)}")
    if args.rmsnorm_input is not None:
        check_rmsnorm_input(args.rmsnorm_input, args.dtype)
    overrides = parse_table_overrides(args.table)
    for fn, t in overrides.items():
        if t.dtype != args.dtype:
            raise UserError(
                f"--table {fn}: the table is {t.dtype}, but --dtype is {args.dtype} "
                "(one format per model, numerics §13)"
            )
    model, _ = load_model(args.model)
    tables = model_tables(
        ops, args.reciprocal_mode, overrides, model.cfg.activation, dtype=args.dtype
    )
    proto = export_model(
        model, ops, tables, args.reciprocal_mode, args.rmsnorm_input, dtype=args.dtype
    )
    out = save_onnx(proto, args.out)
    size = Path(out).stat().st_size / 2**20
    print(
        f"wrote {out} ({size:.1f} MiB): {args.model}, NLI ops: {', '.join(ops) or 'none'}, "
        f"{args.dtype}, {args.reciprocal_mode} mode, "
        f"functions: {', '.join(f.name for f in proto.functions)}; "
        "checked with onnx.checker"
    )
    return 0
