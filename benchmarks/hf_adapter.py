"""The Hugging Face adapter against the native path: same ppl_ref and ppl (nli) on the same ids.

For each model the native engine model (``engine.load_model(NAME)``) and the
adapter (``engine.load_model("hf:" + its GGUF)``, transformers' GGUF loader
and forward with the ops substituted through its extension points) score the
same token ids (the native tokenizer's, on the shipped held-out text) with
``ref`` and with ``nli`` (all three ops, reduced reciprocal/rsqrt mode).
Target (issue 15): |adapter / native - 1| <= 1e-4 for ppl_ref and for ppl.
Also recorded: whether transformers' tokenizer gives the same ids, and the
largest |logit| difference of the two ref forwards on the first window.
Writes benchmarks/results/hf_adapter.json.

    .venv/bin/python benchmarks/hf_adapter.py                     # SmolLM2, 512 tokens
    .venv/bin/python benchmarks/hf_adapter.py --models smollm2,gemma3 --tokens 2048
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import torch

from engine import load_model
from engine.experiments import eval_ppl, heldout_text, json_safe, token_ids
from engine.gguf_loader import smollm2_path

from results_io import results_path, write_json

REL_TARGET = 1e-4  # |adapter / native - 1| for ppl_ref and ppl
OUT = results_path("hf_adapter.json")


def gguf_of(name: str) -> str:
    """The GGUF file the native loader reads for built-in model ``name``."""
    if name == "smollm2":
        return str(smollm2_path())
    if name == "gemma3":
        from engine.model_files import gemma3_path

        return str(gemma3_path())
    raise ValueError(f"no GGUF known for {name!r}")


def compare(name: str, tokens: int, window: int) -> dict:
    try:
        native, ntok = load_model(name)
    except ValueError as e:
        return {"skipped": f"native {name} not available here: {e}"}
    path = gguf_of(name)
    t0 = time.perf_counter()
    hf, htok = load_model(f"hf:{path}")
    load_s = time.perf_counter() - t0
    text = heldout_text()
    ids = token_ids(ntok, text, tokens)
    hf_ids = token_ids(htok, text, tokens)
    with torch.no_grad():
        x = ids[None, : min(window, ids.numel())]
        logit_diff = float((native(x) - hf(x)).abs().max())
    res = {}
    for label, model in (("native", native), ("adapter", hf)):
        r = eval_ppl(
            model, ids, variant="nli", reciprocal_mode="reduced", window=window, progress=False
        )
        res[label] = {
            k: r[k] for k in ("tokens", "ppl_ref", "ppl", "ppl_rel_change", "top1_agreement")
        }
    rel = {k: res["adapter"][k] / res["native"][k] - 1.0 for k in ("ppl_ref", "ppl")}
    return {
        "gguf": path,
        "token_ids": len(ids),
        "window": window,
        "ids_from": "the native tokenizer (both paths score these ids)",
        "hf_tokenizer_same_ids": bool(torch.equal(ids, hf_ids)),
        "hf_tokenizer_first_ids": hf_ids[:4].tolist(),
        "native_first_ids": ids[:4].tolist(),
        "ref_logits_max_abs_diff_first_window": logit_diff,
        "hf_load_seconds": load_s,
        "native": res["native"],
        "adapter": res["adapter"],
        "rel_diff": rel,
        "target_rel": REL_TARGET,
        "meets_target": all(abs(v) <= REL_TARGET for v in rel.values()),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="smollm2", help="comma-separated: smollm2, gemma3")
    ap.add_argument("--tokens", type=int, default=512, help="token ids scored (default 512)")
    ap.add_argument("--window", type=int, default=512, help="window in tokens (default 512)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    import transformers

    out = {
        "command": " ".join(
            ["python benchmarks/hf_adapter.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "ops": ["act", "rmsnorm", "softmax"],
        "variant": "nli",
        "reciprocal_mode": "reduced",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "models": {},
    }
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        r = compare(name, args.tokens, args.window)
        out["models"][name] = r
        print(name, {k: r[k] for k in ("rel_diff", "meets_target") if k in r} or r)
    write_json(args.out, json_safe(out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
