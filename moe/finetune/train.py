"""Prompted translation fine-tuning with a resumable, bit-reproducible checkpoint.

``train(dense, tok, train_recs, cfg, run_dir)`` fine-tunes a copy of
``dense`` by ``cfg`` (see :mod:`moe.finetune.train_setup` for the methods) and returns
``(model, summary)``. Loss: mean NLL of the target tokens (see :mod:`moe.finetune.sft`)
plus ``aux_coef`` x the mean load-balancing loss of the MoE layers (over
non-pad tokens) plus, for ``cluster``, ``distill_coef`` x the mean
expert-ensemble self-distillation loss of the MoE layers.

Checkpoint: ``run_dir/state.pt`` (written atomically every ``ckpt_every``
steps, at the end, and on Ctrl-C) holds the model structure (Llama and MoE
configs) and weights, the AdamW state, the step (which fixes the data
position, the LR and the stage), whether growth happened, the torch / python
RNG states, the loss log and the elapsed training time, all as tensors and
plain containers (configs as dicts, the python RNG state as a dict of ints),
so it is read with the safe loader (``weights_only=True``): a file holding
anything else is refused and nothing of it runs. Calling ``train``
again with the same ``run_dir`` and config resumes from it; the final weights
are bitwise the same as an uninterrupted run (tested). A checkpoint of a
different config is refused.

Device: the start model is built on the CPU (upcycling is float64 CPU work)
and moved to ``cfg.device``; batches follow it. Growth runs on the CPU too.
"""

from __future__ import annotations

import os
from pathlib import Path
import random
import time

import torch
from tqdm import tqdm

from engine.model import Llama, LlamaConfig
from nli.atomic import atomic_target

from ..checkpoint import load_plain
from ..config import MoEConfig
from ..layer import load_balancing_loss, moe_layers
from ..model import build_model, moe_config_of
from .sft import batch_indices, collate, encode_records, predicting_positions, selected_target_loss
from .train_setup import (
    TrainConfig,
    build_start_model,
    lr_at,
    make_optimizer,
    param_counts,
    set_stage,
    stage_of,
)

STATE_FILE = "state.pt"
STATE_FORMAT = (
    "nli-moe-train-state-v1"  # kept: files written before the safe loader (python RNG state
)
# as a tuple, everything else as now) hold only plain data, so they still load and resume


def calib_batch(examples, cfg: TrainConfig, rows: int = 4) -> torch.Tensor:
    """int64[rows, L]: the first ``calib_examples`` training examples (seeded order) packed end to
    end without padding and cut into ``rows`` equal rows (cluster / grow calibration input)."""
    idx = batch_indices(len(examples), cfg.calib_examples, cfg.seed + 7919, 0)
    flat = [t for i in idx for t in examples[i].ids]
    rows = max(1, min(rows, len(flat)))
    L = len(flat) // rows
    return torch.tensor(flat[: rows * L], dtype=torch.int64).view(rows, L)  # [rows, L]


def _save_state(path: Path, state: dict) -> None:
    with atomic_target(path) as tmp:
        torch.save(state, tmp)


def _state(model, opt, cfg, step, grown, log, elapsed, build) -> dict:
    moe_cfg = moe_config_of(model)
    return {
        "format": STATE_FORMAT,
        "config": cfg.to_dict(),
        "llama": model.cfg.to_dict(),
        "moe": None if moe_cfg is None else moe_cfg.to_dict(),
        "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "step": step,
        "grown": grown,
        "log": list(log),
        "elapsed": elapsed,
        "build_seconds": build,
        "rng": {"torch": torch.get_rng_state(), "python": _python_rng_to_plain(random.getstate())},
    }


def _python_rng_to_plain(st: tuple) -> dict:
    """``random.getstate()`` (version, tuple of 625 ints, gauss_next)
    -> a dict of int / list / float."""
    version, internal, gauss = st
    return {
        "version": int(version),
        "internal": [int(v) for v in internal],
        "gauss_next": None if gauss is None else float(gauss),
    }


def _python_rng_from_plain(d) -> tuple:
    """Inverse of :func:`_python_rng_to_plain`
    (also takes the tuple itself, as older v1 files hold it)."""
    if isinstance(d, dict):
        return int(d["version"]), tuple(int(v) for v in d["internal"]), d["gauss_next"]
    version, internal, gauss = d
    return int(version), tuple(int(v) for v in internal), gauss


def load_state(path: Path, cfg: TrainConfig) -> dict:
    """Read a training checkpoint with the safe loader (tensors and plain containers only; anything
    else is refused with ValueError before it can run); ValueError if it belongs to another
    config."""
    state = load_plain(path)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path}: not a training checkpoint ({STATE_FORMAT})")
    if TrainConfig.from_dict(state["config"]) != cfg:
        raise ValueError(f"{path}: checkpoint is of another run config; use a fresh run directory")
    return state


def _restore(state: dict) -> Llama:
    moe_cfg = None if state["moe"] is None else MoEConfig.from_dict(state["moe"])
    model = build_model(LlamaConfig(**state["llama"]), moe_cfg)
    model.load_state_dict(state["model"], strict=True)
    return model


def _grow(model: Llama, cfg: TrainConfig, calib: torch.Tensor) -> Llama:
    from ..growth import grow

    return grow(model.cpu(), factor=2, select=cfg.grow_select, calib_ids=calib, seed=cfg.seed).to(
        cfg.device
    )


