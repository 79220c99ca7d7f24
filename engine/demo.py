"""`nli demo` section of the engine: SmolLM2 perplexity for ref, fp16, nli, NLI's published
cutpoints and a baseline (every standard mode, baselines included, with ``--full``).

:func:`demo_perplexities` is the pure part (also callable from elsewhere);
:func:`section` prints the table and writes ``engine_ppl.json`` and
``engine_ppl.png`` under the demo's output folder.

Time budget: the default demo runs a fixed number of forward tokens per model
(:data:`DEMO_FORWARD_TOKENS`); the text is shortened when more passes (modes)
are asked for, so adding a mode or a model section does not lengthen the demo
beyond its budget. ``--full`` lifts it (all modes, :data:`FULL_TOKENS` tokens).
"""

from __future__ import annotations

from functools import lru_cache
import json
import math
from pathlib import Path

from nli.atomic import atomic_target

from .experiments import STANDARD_VARIANTS, compare_variants, heldout_text, json_safe, token_ids
from .substitution import OPS, make_ops

# The default demo's variants: the unit, its fp16 and published-cutpoint peers, one baseline.
DEMO_VARIANTS = tuple(
    m for m in STANDARD_VARIANTS if m[0] in ("fp16", "nli", "published", "baseline:nnlut")
)
# Forward-pass tokens (tokens x passes, ref included) the default demo spends per model.
DEMO_FORWARD_TOKENS = {"smollm2": 4 * 1024}
FULL_TOKENS = 2048
MIN_DEMO_TOKENS = 128


