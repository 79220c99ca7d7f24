"""CLI subcommands owned by `hw_sim`: `nli sim elementwise|softmax|rmsnorm|cost`,
`nli table report` and `nli table refine` (and, from hw_sim.rtl, `nli hw rtl|synth`).
Argument parsing and file I/O live here; the math is in the modules they call."""

from __future__ import annotations

import json
import math

import numpy as np

from nli.argtypes import finite_float, positive_float, positive_int
from nli.atomic import atomic_target
from nli.cli import UserError, group
from nli.formats import MODES, PRECISIONS
from nli.inputs import InputError, check_output_path, load_npy

IMPORT_HELP = (
    "import the table's user function (its `function` field, e.g. mypkg.acts:f): table files "
    "never import code unless you name it here"
)


# ----------------------------------------------------------------------------- I/O helpers
def _load_table(path):
    from nli.table import TableError, load_table

    try:
        return load_table(path)
    except TableError as e:
        raise UserError(str(e)) from None


def _load_npy(path, what):
    try:
        arr = load_npy(path, what)
    except InputError as e:
        raise UserError(str(e)) from None
    if arr.dtype not in (np.float16, np.uint16):
        raise UserError(
            f"{what}: {path} has dtype {arr.dtype}; expected float16 or uint16 (FP16 bit patterns)"
        )
    return arr


def _save_npy(path, arr):
    """np.save to a temp file in the target folder, then rename (atomic)."""
    with atomic_target(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)


def _write_json(path, obj):
    from nli.table import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=1, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _sim_call(fn, *args):
    from .inputs import SimInputError

    try:
        return fn(*args)
    except SimInputError as e:
        raise UserError(str(e)) from None


# ----------------------------------------------------------------------------- handlers
def _outputs(*pairs):
    """Check every (path, flag) output before any work: writable, a file name, not a directory."""
    for path, what in pairs:
        if path is not None:
            check_output_path(path, what)


def _elementwise(args):
    from . import run_elementwise

    _outputs((args.output, "--output"))
    table = _load_table(args.table)
    x = _load_npy(args.input, "--input")
    _save_npy(args.output, _sim_call(run_elementwise, table, x))
    print(f"wrote {args.output}: {table.function} on {x.size} values")
    return 0


def _softmax(args):
    from . import softmax

    _outputs((args.output, "--output"))
    x = _load_npy(args.input, "--input")
    y = _sim_call(softmax, x, _load_table(args.exp), _load_table(args.recip), args.mode)
    _save_npy(args.output, y)
    print(
        f"wrote {args.output}: softmax ({args.mode}) over rows of {x.shape[-1] if x.ndim else '?'}"
    )
    return 0


def _rmsnorm(args):
    from . import rmsnorm

    _outputs((args.output, "--output"))
    x = _load_npy(args.input, "--input")
    w = _load_npy(args.weight, "--weight")
    y = _sim_call(rmsnorm, x, w, args.eps, _load_table(args.rsqrt), args.mode)
    _save_npy(args.output, y)
    print(f"wrote {args.output}: rmsnorm ({args.mode}) over rows of {x.shape[-1]}")
    return 0


def _domain(args):
    if args.domain is None:
        return None
    lo, hi = args.domain
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise UserError(f"--domain: need finite LO <= HI, got {lo} {hi}")
    return lo, hi


def _print_report(rep):
    print(
        f"{rep['function']} ({rep['precision']}) over {rep['inputs']} "
        f"{rep.get('dtype', 'fp16').upper()} inputs in "
        f"[{rep['domain'][0]:g}, {rep['domain'][1]:g}]:"
    )
    print(
        f"  max ulp {rep['max_ulp']}, mean ulp {rep['mean_ulp']:.4f}, correctly rounded "
        f"{rep['pct_correctly_rounded']:.2f}%, max rel {rep['max_rel_error']:.3g}, "
        f"mean rel {rep['mean_rel_error']:.3g}, NaN mismatches {rep['nan_mismatch']}"
    )


