"""Perplexity, agreement with a reference model, and per-op activation statistics.

Window convention: the token ids are cut into consecutive, non-overlapping
windows of ``window`` tokens (stride = window; the last window may be shorter
and is scored if it has >= 2 tokens). Each window is run on its own from
position 0 with no carried-over context, and every position but the last
predicts the next token of its window: a window of W tokens contributes W - 1
predictions. Perplexity = exp(mean negative log-likelihood over all
predictions). With ``score_from = s > 0`` only the targets at window
positions > s are scored (llama.cpp's `perplexity` tool uses s = W/2: the
first half of each window is context only). ``top1_agreement`` is the
fraction of predictions where the model's argmax equals the reference's;
``mean_kl`` the mean over predictions of KL(ref || model) in nats.

Activation statistics come from :class:`RecordingOps`, an OpSet wrapper put
on every module (so each record knows its module, e.g. ``layers.12.ffn_norm``):
for each op the min and max of its finite inputs, the fraction of inputs
outside a calibration range (NN-LUT-style baselines fit [-5, 5]) and, for
RMSNorm, the range of the mean square that feeds the rsqrt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math

import torch
import torch.nn.functional as F

from nli.formats import OPS

from .model import OpSet

CALIBRATION_RANGE = (-5.0, 5.0)
DEFAULT_WINDOW = 1024


# ----------------------------------------------------------------------------- statistics
@dataclass
class RangeStat:
    """Running min/max/count of finite values and the count outside [lo, hi] (non-finite
    included)."""

    lo: float
    hi: float
    min: float = math.inf
    max: float = -math.inf
    count: int = 0
    outside: int = 0
    nonfinite: int = 0

    def update(self, x: torch.Tensor, ignore_neg_inf: bool = False) -> None:
        """x: any float tensor. ``ignore_neg_inf`` skips -inf entries (masked softmax scores)."""
        x = x.detach()
        if ignore_neg_inf:
            x = x[x != float("-inf")]
        n = x.numel()
        if n == 0:
            return
        fin = torch.isfinite(x)
        nfin = int(fin.sum())
        if nfin:
            xf = x if nfin == n else x[fin]
            self.min = min(self.min, float(xf.min()))
            self.max = max(self.max, float(xf.max()))
        self.count += n
        self.nonfinite += n - nfin
        self.outside += n - int(((x >= self.lo) & (x <= self.hi)).sum())

    def to_dict(self) -> dict:
        return {
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
            "count": self.count,
            "fraction_outside": self.outside / self.count if self.count else None,
            "nonfinite": self.nonfinite,
            "range": [self.lo, self.hi],
        }


@dataclass
class ActivationStats:
    """Per (op, module) input statistics gathered by RecordingOps."""

    calibration: tuple[float, float] = CALIBRATION_RANGE
    inputs: dict = field(default_factory=dict)  # (op, module) -> RangeStat of the op's input
    mean_square: dict = field(default_factory=dict)  # module -> RangeStat of RMSNorm's mean square

    def stat(self, table: dict, key) -> RangeStat:
        if key not in table:
            table[key] = RangeStat(*self.calibration)
        return table[key]

    def summary(self) -> dict:
        """JSON-ready: per op the aggregate over modules, the module with the largest |input|,
        and for rmsnorm the mean-square range (the rsqrt argument)."""
        out = {}
        for op in OPS:
            items = [(m, s) for (o, m), s in self.inputs.items() if o == op and s.count]
            if not items:
                continue
            agg = RangeStat(*self.calibration)
            for _, s in items:
                agg.min, agg.max = min(agg.min, s.min), max(agg.max, s.max)
                agg.count += s.count
                agg.outside += s.outside
                agg.nonfinite += s.nonfinite
            d = agg.to_dict()
            peak_m, peak_s = max(items, key=lambda kv: max(abs(kv[1].min), abs(kv[1].max)))
            d["peak_module"] = peak_m
            d["per_module_absmax"] = {m: max(abs(s.min), abs(s.max)) for m, s in items}
            if op == "rmsnorm" and self.mean_square:
                ms = list(self.mean_square.values())
                d["mean_square_min"] = min(s.min for s in ms)
                d["mean_square_max"] = max(s.max for s in ms)
                d["mean_square_above_fp16_max"] = sum(s.outside for s in ms)
            out[op] = d
        return out


class RecordingOps(OpSet):
    """Wraps an OpSet: records the inputs of every op call into ``stats``, then delegates."""

    def __init__(self, inner: OpSet, stats: ActivationStats, module: str):
        self.inner, self.stats, self.module = inner, stats, module
        self.name = f"recording({inner.name})"

    def act(self, x, fn):
        self.stats.stat(self.stats.inputs, ("act", self.module)).update(x)
        return self.inner.act(x, fn)

    def rmsnorm(self, x, weight, eps):
        self.stats.stat(self.stats.inputs, ("rmsnorm", self.module)).update(x)
        ms = self.stats.mean_square.get(self.module)
        if ms is None:  # "outside" counts mean squares beyond the largest finite FP16 value
            ms = self.stats.mean_square[self.module] = RangeStat(0.0, 65504.0)
        ms.update(x.double().pow(2).mean(-1))
        return self.inner.rmsnorm(x, weight, eps)

    def softmax(self, x):
        self.stats.stat(self.stats.inputs, ("softmax", self.module)).update(x, ignore_neg_inf=True)
        return self.inner.softmax(x)


def attach_recorders(model, stats: ActivationStats) -> list:
    """Wrap every module's ``ops`` in a RecordingOps (in place). Returns [(module, original ops)]
    for :func:`detach_recorders`."""
    saved = []
    for name, m in model.named_modules():
        if hasattr(m, "ops") and isinstance(m.ops, OpSet):
            saved.append((m, m.ops))
            m.ops = RecordingOps(m.ops, stats, name or "model")
    return saved


def detach_recorders(saved: list) -> None:
    for m, ops in saved:
        m.ops = ops


# ----------------------------------------------------------------------------- perplexity
def windows(ids: torch.Tensor, window: int) -> list[torch.Tensor]:
    """ids int64[N] -> non-overlapping int64[<= window] chunks of >= 2 tokens (stride = window)."""
    if window < 2:
        raise ValueError(f"window must be >= 2 tokens, got {window}")
    ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)  # any -> [N]
    return [
        ids[i : i + window]
        for i in range(0, ids.numel(), window)
        if ids[i : i + window].numel() >= 2
    ]


@dataclass
class EvalResult:
    """Summed per-prediction quantities; ``to_dict`` gives the JSON fields."""

    tokens: int = 0  # number of predictions scored
    nll: float = 0.0  # sum of -log p(model)
    nll_ref: float = 0.0  # sum of -log p(ref)
    agree: int = 0  # argmax(model) == argmax(ref)
    kl: float = 0.0  # sum of KL(ref || model)
    nonfinite_logits: int = 0  # predictions whose logits had a NaN/inf
    activation: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        n = max(self.tokens, 1)
        ppl = math.exp(self.nll / n) if math.isfinite(self.nll) else math.nan
        ppl_ref = math.exp(self.nll_ref / n) if math.isfinite(self.nll_ref) else math.nan
        return {
            "tokens": self.tokens,
            "ppl_ref": ppl_ref,
            "ppl": ppl,
            "ppl_rel_change": ppl / ppl_ref - 1.0
            if math.isfinite(ppl) and ppl_ref > 0
            else math.nan,
            "top1_agreement": self.agree / n,
            "mean_kl": self.kl / n if math.isfinite(self.kl) else math.nan,
            "nonfinite_logits": self.nonfinite_logits,
            "activation_stats": self.activation,
        }


def _window_terms(logits: torch.Tensor, target: torch.Tensor):
    """logits float32[T-1, V], target int64[T-1] -> (log-probs float32[T-1, V], nll sum)."""
    logp = F.log_softmax(logits.float(), dim=-1)
    nll = -logp.gather(1, target[:, None]).sum()
    return logp, float(nll)


def _kl_sum(logp_ref: torch.Tensor, logp: torch.Tensor, rows: int = 128) -> float:
    """sum over positions of KL(ref || model), in float64 (rows at a time to bound memory).
    logp_ref, logp: float32[T, V] log-probabilities."""
    total = 0.0
    for i in range(0, logp.shape[0], rows):
        a = logp_ref[i : i + rows].double()  # [r, V]
        total += float((a.exp() * (a - logp[i : i + rows].double())).sum())
    return total


@torch.no_grad()
def evaluate_models(
    models: dict,
    ids,
    ref_model=None,
    window: int = DEFAULT_WINDOW,
    record=True,
    calibration: tuple[float, float] = CALIBRATION_RANGE,
    progress: bool = True,
    desc: str = "eval",
    score_from: int = 0,
) -> dict:
    """Score every model of ``models`` {label: model} on ``ids`` (int64[N]) against ``ref_model``.

    The reference runs once per window and is shared by all models; without
    one, each model is compared to itself (agreement 1, KL 0). ``record``:
    True (all), False, or a collection of labels whose op inputs get activation
    statistics. Returns {label: EvalResult}.
    """
    from tqdm import tqdm

    if not 0 <= score_from < window - 1:
        raise ValueError(f"score_from must be in [0, window - 1), got {score_from}")
    chunks = [c for c in windows(ids, window) if c.numel() - 1 > score_from]
    if not chunks:
        raise ValueError("need at least 2 tokens to compute a perplexity")
    rec = set(models) if record is True else set(record or ())
    stats = {k: ActivationStats(calibration=calibration) for k in models if k in rec}
    saved = [s for k in stats for s in attach_recorders(models[k], stats[k])]
    results = {k: EvalResult() for k in models}
    try:
        bar = tqdm(
            total=len(chunks) * len(models),
            desc=desc,
            unit="fwd",
            disable=not progress or len(chunks) * len(models) < 2,
            leave=False,
        )
        for chunk in chunks:
            x = chunk[None, :-1]  # [1, T-1]
            target = chunk[1:]  # [T-1]
            target = target[score_from:]
            ref = (
                _window_terms(ref_model(x)[0][score_from:], target)
                if ref_model is not None
                else None
            )
            for k, model in models.items():
                logp, nll = _window_terms(model(x)[0][score_from:], target)
                logp_ref, nll_ref = ref if ref is not None else (logp, nll)
                res = results[k]
                res.tokens += target.numel()
                res.nll += nll
                res.nll_ref += nll_ref
                res.agree += int((logp.argmax(-1) == logp_ref.argmax(-1)).sum())
                res.kl += _kl_sum(logp_ref, logp)
                res.nonfinite_logits += int((~torch.isfinite(logp).all(-1)).sum())
                bar.update(1)
        bar.close()
    finally:
        detach_recorders(saved)
    for k, st in stats.items():
        results[k].activation = st.summary()
    return results


def evaluate_lm(
    model,
    ids,
    ref_model=None,
    window: int = DEFAULT_WINDOW,
    record: bool = True,
    calibration: tuple[float, float] = CALIBRATION_RANGE,
    progress: bool = True,
    desc: str = "eval",
    score_from: int = 0,
) -> EvalResult:
    """Score one language ``model`` on ``ids`` (int64[N]) against ``ref_model``: perplexity, top-1
    agreement, KL and activation statistics (see :func:`evaluate_models`)."""
    return evaluate_models(
        {"model": model}, ids, ref_model, window, record, calibration, progress, desc, score_from
    )["model"]


def perplexity(
    model, ids, window: int = DEFAULT_WINDOW, progress: bool = True, score_from: int = 0
) -> float:
    """exp(mean NLL) of ``model`` on ``ids`` int64[N] (window convention in the module
    docstring)."""
    return evaluate_lm(
        model, ids, None, window, record=False, progress=progress, score_from=score_from
    ).to_dict()["ppl"]


@torch.no_grad()
def forward_seconds(models: dict, input_ids: torch.Tensor, repeats: int = 3) -> dict:
    """Median wall time of ``model(input_ids)`` (int64[B, T]) per label, the models interleaved
    round by round (so a shared, noisy CPU slows them alike). One untimed warm-up each."""
    import statistics
    import time

    times = {k: [] for k in models}
    for m in models.values():
        m(input_ids)
    for _ in range(repeats):
        for k, m in models.items():
            t0 = time.perf_counter()
            m(input_ids)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}