def demo_tokens(model: str, passes: int, quick: bool = False) -> int:
    """Tokens of text for ``passes`` forward passes of ``model`` within its budget (halved for
    ``quick``), at least MIN_DEMO_TOKENS."""
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    budget = DEMO_FORWARD_TOKENS[model] // (2 if quick else 1)
    return max(MIN_DEMO_TOKENS, budget // passes)


@lru_cache(maxsize=2)
def demo_model(name: str = "smollm2"):
    """``engine.load_model(name)``, loaded once per process (the engine and moe sections share it;
    neither modifies it: substitution and upcycling build new models)."""
    from . import load_model

    return load_model(name)


def available_variants(
    variants=STANDARD_VARIANTS, ops=OPS, activation: str = "silu"
) -> tuple[list, dict]:
    """Split ``variants`` into those whose tables can be had now (for a model whose activation is
    ``activation``) and {label: reason} for the rest."""
    ok, missing = [], {}
    for label, variant, rm in variants:
        try:
            make_ops(ops, variant, None, rm, activation)
            ok.append((label, variant, rm))
        except (
            ImportError,
            ValueError,
            OSError,
        ) as e:  # a table not shipped / a baseline module missing
            missing[label] = f"{type(e).__name__}: {e}"
    return ok, missing


def demo_perplexities(
    model=None,
    tokenizer=None,
    max_tokens: int = FULL_TOKENS,
    variants=STANDARD_VARIANTS,
    ops=OPS,
    window: int = 1024,
    progress: bool = True,
    record: bool = True,
) -> dict:
    """SmolLM2 (or the given model) perplexity on the shipped held-out text for every available
    variant, against ref: the dict of :func:`engine.experiments.compare_variants` plus
    ``unavailable``."""
    if model is None:
        model, tokenizer = demo_model("smollm2")
    ids = token_ids(tokenizer, heldout_text(), max_tokens)
    ok, missing = available_variants(variants, ops)
    res = (
        compare_variants(model, ids, ok, ops, window, progress=progress, record=record)
        if ok
        else {"modes": {}}
    )
    res["unavailable"] = missing
    res["text"] = "engine/data/heldout_en.txt"
    return res


PPL_LINTHRESH_PCT = 1e-4  # symlog's linear zone (%): the nli change (~1e-3 %) must stay visible


def perplexity_figure(res: dict):
    """Horizontal bars of the perplexity change vs ref (%) per mode on a symlog axis, each
    annotated with its value; a NaN perplexity is a hatched bar. Returns the matplotlib Figure."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    labels = list(res["modes"])
    rel = [res["modes"][k]["ppl_rel_change"] * 100 for k in labels]
    finite = [v for v in rel if math.isfinite(v)]
    hi = max([v for v in finite if v > 0] + [10 * PPL_LINTHRESH_PCT])
    lo = min([v for v in finite if v < 0] + [-10 * PPL_LINTHRESH_PCT])
    fig = Figure(figsize=(8, 0.45 * len(labels) + 1.6), layout="constrained")
    ax = fig.subplots()
    for i, v in enumerate(rel):
        if math.isfinite(v):
            ax.barh(i, v, color="tab:blue" if abs(v) < 0.1 else "tab:red")
            ax.text(v, i, f" {v:+.3g}% ", va="center", ha="left" if v >= 0 else "right", fontsize=8)
        else:  # NaN perplexity: hatched across the positive side
            ax.barh(i, hi, color="lightgray", hatch="//")
            ax.text(
                PPL_LINTHRESH_PCT,
                i,
                " NaN perplexity ",
                va="center",
                ha="left",
                fontsize=8,
                bbox={"fc": "white", "ec": "none", "pad": 1},
            )
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(labels)), labels, fontsize=9)
    ax.invert_yaxis()
    ax.set_xscale("symlog", linthresh=PPL_LINTHRESH_PCT)
    # room for the value labels: a factor 30 (1.5 decades) past the extreme bars
    ax.set_xlim(lo * 30, hi * 30)
    k_lo = math.ceil(math.log10(PPL_LINTHRESH_PCT))
    pos = [10.0**k for k in range(k_lo, math.floor(math.log10(hi * 30)) + 1, 2)]
    neg = [-(10.0**k) for k in range(k_lo, math.floor(math.log10(-lo * 30)) + 1, 2)]
    ax.xaxis.set_major_locator(FixedLocator(sorted(neg + [0.0] + pos)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(
        FuncFormatter(
            lambda v, _p: (
                "0"
                if v == 0
                else f"{v:+.0e}".replace("e-0", "e-").replace("e+0", "e").replace("1e0", "1")
            )
        )
    )
    ax.set_xlabel("perplexity change vs ref (%), symlog axis")
    ax.set_title(
        f"SmolLM2-135M, {res['tokens']} tokens, ref perplexity {res['ppl_ref']:.3f}", fontsize=10
    )
    return fig


def plot_perplexities(res: dict, path) -> None:
    """Write :func:`perplexity_figure` as a PNG at ``path``."""
    fig = perplexity_figure(res)
    with atomic_target(Path(path)) as tmp:
        fig.savefig(tmp, dpi=120, format="png")


def section(ctx) -> None:
    """Print the perplexity table; write engine_ppl.json and engine_ppl.png under ctx.out."""
    from nli.table import atomic_write_text

    full = getattr(ctx, "full", False)
    variants = STANDARD_VARIANTS if full else DEMO_VARIANTS
    tokens = FULL_TOKENS if full else demo_tokens("smollm2", len(variants) + 1, ctx.quick)
    res = demo_perplexities(
        max_tokens=tokens, variants=variants, window=min(1024, tokens), record=full
    )
    print(
        f"SmolLM2-135M-Instruct on {res.get('tokens', 0)} tokens of {res['text']}, "
        f"ops {','.join(OPS)}; ref ppl {res.get('ppl_ref', float('nan')):.4f}"
    )
    print(f"{'variant':<22} {'ppl':>10} {'change':>10} {'top-1':>8} {'KL':>10}")
    for label, r in res["modes"].items():
        print(
            f"{label:<22} {r['ppl']:>10.4f} {r['ppl_rel_change'] * 100:>+9.4f}% "
            f"{r['top1_agreement'] * 100:>7.2f}% {r['mean_kl']:>10.3g}"
        )
    for label, why in res["unavailable"].items():
        print(f"{label:<22} unavailable ({why})")
    if not full:
        print(
            "(`nli demo --full`: every mode, direct reciprocal/rsqrt and all baselines included, "
            f"on {FULL_TOKENS} tokens)"
        )
    atomic_write_text(ctx.out / "engine_ppl.json", json.dumps(json_safe(res), indent=1) + "\n")
    if res["modes"]:
        plot_perplexities(res, ctx.out / "engine_ppl.png")
        print(f"wrote {ctx.out / 'engine_ppl.json'} and {ctx.out / 'engine_ppl.png'}")