def _print_checks(rep, by_interval: bool = False):
    print(
        f"  max abs {rep['max_abs_error']:.3g}, RMS abs {rep['rms_abs_error']:.3g}, "
        f"RMS rel {rep['rms_rel_error']:.3g}"
    )
    s = rep["sign_check"]
    near = ", ".join(
        f"x = {v['x']:.3g}: f sign {v['f_sign']:+d}, output {v['output']:.3g}"
        for v in s["near_zero"].values()
    )
    print(
        f"  sign check: {'ok' if s['ok'] else 'FAIL'}, {s['wrong_sign']} wrong-sign outputs "
        f"of {s['checked']}"
        + ("" if s["ok"] else f" (first x = {s['first_wrong_x']:.6g})")
        + (f"; nearest 0: {near}" if near else "")
    )
    t = rep["tails_check"]
    tails = "; ".join(
        f"{k} {v['inputs']} inputs"
        + ("" if v["range"] is None else f" [{v['range'][0]:.6g}, {v['range'][1]:.6g}]")
        + f" -> {v['output']:.6g}, zeroed {v['zeroed']}"
        + ("" if v["first_zeroed_x"] is None else f" (first x = {v['first_zeroed_x']:.6g})")
        for k, v in t.items()
        if k in ("left", "right")
    )
    print(
        f"  tails check: {'ok' if t['ok'] else 'FAIL'}: {tails}; zeroed between the cutpoints "
        f"{t['zeroed_between_cutpoints']}"
    )
    if by_interval:
        print("  by interval (x from, to; inputs, not correctly rounded, % CR, max ulp, mean rel):")
        for r in rep["by_interval"]:
            lo = "" if r["from"] is None else f"{r['from']:.6g} <= "
            hi = "" if r["to"] is None else f" < {r['to']:.6g}"
            bins = "" if r["bins"] is None else f", {r['bins']} bin" + "s" * (r["bins"] > 1)
            rel = r["mean_rel_error"]
            print(
                f"    {r['region']:12s} {lo}x{hi}{bins}: {r['inputs']} inputs, "
                f"{r['not_correctly_rounded']} not CR, {r['pct_correctly_rounded']:.2f}% CR, "
                f"max ulp {r['max_ulp']}, mean rel {'-' if rel is None else f'{rel:.3g}'}"
            )
    p = rep["provenance"]
    print(
        "  provenance: "
        + ", ".join(f"{k} {'not recorded' if v is None else v}" for k, v in p.items())
    )


def _allow_named_import(args, table) -> None:
    """Let the table's user function import if (and only if) --import-function names it."""
    spec = getattr(args, "import_function", None)
    if spec is None:
        return
    if spec != table.function:
        raise UserError(f"--import-function {spec}: the table's function is {table.function!r}")
    from nli.user_function import allow_import

    allow_import(spec)


def _report(args):
    from .report import error_arrays, summarize, table_domain
    from .report_checks import table_report

    _outputs((args.json, "--json"), (args.plot, "--plot"))
    table = _load_table(args.table)
    _allow_named_import(args, table)
    if args.precision:
        from nli.table import TableError

        try:
            table = table.with_precision(args.precision)
        except TableError as e:  # e.g. a bf16 table has fp32 registers only (numerics §13)
            raise UserError(f"--precision: {e}") from None
    dom = _domain(args) or table_domain(table)
    rep = table_report(table, dom)
    _print_report(rep)
    _print_checks(rep, args.intervals)
    if args.json:
        _write_json(args.json, rep)
        print(f"wrote {args.json}")
    if args.plot:
        from .plots import plot_errors

        arrays = error_arrays(table, dom)
        assert summarize(arrays)["max_ulp"] == rep["max_ulp"]
        plot_errors(
            arrays,
            args.plot,
            f"{table.function} ({table.precision}): bit-accurate error, {args.table} "
            "(grey lines: cutpoints)",
            table.cutpoint_values(),
        )
        print(f"wrote {args.plot}")
    return 0


def _refine(args):
    from nli.table import save_table

    from .refine import RefineConfig, refine_table

    _outputs((args.output, "--output"), (args.json, "--json"))
    table = _load_table(args.table)
    if table.dtype != "fp16":
        raise UserError(f"{args.table}: refine handles fp16 tables only, this one is {table.dtype}")
    _allow_named_import(args, table)
    cfg = RefineConfig(objective=args.objective, radius=args.radius, sweeps=args.sweeps)
    new, summary = refine_table(table, cfg, _domain(args), progress=True)
    for k in ("before", "after"):
        print(k + ":", end=" ")
        _print_report(summary[k])
    save_table(new, args.output)
    print(f"wrote {args.output} ({summary['refined']['changed_entries']} entries changed)")
    if args.json:
        _write_json(args.json, summary)
    return 0


def _cost(args):
    from .hw_model import (
        LABEL,
        UnitConfig,
        elementwise_cycles,
        fit_area_power,
        rmsnorm_cycles,
        softmax_cycles,
    )

    _outputs((args.json, "--json"))
    try:
        cfg = UnitConfig(lanes=args.lanes, clock_hz=args.clock_ghz * 1e9)
    except ValueError as e:
        raise UserError(str(e)) from None
    fit = fit_area_power(args.comparator_words).fit
    out = {
        "label": LABEL,
        "lanes": cfg.lanes,
        "clock_hz": cfg.clock_hz,
        "elementwise": {"n": args.n, "cycles": elementwise_cycles(args.n, cfg)},
        "softmax": {m: softmax_cycles(args.n, args.rows, m, cfg) for m in MODES},
        "rmsnorm": {m: rmsnorm_cycles(args.n, args.rows, m, cfg) for m in MODES},
        "area_power_fit": fit,
    }
    print(
        f"{LABEL}\nlanes {cfg.lanes} @ {cfg.clock_hz / 1e9:g} GHz, n = {args.n}, rows = {args.rows}"
    )
    print(f"  elementwise: {out['elementwise']['cycles']} cycles")
    for op in ("softmax", "rmsnorm"):
        for m in MODES:
            c = out[op][m]
            print(f"  {op} {m}: {c['cycles']} cycles ({c['schedule']})")
    print("  design    area model / published (um^2)   power model / published (mW)   efficiency")
    for d in fit["designs"]:
        print(
            f"  {d['design']:8s} {d['model']['area_um2']:9.0f} / {d['published']['area_um2']:<9.0f}"
            f"        {d['model']['power_mw']:6.2f} / {d['published']['power_mw']:<6.1f}"
            f"           {d['model']['efficiency']:.2f} / {d['published']['efficiency']}"
        )
    if args.json:
        _write_json(args.json, out)
    return 0


