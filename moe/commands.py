"""CLI subcommands owned by the `moe` package: `nli moe upcycle|grow|report` and `nli eval cost`."""

from __future__ import annotations

import json
import sys

from nli.formats import SELECT_ON_CHOICES

from .layer import SELECT_ON

METHOD_CHOICES = ("sparse", "drop", "partition", "spri", "cluster")
SELECT_CHOICES = ("uniform", "weight_norm", "saliency", "grad", "fisher")
CALIB_WINDOWS = 16
CALIB_SEQ = 256


MAX_EXPERTS = 1 << 16
MAX_FACTOR = 1 << 10
MAX_WINDOWS = 1 << 12  # calibration / held-out windows of CALIB_SEQ tokens


def _dup_share(text: str):
    """--dup-share: 'half' (None: 1/copies) or a share in (0, 1)."""
    import argparse

    from nli.argtypes import finite_float

    if text == "half":
        return None
    try:
        v = finite_float(0.0, 1.0, min_exclusive=True)(text)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"'half' or a share in (0, 1]: {e}") from None
    return v


def register(sub, groups):
    """Add this package's subcommands to the `nli` parser."""
    from nli.argtypes import positive_int, seed
    from nli.cli import group

    try:  # MoE checkpoints become loadable by engine.load_model (and so by `nli eval ...`)
        import moe  # noqa: F401  (registers the resolver)
    except ImportError as e:
        print(f"nli: moe checkpoints unavailable ({e})", file=sys.stderr)
    g = group(sub, groups, "moe", "upcycle the dense model into a Mixture-of-Experts")
    p = g.add_parser(
        "upcycle", help="upcycle a dense model's FFNs into MoE layers, write a checkpoint"
    )
    p.add_argument("--model", required=True, help="smollm2, tiny, or a checkpoint directory")
    p.add_argument("--method", required=True, choices=METHOD_CHOICES)
    p.add_argument(
        "--experts",
        type=positive_int(MAX_EXPERTS),
        default=8,
        help="experts per MoE layer (default 8)",
    )
    p.add_argument(
        "--top-k", type=positive_int(MAX_EXPERTS), default=2, help="experts per token (default 2)"
    )
    p.add_argument(
        "--layers", default=None, help="MoE layers: e.g. 22-29, 0,5,7 or last8 (default: last 8)"
    )
    p.add_argument(
        "--no-renormalize",
        action="store_true",
        help="Megatron pre-softmax routing (no top-k renormalization)",
    )
    p.add_argument(
        "--select-on",
        default=SELECT_ON,
        choices=SELECT_ON_CHOICES,
        help="top-k ranks the router logits (default; the exact softmax order) or the softmax "
        "output",
    )
    p.add_argument(
        "--opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method option, e.g. ratio=0.5 (drop), rho=0.5 scale=8 (spri), rank_fraction=0.5 "
        "temperature=10 (cluster), router=centroid (partition)",
    )
    p.add_argument(
        "--calib",
        type=positive_int(MAX_WINDOWS),
        default=CALIB_WINDOWS,
        help=f"calibration windows of {CALIB_SEQ} tokens (cluster)",
    )
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("-o", "--out", required=True, help="checkpoint directory to write")
    p.set_defaults(func=_upcycle)

    p = g.add_parser("grow", help="grow an MoE checkpoint from E to factor*E experts (top-k fixed)")
    p.add_argument("checkpoint")
    p.add_argument("--factor", type=positive_int(MAX_FACTOR), default=2)
    p.add_argument("--select", default="uniform", choices=SELECT_CHOICES)
    p.add_argument("--router-init", default="split", choices=("split", "copy"))
    p.add_argument(
        "--dup-share",
        type=_dup_share,
        default=0.1,
        help="softmax share of each duplicate ('half' = 1/copies; default 0.1)",
    )
    p.add_argument(
        "--calib",
        type=positive_int(MAX_WINDOWS),
        default=4,
        help=f"calibration windows of {CALIB_SEQ} tokens (grad-based selectors)",
    )
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("-o", "--out", required=True)
    p.set_defaults(func=_grow)

    p = g.add_parser(
        "report", help="diagnostics at init: KL to dense, diversity, routing entropy and load"
    )
    p.add_argument("checkpoint")
    p.add_argument(
        "--dense", default=None, help="the dense model (default: the checkpoint's source)"
    )
    p.add_argument(
        "--windows",
        type=positive_int(MAX_WINDOWS),
        default=4,
        help=f"held-out windows of {CALIB_SEQ} tokens",
    )
    p.add_argument("--json", default=None, help="also write the report here")
    p.set_defaults(func=_report)

    e = group(sub, groups, "eval", "evaluate models")
    p = e.add_parser(
        "cost", help="nonlinear work per token priced on the NLI and NN-LUT units (model output)"
    )
    p.add_argument("--model", required=True, help="smollm2, tiny, or a checkpoint directory")
    p.add_argument(
        "--seq",
        type=positive_int(1 << 40),
        default=512,
        help="prefill length for the attention rows (default 512)",
    )
    p.add_argument(
        "--lanes",
        type=positive_int(1 << 20),
        default=None,
        help="parallel unit lanes (default: hw_sim.hw_model's)",
    )
    p.add_argument("--json", default=None, help="also write the result here")
    p.set_defaults(func=_cost)