def _aux_losses(model: Llama, cfg: TrainConfig, routers, valid: torch.Tensor, inputs: dict):
    """(load-balancing, distillation) float32 scalars averaged over MoE layers (0 for dense)."""
    zero = torch.zeros((), device=valid.device)
    layers = moe_layers(model)
    if not layers:
        return zero, zero
    lb = torch.stack(
        [load_balancing_loss(rl[valid], layer.top_k) for rl, (_, layer) in zip(routers, layers)]
    ).mean()
    dist = zero
    if cfg.method == "cluster" and cfg.distill_coef:
        from ..cluster import ensemble_distillation_loss

        # inputs[i] [B, T, D] -> [B*T, D] -> non-pad rows [n, D]
        dist = torch.stack(
            [
                ensemble_distillation_loss(layer, inputs[i].reshape(-1, layer.dim)[valid])
                for i, layer in layers
            ]
        ).mean()
    return lb, dist


def train_step(
    model: Llama,
    opt,
    cfg: TrainConfig,
    ids: torch.Tensor,
    labels: torch.Tensor,
    valid: torch.Tensor,
    lr: float,
) -> dict:
    """One optimizer step on a batch; returns the float losses.
    ids/labels int64[B, T], valid bool[B*T]."""
    inputs: dict = {}
    hooks = []
    if cfg.method == "cluster":
        for i, layer in moe_layers(model):
            hooks.append(
                layer.register_forward_pre_hook(lambda m, a, i=i: inputs.__setitem__(i, a[0]))
            )
    try:
        logits, routers = model(
            ids, return_router_logits=True, logits_at=predicting_positions(labels)
        )  # [n, V]
    finally:
        for h in hooks:
            h.remove()
    ce = selected_target_loss(logits, labels)
    lb, dist = _aux_losses(model, cfg, routers, valid, inputs)
    loss = ce + cfg.aux_coef * lb + cfg.distill_coef * dist
    for g in opt.param_groups:
        g["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=cfg.device != "cpu")
    opt.step()
    return {"loss": loss.item(), "ce": ce.item(), "lb": lb.item(), "distill": dist.item()}


def train(
    dense: Llama,
    tok,
    train_recs: list[dict],
    cfg: TrainConfig,
    run_dir: str | os.PathLike | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> tuple[Llama, dict]:
    """Fine-tune by ``cfg``; resume from ``run_dir/state.pt`` if present. Returns (model, summary).

    ``stop_after``: stop (after checkpointing) once this many steps are done,
    simulating an interruption. summary: config, steps done, per-step loss
    log, target and total tokens seen, wall time of the training steps (growth
    included) and of building the start model (upcycling), parameter counts.
    """
    if not train_recs:
        raise ValueError("no training pairs")
    examples = encode_records(tok, train_recs, cfg.max_tokens)
    calib = calib_batch(examples, cfg)
    path = None if run_dir is None else Path(run_dir) / STATE_FILE
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    if path is not None and path.is_file():
        state = load_state(path, cfg)
        model = _restore(state).to(cfg.device)
        opt = make_optimizer(model, cfg)
        opt.load_state_dict(state["optimizer"])
        step, grown, log, elapsed = state["step"], state["grown"], state["log"], state["elapsed"]
        build = state["build_seconds"]
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(_python_rng_from_plain(state["rng"]["python"]))
    else:
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        t0 = time.perf_counter()
        model = build_start_model(dense, cfg, calib).to(cfg.device)
        opt = make_optimizer(model, cfg)
        step, grown, log, elapsed, build = 0, False, [], 0.0, time.perf_counter() - t0
    model.train()
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    bar = tqdm(
        total=cfg.steps, initial=step, desc=f"train {cfg.method}", disable=not progress, unit="step"
    )
    last_saved = step
    try:
        while step < end:
            t0 = time.perf_counter()
            if cfg.grow_step is not None and step >= cfg.grow_step and not grown:
                model = _grow(model, cfg, calib).train()
                opt = make_optimizer(model, cfg)
                grown = True
            set_stage(model, cfg, stage_of(cfg, step))
            batch = [
                examples[i] for i in batch_indices(len(examples), cfg.batch_size, cfg.seed, step)
            ]
            ids, labels = collate(batch)
            valid = torch.zeros_like(ids, dtype=torch.bool)  # [B, T]
            for b, e in enumerate(batch):
                valid[b, : len(e.ids)] = True
            if cfg.device != "cpu":
                ids, labels, valid = ids.to(cfg.device), labels.to(cfg.device), valid.to(cfg.device)
            out = train_step(
                model, opt, cfg, ids, labels, valid.reshape(-1), lr_at(cfg, step)
            )  # valid [B*T]
            step += 1
            elapsed += time.perf_counter() - t0
            log.append(out["loss"])
            bar.set_postfix(loss=f"{out['loss']:.3f}", stage=stage_of(cfg, step - 1))
            bar.update(1)
            if path is not None and (step % cfg.ckpt_every == 0 or step == end):
                _save_state(path, _state(model, opt, cfg, step, grown, log, elapsed, build))
                last_saved = step
    except KeyboardInterrupt:
        if path is not None and step > last_saved:
            _save_state(path, _state(model, opt, cfg, step, grown, log, elapsed, build))
        raise
    finally:
        bar.close()
    model.eval()
    n_tgt = n_tok = 0
    for s in range(step):
        for i in batch_indices(len(examples), cfg.batch_size, cfg.seed, s):
            n_tok += len(examples[i].ids)
            n_tgt += len(examples[i].ids) - examples[i].n_prompt
    summary = {
        "config": cfg.to_dict(),
        "steps_done": step,
        "finished": step >= cfg.steps,
        "loss_log": log,
        "target_tokens": n_tgt,
        "tokens": n_tok,
        "train_seconds": elapsed,
        "build_seconds": build,
        "params": param_counts(model, cfg),
        "grown": grown,
    }
    return model, summary