# ----------------------------------------------------------------------------- registration
def _solve_datapath(*args, **kwargs):
    from .datapath_solve import solve_datapath

    return solve_datapath(*args, **kwargs)


def _datapath_note(result):
    from .datapath_solve import cost_note

    return cost_note(result)


def register(sub, groups):
    """Add `nli sim ...` and `nli table report|refine` to the parser, and give `nli table build`
    its datapath-exact objectives (nli.commands.DATAPATH_SOLVERS)."""
    from nli.commands import DATAPATH_SOLVERS

    DATAPATH_SOLVERS.update(solve=_solve_datapath, note=_datapath_note)
    sim = group(sub, groups, "sim", "run the bit-accurate NLI Engine simulator")

    p = sim.add_parser("elementwise", help="run a table's elementwise datapath on an array")
    p.add_argument("table", help="table JSON")
    p.add_argument("--input", required=True, help=".npy, float16 or uint16 bit patterns")
    p.add_argument("--output", required=True, help=".npy to write (float16)")
    p.set_defaults(func=_elementwise)

    p = sim.add_parser("softmax", help="softmax over the last axis")
    p.add_argument("--exp", required=True, help="exp table JSON")
    p.add_argument("--recip", required=True, help="reciprocal table JSON")
    p.add_argument("--mode", required=True, help="direct or reduced (numerics §5)")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.set_defaults(func=_softmax)

    p = sim.add_parser("rmsnorm", help="RMSNorm over the last axis")
    p.add_argument("--rsqrt", required=True, help="rsqrt table JSON")
    p.add_argument("--mode", required=True, help="direct or reduced (numerics §5)")
    p.add_argument(
        "--weight", required=True, help=".npy float16/uint16, one weight per row element"
    )
    p.add_argument(
        "--eps", required=True, type=finite_float(min=0.0), help="epsilon >= 0 (rounded to FP32)"
    )
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.set_defaults(func=_rmsnorm)

    p = sim.add_parser("cost", help="cycle/area/power MODEL (calibrated on published numbers)")
    p.add_argument("--lanes", type=positive_int(1 << 20), default=1)
    p.add_argument("--clock-ghz", type=finite_float(0.0, 1e3, min_exclusive=True), default=1.0)
    p.add_argument(
        "--n", type=positive_int(1 << 40), default=1024, help="row length / element count"
    )
    p.add_argument("--rows", type=positive_int(1 << 40), default=1)
    p.add_argument(
        "--comparator-words",
        type=positive_float,
        default=2.0,
        help="a comparator's cost in 16-bit storage words (model assumption)",
    )
    p.add_argument("--json", help="write the numbers here")
    p.set_defaults(func=_cost)

    table = group(sub, groups, "table", "build, export and inspect interpolation tables")
    p = table.add_parser("report", help="bit-accurate error over every FP16 input of the domain")
    p.add_argument("table", help="table JSON")
    p.add_argument("--json", help="write the report here")
    p.add_argument("--plot", help="write error-vs-x and ulp-histogram PNG here")
    p.add_argument(
        "--intervals",
        action="store_true",
        help="also print the numbers per region: each clamp and macro interval",
    )
    p.add_argument("--precision", choices=PRECISIONS, help="run as this unit precision")
    p.add_argument(
        "--domain", type=finite_float(), nargs=2, metavar=("LO", "HI"), help="default: the table's"
    )
    p.add_argument("--import-function", metavar="PKG.MODULE:NAME", help=IMPORT_HELP)
    p.set_defaults(func=_report)

    p = table.add_parser("refine", help="datapath-aware LUT refinement (bit-accurate objective)")
    p.add_argument("table", help="table JSON")
    p.add_argument("--output", required=True, help="refined table JSON to write")
    p.add_argument(
        "--objective", choices=("mean_rel", "pct_cr", "max_ulp", "pareto"), default="mean_rel"
    )
    p.add_argument(
        "--radius", type=positive_int(1 << 16), default=2, help="codes tried each side (1..65536)"
    )
    p.add_argument(
        "--sweeps", type=positive_int(1 << 10), default=4, help="max passes over the LUT (1..1024)"
    )
    p.add_argument("--domain", type=finite_float(), nargs=2, metavar=("LO", "HI"))
    p.add_argument("--import-function", metavar="PKG.MODULE:NAME", help=IMPORT_HELP)
    p.add_argument("--json", help="write before/after reports here")
    p.set_defaults(func=_refine)

    from .rtl.commands import register as register_rtl

    register_rtl(sub, groups)  # `nli hw rtl|synth`
