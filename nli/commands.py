"""CLI subcommands owned by the `nli` package: `table build` and `table export`."""

from __future__ import annotations

import sys

import numpy as np

from .argtypes import nonnegative_int, positive_int
from .cli import UserError, group

DATAPATH_SOLVERS: dict = {}
"""``{"solve": callable}``: the solver of ``nli.objective.DATAPATH_OBJECTIVES``, put here by the
simulator package's ``register`` (hw_sim.commands), since ``nli`` cannot import ``hw_sim``."""


def _float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise UserError(f"--domain: not a number: {text!r}") from None
    if not np.isfinite(v):
        raise UserError(f"--domain: must be finite, got {text!r}")
    return v


def _check_defined(function: str, domain, dtype: str = "fp16") -> None:
    """The function must be defined and finite on every FP16 (BF16 for ``dtype='bf16'``) value
    of ``domain`` (no pole inside)."""
    from .functions import get_function
    from .grid import dtype_grid

    f = get_function(function)
    lo, hi = domain if domain is not None else f.default_domain_for(dtype)
    x, _ = dtype_grid(lo, hi, dtype)
    if f.user is not None:  # its errors name the first bad x
        from .user_function import first_not_finite

        first_not_finite(function, x, f(x))
        return
    try:
        with np.errstate(all="ignore"):
            y = f(x)
    except (ZeroDivisionError, ValueError):
        y = np.array([np.nan])
    if not np.all(np.isfinite(y)):
        raise UserError(
            f"--domain [{lo:g}, {hi:g}]: {function} is not defined (or not finite) everywhere on it"
            f"{' (it contains 0)' if lo <= 0 <= hi else ''}"
        )


def _build(args) -> int:
    from tqdm import tqdm

    from .functions import FUNCTIONS
    from .grid import DomainError
    from .inputs import check_output_path
    from .objective import DATAPATH_OBJECTIVES
    from .solver import Layout, solve, table_from_result
    from .table import save_table
    from .user_function import is_user_spec

    user = is_user_spec(args.function)
    if args.function not in FUNCTIONS and not user:
        raise UserError(
            f"unknown function {args.function!r}; known: {', '.join(sorted(FUNCTIONS))}, "
            "or a user function pkg.module:name"
        )
    if user and args.domain is None:
        raise UserError(f"--domain LO HI is required for a user function ({args.function})")
    if user:  # named on the command line: the user's own code
        from .user_function import allow_import

        allow_import(args.function)
    domain = None if args.domain is None else (_float(args.domain[0]), _float(args.domain[1]))
    try:
        layout = Layout.parse(args.layout)
        if args.dtype == "bf16" and args.precision != "fp32":
            raise ValueError(
                f"--precision: a bf16 table has precision fp32 (numerics §13), got {args.precision}"
            )
        _check_defined(args.function, domain, args.dtype)
    except (ValueError, DomainError) as e:
        raise UserError(str(e)) from None
    check_output_path(args.output, "--output")
    if args.checkpoint is not None and args.objective in DATAPATH_OBJECTIVES:
        raise UserError(f"--checkpoint: not with --objective {args.objective} (float objectives)")
    if args.objective in DATAPATH_OBJECTIVES:
        return _build_datapath(args, layout, domain)
    if args.max_ulp is not None:
        raise UserError(f"--max-ulp: only with --objective {'|'.join(DATAPATH_OBJECTIVES)}")
    bars = []  # created at the first report, so that input errors print no bar

    def progress(done, total):
        if not bars:  # a resumed solve starts past 0: initial, so the rate counts this run only
            bars.append(
                tqdm(
                    total=total,
                    initial=done,
                    desc=f"{args.function} {layout.name} (DP layers)",
                    unit="layer",
                    file=sys.stderr,
                    disable=args.quiet,
                    bar_format="{l_bar}{bar}| {n:.3g}/{total_fmt} layers [{elapsed}<{remaining}]",
                )
            )
        bars[0].update(done - bars[0].n)

    from .solve_checkpoint import CheckpointError, SolveCheckpoint

    checkpoint = None
    if args.checkpoint is not None:
        check_output_path(args.checkpoint, "--checkpoint")
        checkpoint = SolveCheckpoint(args.checkpoint)
    try:
        result = _solve(
            solve,
            args,
            layout,
            domain,
            (DomainError, CheckpointError),
            precision=args.precision,
            measure_gap=args.measure_gap,
            progress=progress,
            quantized=args.lut_rounding,
            checkpoint=checkpoint,
        )
    finally:
        for bar in bars:
            bar.close()
    table = table_from_result(result)
    save_table(table, args.output)
    if checkpoint is not None:
        checkpoint.discard()
    gap = "" if result.gap is None else f", thinning gap {result.gap:.3g}"
    print(
        f"{args.output}: {args.function} {layout.name}, "
        f"{args.objective} objective value {result.objective_value:.6g}, "
        f"{result.grid_points} grid points, {result.solve_seconds:.1f} s{gap}"
    )
    return 0