def _opts(pairs: list[str]) -> dict:
    from nli.cli import UserError

    out = {}
    for kv in pairs:
        if "=" not in kv:
            raise UserError(f"--opt {kv!r}: expected KEY=VALUE")
        k, v = kv.split("=", 1)
        for conv in (int, float):
            try:
                out[k] = conv(v)
                break
            except ValueError:
                continue
        else:
            out[k] = v
    return out


def _load(name: str):
    """(model, tokenizer, source name) for smollm2 / tiny / a checkpoint directory."""
    import engine
    from nli.cli import UserError

    from .checkpoint import is_checkpoint

    try:
        model, tok = engine.load_model(name)
    except (FileNotFoundError, ImportError) as e:
        raise UserError(f"cannot load model {name!r}: {e}") from None
    source = getattr(model, "provenance", {}).get("source", name) if is_checkpoint(name) else name
    return model, tok, source


def _write_json(path, obj) -> None:
    if path:
        from nli.table import atomic_write_text

        atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def _upcycle(args) -> int:
    from nli.cli import UserError
    from nli.inputs import check_alloc, check_output_dir

    from .calib import token_windows
    from .checkpoint import save_checkpoint
    from .config import MoEConfig, parse_layers
    from .upcycling import upcycle

    if args.top_k > args.experts:
        raise UserError(f"--top-k {args.top_k} exceeds --experts {args.experts}")
    check_output_dir(args.out, "--out")
    dense, tok, source = _load(args.model)
    layers = parse_layers(args.layers, dense.cfg)
    hidden = dense.cfg.hidden_dim  # every method's experts are at most as wide as the dense FFN
    new_cfg = MoEConfig(
        layers=layers,
        num_experts=args.experts,
        top_k=args.top_k,
        expert_hidden_dim=hidden,
        principal=args.method == "spri",
    )
    check_alloc(
        4 * (2 * dense.cfg.param_count() + dense.cfg.rope_count() + new_cfg.param_count(dense.cfg)),
        f"--experts {args.experts}",
    )
    if args.method == "cluster":  # FFN inputs of every calibration token, per MoE layer
        check_alloc(
            4 * args.calib * CALIB_SEQ * dense.cfg.dim * len(layers), f"--calib {args.calib}"
        )
    calib = None
    if args.method == "cluster":
        calib = token_windows(tok, dense.cfg.vocab_size, args.calib, CALIB_SEQ)
    try:
        model = upcycle(
            dense,
            args.method,
            args.experts,
            args.top_k,
            layers=layers,
            seed=args.seed,
            renormalize=not args.no_renormalize,
            calib_ids=calib,
            select_on=args.select_on,
            **_opts(args.opt),
        )
    except TypeError as e:
        raise UserError(f"bad --opt for method {args.method}: {e}") from None
    path = save_checkpoint(
        args.out, model, provenance={"source": source, "command": "moe upcycle"}, tokenizer=tok
    )
    c = model.moe_config
    print(
        f"wrote {path}: {args.method}, {c.num_experts} experts, top-{c.top_k}, "
        f"layers {list(c.layers)}"
    )
    return 0


