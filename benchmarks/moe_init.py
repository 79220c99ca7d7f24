"""MoE upcycling benchmark on SmolLM2 (issue 5): every method at init, ref and nli, speed.

For each upcycling method (default: last 8 layers, 8 experts, top-2):
KL to the dense model, expert diversity (weight and output cosine), routing
entropy, per-layer expert load, perplexity on ref and on nli (all of SiLU,
RMSNorm, attention and router softmax on the simulated unit), routing
agreement ref vs nli (fraction of tokens whose top-k set is unchanged,
target >= 99.5%). Then growth (8 -> 16 experts) function change per router
init, the MoE layer forward throughput against a dense SwiGLU with the same
active FLOPs (hidden = k * expert hidden; target >= 0.7x), and whole-model
tokens/s against dense. Peers are timed in the same run, interleaved.

Perplexity follows engine's window convention: each row of the id matrix is
one window scored from position 0, T - 1 predictions per window.

Run (modest defaults: the CPU is shared):
    .venv/bin/python benchmarks/moe_init.py
    .venv/bin/python benchmarks/moe_init.py --windows 8 --nli-windows 4 --seq 256   # larger
Writes benchmarks/results/moe.json and benchmarks/results/moe_expert_load.png.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

import engine
from engine.substitution import substitute
from moe.calib import token_windows
from moe.diagnostics import (
    chosen_experts,
    expert_load,
    expert_output_cosine,
    expert_weight_cosine,
    mapped_routing_agreement,
    routing_agreement,
    routing_entropy,
)
from moe.growth import grow, grown_sources
from moe.layer import SELECT_ON, dense_equivalent_ffn, moe_layers
from moe.plots import plot_expert_load
from moe.upcycling import METHODS, upcycle
from nli.formats import SELECT_ON_CHOICES

from results_io import results_path, stamp_tables, write_json

ROUTING_AGREEMENT_TARGET = 0.995
THROUGHPUT_TARGET = 0.7


@torch.no_grad()
def score(model, ids, ref_lp=None, batch=2):
    """One pass: NLL sum, prediction count, KL sum vs ref_lp (list of batches), router logits
    per layer."""
    nll, n, kl = 0.0, 0, 0.0
    idx = [i for i, _ in moe_layers(model)]
    routers = {i: [] for i in idx}
    lps = []
    for j, b in enumerate(range(0, ids.shape[0], batch)):
        x = ids[b : b + batch]
        logits, rl = model(x, return_router_logits=True)
        lp = F.log_softmax(logits.float(), -1)  # [b, T, V]
        nll -= float(lp[:, :-1].gather(-1, x[:, 1:, None]).sum())
        n += x[:, 1:].numel()
        if ref_lp is not None:
            kl += float((ref_lp[j].exp() * (ref_lp[j] - lp)).sum())
        else:
            lps.append(lp)
        for i, r in zip(idx, rl):
            routers[i].append(r)
    return {
        "ppl": math.exp(nll / n),
        "kl": kl / ids.numel(),
        "routers": {i: torch.cat(v) for i, v in routers.items()},
        "logprobs": lps,
    }


def choices(model, routers):
    return {i: chosen_experts(layer, routers[i]) for i, layer in moe_layers(model)}


@torch.no_grad()
def time_interleaved(fns: dict, repeats: int) -> dict:
    """Median seconds per call of each fn, interleaved round by round after one warm-up each."""
    times = {k: [] for k in fns}
    for f in fns.values():
        f()
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def layer_throughput(models: dict, tokens: int, repeats: int) -> dict:
    """MoE layer vs dense-equivalent SwiGLU forward on the same inputs (last MoE layer of each
    model), at 1 thread and at torch's default thread count."""
    out = {}
    g = torch.Generator().manual_seed(0)
    default_threads = torch.get_num_threads()
    for name, model in models.items():
        _, layer = moe_layers(model)[-1]
        peer = dense_equivalent_ffn(layer)
        x = torch.randn(tokens, layer.dim, generator=g)
        for threads in sorted({1, default_threads}):
            torch.set_num_threads(threads)
            t = time_interleaved({"moe": lambda: layer(x), "dense": lambda: peer(x)}, repeats)
            out[f"{name}@{threads}t"] = {
                "tokens": tokens,
                "threads": threads,
                "moe_s": t["moe"],
                "dense_equiv_s": t["dense"],
                "dense_equiv_hidden": peer.gate_proj.out_features,
                "throughput_ratio": t["dense"] / t["moe"],
            }
        torch.set_num_threads(default_threads)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--windows", type=int, default=4, help="held-out windows (ref)")
    ap.add_argument("--nli-windows", type=int, default=2, help="held-out windows run on nli")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--calib", type=int, default=8, help="calibration windows (cluster, grow)")
    ap.add_argument("--speed-tokens", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--skip-nli", action="store_true")
    ap.add_argument(
        "--select-on", default=SELECT_ON, choices=SELECT_ON_CHOICES, help="what the top-k ranks"
    )
    ap.add_argument("--no-growth", action="store_true")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument(
        "--spri-sweep",
        default="",
        help="extra spri (rho:scale) pairs for KL only, e.g. 0.25:8,0.5:1",
    )
    ap.add_argument("--out", default=str(results_path("moe.json")))
    args = ap.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    torch.manual_seed(0)
    dense, tok = engine.load_model(args.model)
    ids = token_windows(tok, dense.cfg.vocab_size, args.windows, args.seq, heldout=True)
    calib = token_windows(tok, dense.cfg.vocab_size, args.calib, args.seq)
    nli_ids = ids[: args.nli_windows]
    res = {
        "model": args.model,
        "select_on": args.select_on,
        "experts": args.experts,
        "top_k": args.top_k,
        "held_out_tokens": int(ids.numel()),
        "nli_tokens": 0 if args.skip_nli else int(nli_ids.numel()),
        "seq": args.seq,
        "command": "python benchmarks/moe_init.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "threads": torch.get_num_threads(),
        "methods": {},
    }
    tables = None  # the shipped defaults
    res["tables"] = "shipped"
    d = score(dense, ids)
    ref_lp = d["logprobs"]
    res["dense"] = {"ppl_ref": d["ppl"]}
    if not args.skip_nli:
        res["dense"]["ppl_nli"] = score(substitute(dense, variant="nli", tables=tables), nli_ids)[
            "ppl"
        ]
        res["dense"]["ppl_ref_on_nli_tokens"] = score(dense, nli_ids)["ppl"]
    models, loads = {}, {}
    for method in tqdm(methods, desc="methods"):
        t0 = time.perf_counter()
        m = upcycle(
            dense,
            method,
            args.experts,
            args.top_k,
            calib_ids=calib if method == "cluster" else None,
            select_on=args.select_on,
        )
        t_up = time.perf_counter() - t0
        s = score(m, ids, ref_lp)
        ch = choices(m, s["routers"])
        xs = {}
        hooks = [
            layer.register_forward_pre_hook(
                lambda mod, a, i=i: xs.setdefault(i, a[0].reshape(-1, a[0].shape[-1]))
            )
            for i, layer in moe_layers(m)
        ]
        with torch.no_grad():
            m(ids[:1])
        for h in hooks:
            h.remove()
        per_layer = {
            str(i): {
                "weight_cosine": expert_weight_cosine(layer),
                "output_cosine": expert_output_cosine(layer, xs[i]),
                "routing_entropy": routing_entropy(s["routers"][i]),
                "expert_load": expert_load(ch[i], layer.num_experts).tolist(),
            }
            for i, layer in moe_layers(m)
        }

        def avg(k):
            return statistics.mean(v[k] for v in per_layer.values())

        r = {
            "upcycle_s": t_up,
            "kl_to_dense": s["kl"],
            "ppl_ref": s["ppl"],
            "weight_cosine": avg("weight_cosine"),
            "output_cosine": avg("output_cosine"),
            "routing_entropy": avg("routing_entropy"),
            "layers": per_layer,
            "options": m.moe_config.options,
        }
        if not args.skip_nli:
            sub = substitute(m, variant="nli", tables=tables)
            sn = score(sub, nli_ids)
            sr = score(m, nli_ids)
            cn, cr = choices(sub, sn["routers"]), choices(m, sr["routers"])
            agree = {str(i): routing_agreement(cr[i], cn[i]) for i in cr}
            tot = sum(cr[i].shape[0] for i in cr)
            r.update(
                ppl_nli=sn["ppl"],
                ppl_ref_on_nli_tokens=sr["ppl"],
                routing_agreement_per_layer=agree,
                routing_agreement=sum(agree[str(i)] * cr[i].shape[0] for i in cr) / tot,
                routing_agreement_min_layer=min(agree.values()),
            )
            r["meets_routing_target"] = r["routing_agreement"] >= ROUTING_AGREEMENT_TARGET
            loads[f"{method} nli"] = {str(i): expert_load(cn[i], args.experts).tolist() for i in cn}
        loads[method] = {k: v["expert_load"] for k, v in per_layer.items()}
        res["methods"][method] = r
        models[method] = m
        print(
            f"{method:10s} KL {r['kl_to_dense']:.4g}  ppl ref {r['ppl_ref']:.3f}"
            + (
                f"  nli {r['ppl_nli']:.3f}  agree {r['routing_agreement']:.4f}"
                if not args.skip_nli
                else ""
            ),
            flush=True,
        )
    if args.spri_sweep:
        res["spri_sweep"] = {}
        for pair in args.spri_sweep.split(","):
            rho, scale = (float(v) for v in pair.split(":"))
            m = upcycle(dense, "spri", args.experts, args.top_k, rho=rho, scale=scale)
            s = score(m, ids, ref_lp)
            res["spri_sweep"][pair] = {
                "rho": rho,
                "scale": scale,
                "kl_to_dense": s["kl"],
                "ppl_ref": s["ppl"],
            }
            print(f"spri rho {rho} scale {scale}: KL {s['kl']:.4g} ppl {s['ppl']:.3f}", flush=True)
    # growth: function change per router init, on the drop-upcycled model (distinct experts)
    if not args.no_growth:
        growth_report(res, models, methods, ids, args.experts)
    if not args.no_speed:
        speed_report(res, models, ids, dense, args)
    out = Path(args.out)
    write_json(out, stamp_tables(res))
    if loads:
        plot_expert_load(
            loads,
            out.with_name(out.stem + "_expert_load.png"),
            f"{args.model}: expert load at init",
        )
    print(f"wrote {out}")
    return 0


def growth_report(res, models, methods, ids, experts):
    """Function change of growth 8 -> 16 per router init (KL, mapped routing agreement,
    duplicate load)."""
    base_name = "drop" if "drop" in models else methods[0]
    base = models[base_name]
    sb = score(base, ids)
    cb = choices(base, sb["routers"])
    res["growth"] = {"base": base_name, "factor": 2, "variants": {}}
    for label, kw in {
        "copy (paper)": dict(router_init="copy"),
        "split 1/c": dict(dup_share=None),
        "split 0.1 (default)": {},
        "split 0.01": dict(dup_share=0.01),
    }.items():
        gm = grow(base, 2, "uniform", **kw)
        sg = score(gm, ids, sb["logprobs"])
        cg = choices(gm, sg["routers"])
        agr = [mapped_routing_agreement(cb[i], cg[i], grown_sources(gm, i)) for i in cb]
        dup_load = statistics.mean(
            float(expert_load(cg[i], layer.num_experts)[experts:].sum())
            for i, layer in moe_layers(gm)
        )
        res["growth"]["variants"][label] = {
            "kl_to_pre_growth": sg["kl"],
            "mapped_routing_agreement": statistics.mean(agr),
            "duplicate_load_fraction": dup_load,
            "top_k": gm.moe_config.top_k,
        }
        print(
            f"grow {label:20s} KL {sg['kl']:.4g} agree {statistics.mean(agr):.3f} dup load "
            f"{dup_load:.3f}",
            flush=True,
        )


def speed_report(res, models, ids, dense, args):
    """MoE layer vs dense-equivalent FFN throughput, and whole-model tokens/s vs dense."""
    speed_models = {k: models[k] for k in ("sparse", "spri", "partition") if k in models}
    res["layer_throughput"] = layer_throughput(speed_models, args.speed_tokens, args.repeats)
    res["layer_throughput_target"] = THROUGHPUT_TARGET
    for k, v in res["layer_throughput"].items():
        print(
            f"layer speed {k:10s} moe {v['moe_s'] * 1e3:.1f} ms  dense-equiv "
            f"{v['dense_equiv_s'] * 1e3:.1f} ms ratio {v['throughput_ratio']:.3f}",
            flush=True,
        )
    x = ids[:1]
    whole = {"dense": lambda: dense(x)}
    whole.update({k: (lambda mm=mm: mm(x)) for k, mm in speed_models.items()})
    t = time_interleaved(whole, max(3, args.repeats // 2))
    res["whole_model_tokens_per_s"] = {k: x.numel() / v for k, v in t.items()}
    res["whole_model_vs_dense"] = {k: t["dense"] / v for k, v in t.items() if k != "dense"}
    print(
        "whole model tokens/s",
        {k: round(v, 1) for k, v in res["whole_model_tokens_per_s"].items()},
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