def _solve(solve, args, layout, domain, user_errors, **options):
    """``solve`` (the float64 or the datapath-exact solver) on the function, layout, objective,
    domain, stride and dtype of `table build`, plus the solver's own ``options``; an exception of
    type ``user_errors`` is the user's: a one-line UserError."""
    try:
        return solve(
            args.function,
            layout,
            args.objective,
            domain=domain,
            stride=args.stride,
            dtype=args.dtype,
            **options,
        )
    except user_errors as e:
        raise UserError(str(e)) from None


def _build_datapath(args, layout, domain) -> int:
    """`table build --objective ulp|cr|cr+maxulp`: the datapath-exact DP (hw_sim)."""
    from .solver import table_from_result
    from .table import save_table

    bad = [
        flag
        for flag, on in (
            (f"--precision {args.precision}", args.precision != "fp32"),
            ("--measure-gap", args.measure_gap),
        )
        if on
    ]
    if bad:
        raise UserError(f"--objective {args.objective}: not with {', '.join(bad)} (fp32 only)")
    if "solve" not in DATAPATH_SOLVERS:
        raise UserError(f"--objective {args.objective}: needs the hw_sim package (not installed)")
    solve, note = DATAPATH_SOLVERS["solve"], DATAPATH_SOLVERS["note"]
    result = _solve(solve, args, layout, domain, ValueError, max_ulp=args.max_ulp)
    extra = {} if args.max_ulp is None else {"max_ulp_cap": args.max_ulp}
    save_table(table_from_result(result, **extra), args.output)
    print(
        f"{args.output}: {args.function} {layout.name}, {args.objective} objective: "
        f"{note(result)}, {result.solve_seconds:.1f} s"
    )
    return 0


def _export(args) -> int:
    from .export import export_table
    from .inputs import check_output_dir, check_output_path
    from .table import TableError, load_table

    (check_output_dir if args.format == "hex" else check_output_path)(args.output, "--output")
    try:
        table = load_table(args.table)
    except TableError as e:
        raise UserError(str(e)) from None
    for p in export_table(table, args.format, args.output):
        print(p)
    return 0


def register(sub, groups):
    """Add `nli table build|export` to the parser."""
    from .export import FORMATS
    from .formats import DTYPES, PRECISIONS
    from .objective import DATAPATH_OBJECTIVES, OBJECTIVES

    g = group(sub, groups, "table", "build, export and inspect interpolation tables")
    b = g.add_parser("build", help="solve for optimal cutpoints and write a table (JSON)")
    b.add_argument(
        "function",
        help="a built-in (silu, exp, gelu, log, erf, ...) or a user function pkg.module:name "
        "(a vectorized float64 callable; needs --domain)",
    )
    b.add_argument("-o", "--output", required=True, help="table file to write (JSON, atomic)")
    b.add_argument(
        "--domain",
        nargs=2,
        metavar=("LO", "HI"),
        help="FP16 (BF16 with --dtype bf16) domain (default: the function's legal one)",
    )
    b.add_argument(
        "--layout", default="paper", help="paper | single:M | two-level:K:B (default paper)"
    )
    b.add_argument(
        "--objective",
        default="paper",
        choices=OBJECTIVES + DATAPATH_OBJECTIVES,
        help="ideal-interpolant error (paper, mean, max) or measured through the fp32 unit: "
        "ulp (ulp sum), cr (outputs not correctly rounded), cr+maxulp (then max ulp)",
    )
    b.add_argument("--precision", default="fp32", choices=PRECISIONS)
    b.add_argument(
        "--dtype",
        default=DTYPES[0],
        choices=DTYPES,
        help="the table's 16-bit format: fp16 (default) or bf16 (numerics §13; BF16 grid and "
        "domains, precision fp32)",
    )
    b.add_argument(
        "--stride",
        type=positive_int(1 << 16),
        default=1,
        help="candidate thinning: cutpoints only at every STRIDE-th grid point (default 1 = exact)",
    )
    b.add_argument(
        "--measure-gap",
        action="store_true",
        help="with --stride > 1: also solve exactly, record the gap",
    )
    b.add_argument(
        "--lut-rounding",
        action="store_true",
        help="the interpolant carries RNE16(f) (RNE_bf16 with --dtype bf16: the LUT as stored) "
        "instead of exact f",
    )
    b.add_argument(
        "--max-ulp",
        type=nonnegative_int(1 << 16),
        default=None,
        help="with --objective ulp|cr|cr+maxulp: only tables within this many ulp everywhere",
    )
    b.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="save the exact pass's progress to FILE (.npz, every minute) and resume from it "
        "if it exists; removed once the table is written",
    )
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_build)
    e = g.add_parser("export", help="export a table as a C header, $readmemh files or npz")
    e.add_argument("table", help="table file (JSON)")
    e.add_argument("--format", required=True, choices=FORMATS)
    e.add_argument(
        "-o", "--output", required=True, help="output file (a directory for --format hex)"
    )
    e.set_defaults(func=_export)