def _grow(args) -> int:
    from dataclasses import replace

    from nli.cli import UserError
    from nli.inputs import check_alloc, check_output_dir

    from .calib import token_windows
    from .checkpoint import moe_config_of, save_checkpoint
    from .growth import grow

    check_output_dir(args.out, "--out")
    model, tok, source = _load(args.checkpoint)
    mc = moe_config_of(model)
    if mc is None:
        raise UserError(f"{args.checkpoint}: not an MoE checkpoint (nothing to grow)")
    grown = replace(mc, num_experts=mc.num_experts * args.factor)
    check_alloc(
        4
        * (
            model.cfg.param_count()
            + model.cfg.rope_count()
            + mc.param_count(model.cfg)
            + grown.param_count(model.cfg)
        ),
        f"--factor {args.factor}",
    )
    calib = None
    if args.select in ("saliency", "grad", "fisher"):
        calib = token_windows(tok, model.cfg.vocab_size, args.calib, CALIB_SEQ)
    new = grow(
        model,
        args.factor,
        args.select,
        calib_ids=calib,
        router_init=args.router_init,
        dup_share=args.dup_share,
        seed=args.seed,
    )
    path = save_checkpoint(
        args.out, new, provenance={"source": source, "command": "moe grow"}, tokenizer=tok
    )
    plan = new.moe_config.options["grow"][-1]["copies"]
    print(
        f"wrote {path}: {new.moe_config.num_experts} experts, top-{new.moe_config.top_k}; "
        f"copies per layer {plan}"
    )
    return 0


def _report(args) -> int:
    from nli.inputs import check_output_path

    from .calib import token_windows
    from .diagnostics import init_report

    if args.json is not None:
        check_output_path(args.json, "--json")
    from nli.inputs import check_alloc

    model, tok, source = _load(args.checkpoint)
    # log-probabilities of every held-out token over the vocabulary, plus one window's forward pass
    check_alloc(
        4
        * (args.windows * CALIB_SEQ * model.cfg.vocab_size + model.cfg.activation_count(CALIB_SEQ)),
        f"--windows {args.windows}",
    )
    dense, _, _ = _load(args.dense or source)
    ids = token_windows(tok, model.cfg.vocab_size, args.windows, CALIB_SEQ, heldout=True)
    rep = init_report(dense, model, ids)
    for k in ("kl_to_dense", "weight_cosine", "output_cosine", "routing_entropy"):
        print(f"{k:16s} {rep[k]:.6g}")
    for i, lay in rep["layers"].items():
        print(f"layer {i:>3s} load " + " ".join(f"{v:.3f}" for v in lay["expert_load"]))
    _write_json(args.json, rep)
    return 0


def _cost(args) -> int:
    from nli.cli import UserError

    from .checkpoint import is_checkpoint, read_config
    from .op_counts import counts_to_dict, lookups, nonlinear_counts
    from .pricing import price

    if args.json is not None:
        from nli.inputs import check_output_path

        check_output_path(args.json, "--json")
    if is_checkpoint(args.model):
        cfg, moe_cfg, _ = read_config(args.model)
    else:
        import engine

        if args.model not in engine.MODEL_NAMES:
            raise UserError(
                f"--model must be one of {', '.join(engine.MODEL_NAMES)} or a checkpoint directory"
            )
        model, _ = engine.load_model(args.model)
        cfg, moe_cfg = model.cfg, None
    counts = nonlinear_counts(cfg, moe_cfg, args.seq)
    result = {
        "label": "model output (analytic counts priced by hw_sim.hw_model), not a measurement",
        "model": args.model,
        "seq": args.seq,
        "moe": None if moe_cfg is None else moe_cfg.to_dict(),
        "per_token": counts_to_dict(counts),
        "lookups_per_token": lookups(counts),
    }
    result["pricing"] = price(counts, args.lanes)
    print(f"model output for {args.model} (seq {args.seq}), per token:")
    for op, c in counts.items():
        print(f"  {op:18s} rows {c.rows:10.1f}  elements {c.elements:12.1f}")
    for unit, p in result["pricing"].items():
        print(
            f"  {unit:8s} "
            + ", ".join(f"{k} {v:.4g}" for k, v in p.items() if isinstance(v, (int, float)))
        )
    _write_json(args.json, result)
    return 0
