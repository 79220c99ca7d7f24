"""CLI subcommands owned by the `engine` package (registered via entry points).

``nli eval ppl``: perplexity of a model with its ops substituted, against ref.
"""

from __future__ import annotations

import json
import sys


def register(sub, groups):
    """Add this package's subcommands to the `nli` parser."""
    from nli.argtypes import positive_int
    from nli.cli import group
    from nli.formats import BACKENDS, DTYPES, MODES, RMSNORM_INPUTS

    ev = group(sub, groups, "eval", "evaluate LLMs with their ops on the simulated unit")
    p = ev.add_parser(
        "ppl", help="perplexity, top-1 agreement, KL and activation statistics vs ref"
    )
    p.add_argument(
        "--model",
        default="smollm2",
        help="smollm2 | gemma3 | tiny | a .gguf file | hf:PATH (a Hugging Face model directory "
        "with config.json, or a .gguf file, loaded by transformers) | anything a registered "
        "resolver accepts",
    )
    p.add_argument(
        "--device",
        default="cpu",
        metavar="DEVICE",
        help="torch device of the model and the token ids: cpu | cuda | cuda:N | mps (default cpu)",
    )
    p.add_argument(
        "--device-map",
        default=None,
        choices=("auto",),
        help="hf: models only: spread the model over the available devices with accelerate "
        "(instead of --device)",
    )
    p.add_argument(
        "--text",
        default=None,
        metavar="FILE",
        help="UTF-8 text file (default: the shipped held-out text engine/data/heldout_en.txt)",
    )
    p.add_argument(
        "--max-tokens",
        type=positive_int(),
        default=4096,
        metavar="N",
        help="score the first N tokens (default 4096)",
    )
    p.add_argument(
        "--window",
        type=positive_int(),
        default=None,
        metavar="W",
        help="non-overlapping windows of W tokens, W-1 predictions each "
        "(default: 1024, or the model's context if shorter)",
    )
    p.add_argument(
        "--ops",
        default="act,rmsnorm,softmax",
        help="comma-separated ops (roles) to substitute: act (the model's own activation), "
        "rmsnorm, softmax; 'silu' is an alias of act",
    )
    # --mode: the old name of --variant, still accepted (deprecated)
    p.add_argument(
        "--variant",
        "--mode",
        dest="variant",
        default="nli",
        metavar="VARIANT",
        help="op variant: ref | fp16 | bf16 (the exact ops with FP16 / BF16 inputs and outputs) | "
        "nli | published (NLI's own cutpoints) | baseline:uniform|curvature|nnlut "
        "(--mode: deprecated alias)",
    )
    p.add_argument(
        "--dtype",
        default=None,
        choices=DTYPES,
        help="the unit's 16-bit format (numerics §13): fp16 | bf16 (the ops take and return "
        "BF16: the model's FP32 activations rounded to BF16 at each op; bf16 tables). "
        "Default: the variant's own (bf16 for --variant bf16, else fp16)",
    )
    p.add_argument(
        "--reciprocal-mode",
        default="reduced",
        choices=MODES,
        help="reciprocal/rsqrt mode of the unit (numerics §5; default reduced)",
    )
    p.add_argument(
        "--rmsnorm-input",
        default=None,
        choices=RMSNORM_INPUTS,
        help="how RMSNorm's FP32 rows enter the unit (numerics §4.1): scaled (the fp16 default: an "
        "exact power-of-two row prescale where a value would overflow FP16) | plain (RNE alone; "
        "in fp16 values of 65520 or more become inf; bf16's only choice, numerics §13)",
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", *BACKENDS),
        help="where the unit's ops run: numba (hw_sim, CPU) or torch (the bit-identical torch "
        "datapath, on the model's device); auto: numba on the CPU, torch elsewhere (default)",
    )
    p.add_argument(
        "--table",
        action="append",
        default=[],
        metavar="FUNCTION=FILE",
        help="use this table file for FUNCTION (silu, gelu_tanh, exp, reciprocal, rsqrt); "
        "repeatable",
    )
    p.add_argument("--json", default=None, metavar="OUT", help="write the result as JSON here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_eval_ppl)

    from .export_commands import register_export  # `nli export onnx-op | onnx`

    register_export(sub, groups)


def _parse_tables(specs: list[str]) -> dict | None:
    from nli.cli import UserError
    from nli.formats import UNIT_FUNCTIONS
    from nli.table import load_table

    out = {}
    for spec in specs:
        fn, sep, path = spec.partition("=")
        if not sep or not fn or not path:
            raise UserError(f"--table {spec!r}: expected FUNCTION=FILE")
        if fn not in UNIT_FUNCTIONS:
            raise UserError(
                f"--table {spec!r}: FUNCTION must be one of {', '.join(UNIT_FUNCTIONS)}"
            )
        out[fn] = load_table(path)
    return out or None


def _eval_ppl(args) -> int:
    from nli.cli import UserError
    from nli.inputs import check_alloc, check_output_path, read_text
    from nli.table import atomic_write_text

    from . import HF_PREFIX, eval_report_for, load_model
    from .devices import resolve_device
    from .experiments import eval_ppl, heldout_text, json_safe, token_ids
    from .substitution import parse_ops, parse_variant, resolve_dtype

    if args.max_tokens < 2:
        raise UserError(f"--max-tokens must be >= 2, got {args.max_tokens}")
    if args.window is not None and args.window < 2:
        raise UserError(f"--window must be >= 2, got {args.window}")
    ops = parse_ops(args.ops)
    if not ops:
        raise UserError("--ops: name at least one of act, rmsnorm, softmax")
    parse_variant(args.variant)
    try:
        args.dtype = resolve_dtype(args.variant, args.dtype)
    except ValueError as e:
        raise UserError(f"--dtype: {e}") from None
    if args.rmsnorm_input is None:
        args.rmsnorm_input = "plain" if args.dtype == "bf16" else "scaled"
    elif args.dtype == "bf16" and args.rmsnorm_input != "plain":
        raise UserError(
            f"--rmsnorm-input {args.rmsnorm_input}: that is the FP16 row prescale (numerics §4.1); "
            "bf16 has none (numerics §13), use plain"
        )
    if args.json is not None:
        check_output_path(args.json, "--json")
    tables = _parse_tables(args.table)
    for fn, t in (tables or {}).items():
        if t.dtype != args.dtype:
            raise UserError(
                f"--table {fn}: the table is {t.dtype}, but the unit runs {args.dtype} "
                f"(--dtype {args.dtype}); one op's tables share its dtype (numerics §13)"
            )
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        raise UserError(f"--device: {e}") from None
    if args.device_map is not None:
        if not str(args.model).startswith(HF_PREFIX):
            raise UserError(f"--device-map applies to {HF_PREFIX}PATH models only")
        if args.device != "cpu":
            raise UserError("give --device or --device-map, not both")
    if args.text is None:
        text, source = heldout_text(), "engine/data/heldout_en.txt"
    else:
        text, source = read_text(args.text, "--text"), args.text
    model, tok = load_model(args.model, device_map=args.device_map)
    ids = token_ids(tok, text, args.max_tokens)
    if args.device_map is None:  # with a device map the model moves the ids itself
        model, ids = model.to(device), ids.to(device)
    if args.window is None:
        args.window = min(1024, model.cfg.max_seq_len)
    if args.window > model.cfg.max_seq_len:
        raise UserError(
            f"--window {args.window} exceeds the model's context of {model.cfg.max_seq_len} tokens"
        )
    check_alloc(
        4 * model.cfg.activation_count(min(args.window, len(ids))), f"--window {args.window}"
    )
    res = eval_ppl(
        model,
        ids,
        ops,
        args.variant,
        args.reciprocal_mode,
        args.window,
        tables,
        progress=not args.no_progress,
        backend=args.backend,
        rmsnorm_input=args.rmsnorm_input,
        dtype=args.dtype,
    )
    res.update(
        model=str(args.model),
        text=source,
        backend=args.backend,
        device=args.device_map or str(device),
    )
    extra = eval_report_for(
        model
    )  # e.g. an MoE model adds routing agreement and expert load (moe registers it)
    if extra is not None:
        res.update(
            extra(
                model,
                ids,
                ops=ops,
                variant=args.variant,
                reciprocal_mode=args.reciprocal_mode,
                window=args.window,
                tables=tables,
                rmsnorm_input=args.rmsnorm_input,
                dtype=args.dtype,
            )
        )
        print(
            f"  routing agreement ref vs {args.variant}: "
            f"{res['routing_agreement'] * 100:.3f}% of tokens (top-k set unchanged)"
        )
    _print_summary(res)
    if args.json:
        atomic_write_text(args.json, json.dumps(json_safe(res), indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


def _print_summary(r: dict) -> None:
    rel = r["ppl_rel_change"]
    print(
        f"{r['model']}: {r['tokens']} tokens, ops {','.join(r['ops'])} on {r['mode']} "
        f"({r.get('dtype', 'fp16')}, {r['reciprocal_mode']} reciprocal/rsqrt, "
        + (
            "no RMSNorm prescale)"
            if r.get("dtype") == "bf16"
            else f"{r['rmsnorm_input']} RMSNorm input)"
        )
    )
    print(
        f"  ppl ref {r['ppl_ref']:.4f}  ppl {r['ppl']:.4f}  change {rel * 100:+.4f}%  "
        f"top-1 agreement {r['top1_agreement'] * 100:.2f}%  mean KL {r['mean_kl']:.3g} nats"
    )
    for op, s in r["activation_stats"].items():
        extra = ""
        if "mean_square_max" in s:
            extra = f", mean square max {s['mean_square_max']:.4g}"
        print(
            f"  {op:<8} input [{s['min']:.4g}, {s['max']:.4g}] (peak at {s['peak_module']}), "
            f"{s['fraction_outside'] * 100:.3f}% outside {s['range']}{extra}",
            file=sys.stdout,
        )
