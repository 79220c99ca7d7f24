"""What a fine-tuning run trains: its config, the starting model, trainable parameters
per stage, LR.

Methods (every one starts from the same dense model, same data order, same
steps, batch size and schedule, so the token budget is identical):

* ``dense_full``: every parameter of the dense model is trained.
* ``dense_ffn``: only the dense FFNs of the layers the MoE methods upcycle.
* ``sparse``, ``drop``, ``partition``, ``cluster``, ``spri``: ``moe.upcycle``
  of those layers; only the MoE layers (router + experts) are trained.
  ``cluster`` adds the expert-ensemble self-distillation loss.
* ``scope="full"`` (MoE methods): every parameter of the upcycled model
  trains (embeddings, attention, norms, the dense layers and the MoE
  layers), the same scope as ``dense_full``; ``scope="ffn"`` (the default)
  trains the MoE layers only. For SPRI two-stage at full scope, stage 1
  freezes only the principal parts ``p_*``; everything else trains throughout.
* SPRI two-stage (``stage1_frac > 0``, method ``spri`` only): for the first
  ``round(stage1_frac * steps)`` steps the principal parts ``p_*`` are frozen
  and the router and residuals ``w_*`` train; afterwards every routed-expert
  parameter trains. ``stage1_frac = 0`` is the single-stage ablation.
* Growth (``grow_select`` set, method ``spri`` only): the run starts with
  ``num_experts // 2`` experts and at step ``round(grow_at_frac * steps)``
  calls ``moe.growth.grow(factor=2, select=grow_select)``; the optimizer is
  rebuilt for the new parameters (Adam moments restart; the LR schedule does not).

One AdamW holds every parameter that trains in some stage; a parameter that
is frozen in the current stage has ``requires_grad=False`` and no gradient,
so AdamW skips it (no update, no weight decay, no moment change).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, replace
import math

import torch

from engine.model import Llama

from ..config import default_layers
from ..layer import moe_layers
from ..model import moe_config_of

METHODS = ("dense_full", "dense_ffn", "sparse", "drop", "partition", "cluster", "spri")
MOE_METHODS = ("sparse", "drop", "partition", "cluster", "spri")
PRINCIPAL_NAMES = ("p_gate", "p_up", "p_down")
SCOPES = ("ffn", "full")
# fields whose default is left out of ``to_dict``
# (so results cached before they existed keep their keys)
KEY_DEFAULTS = {"scope": "ffn", "device": "cpu"}


@dataclass(frozen=True)
class TrainConfig:
    """One fine-tuning run. ``layers=()`` means the default MoE layers (the last 8)."""

    method: str = "spri"
    seed: int = 0
    steps: int = 200
    batch_size: int = 8
    lr: float = 1e-4
    min_lr_frac: float = 0.1
    warmup_steps: int = 10
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    num_experts: int = 8
    top_k: int = 2
    layers: tuple[int, ...] = ()
    aux_coef: float = 0.01
    distill_coef: float = 0.1
    stage1_frac: float = 0.0
    grow_select: str | None = None
    grow_at_frac: float = 0.5
    upcycle_opts: dict = field(default_factory=dict)
    max_tokens: int = 192
    calib_examples: int = 16
    ckpt_every: int = 25
    scope: str = "ffn"
    device: str = "cpu"

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {', '.join(METHODS)}")
        for k in (
            "steps",
            "batch_size",
            "num_experts",
            "top_k",
            "max_tokens",
            "ckpt_every",
            "calib_examples",
        ):
            if int(getattr(self, k)) < 1:
                raise ValueError(f"TrainConfig.{k} must be >= 1, got {getattr(self, k)}")
        if not (self.lr > 0 and 0 <= self.min_lr_frac <= 1 and self.warmup_steps >= 0):
            raise ValueError("TrainConfig: need lr > 0, 0 <= min_lr_frac <= 1, warmup_steps >= 0")
        if self.scope not in SCOPES:
            raise ValueError(
                f"TrainConfig.scope must be one of {', '.join(SCOPES)}, got {self.scope!r}"
            )
        if self.scope != "ffn" and self.method not in MOE_METHODS:
            raise ValueError(
                f"scope {self.scope!r} is for the MoE methods; {self.method} fixes its own scope"
            )
        if self.device != "cpu" and not (self.device == "cuda" or self.device.startswith("cuda:")):
            raise ValueError(
                f"TrainConfig.device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}"
            )
        if not 0 <= self.stage1_frac < 1:
            raise ValueError(f"TrainConfig.stage1_frac must be in [0, 1), got {self.stage1_frac}")
        if self.stage1_frac and self.method != "spri":
            raise ValueError("two-stage training (stage1_frac > 0) is for method 'spri' only")
        if self.grow_select is not None:
            if self.method != "spri":
                raise ValueError("growth (grow_select) is for method 'spri' only")
            if self.num_experts % 2 or self.num_experts // 2 < self.top_k:
                raise ValueError(
                    f"growth starts from num_experts/2 = {self.num_experts / 2} experts, "
                    f"which must be an integer >= top_k {self.top_k}"
                )
            if not 0 < self.grow_at_frac < 1:
                raise ValueError(
                    f"TrainConfig.grow_at_frac must be in (0, 1), got {self.grow_at_frac}"
                )

    @property
    def stage1_steps(self) -> int:
        return int(round(self.stage1_frac * self.steps))

    @property
    def grow_step(self) -> int | None:
        return None if self.grow_select is None else int(round(self.grow_at_frac * self.steps))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = list(self.layers)
        for k, v in KEY_DEFAULTS.items():
            if d[k] == v:
                del d[k]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def target_layers(cfg: TrainConfig, model: Llama) -> tuple[int, ...]:
    """The block indices whose FFN is upcycled (or, for dense_ffn, trained)."""
    return cfg.layers or default_layers(model.cfg)


def build_start_model(dense: Llama, cfg: TrainConfig, calib_ids: torch.Tensor | None) -> Llama:
    """The run's model at step 0: a copy of ``dense`` or its upcycled MoE.
    ``dense`` is not modified."""
    if cfg.method in ("dense_full", "dense_ffn"):
        return copy.deepcopy(dense)
    from ..upcycling import upcycle

    E = cfg.num_experts // 2 if cfg.grow_select is not None else cfg.num_experts
    opts = dict(cfg.upcycle_opts)
    return upcycle(
        dense,
        method=cfg.method,
        num_experts=E,
        top_k=cfg.top_k,
        layers=target_layers(cfg, dense),
        seed=cfg.seed,
        calib_ids=calib_ids if cfg.method == "cluster" else None,
        **opts,
    )


def device_label(device: str) -> str:
    """What a result records as its device: ``"cpu"`` or ``"cuda:<device name>"``."""
    if device == "cpu":
        return "cpu"
    return f"cuda:{torch.cuda.get_device_name(torch.device(device))}"


def stage_of(cfg: TrainConfig, step: int) -> int:
    """1 during SPRI's first stage, else 2 (single-stage runs are always 2)."""
    return 1 if step < cfg.stage1_steps else 2


def trainable_names(model: Llama, cfg: TrainConfig, stage: int) -> list[str]:
    """Names (in ``named_parameters`` order) of the parameters trained at ``stage``."""
    names = [n for n, _ in model.named_parameters()]
    if cfg.method == "dense_full":
        return names
    if cfg.scope == "full":
        keep = names
    else:
        prefixes = tuple(f"layers.{i}.mlp." for i in target_layers(cfg, model))
        keep = [n for n in names if n.startswith(prefixes)]
    if stage == 1:
        keep = [n for n in keep if n.rsplit(".", 1)[-1] not in PRINCIPAL_NAMES]
    return keep


def set_stage(model: Llama, cfg: TrainConfig, stage: int) -> list[str]:
    """Set ``requires_grad`` for ``stage`` (True exactly on its trainable names);
    returns those names."""
    names = trainable_names(model, cfg, stage)
    on = set(names)
    for n, p in model.named_parameters():
        p.requires_grad_(n in on)
        if n not in on:
            p.grad = None
    return names


def make_optimizer(model: Llama, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over every parameter trainable in some stage; no weight decay on 1-D tensors.

    On the CPU one tensor at a time (bit-reproducible, as cached results were made); on CUDA the
    fused kernel (the same update rule; one launch instead of one per tensor)."""
    names = set(trainable_names(model, cfg, 2))
    params = [(n, p) for n, p in model.named_parameters() if n in names]
    decay = [p for n, p in params if p.dim() >= 2]
    no_decay = [p for n, p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fast = {"foreach": False} if cfg.device == "cpu" else {"fused": True}
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8, **fast)


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warmup to ``lr`` then cosine decay to ``min_lr_frac * lr`` at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps - 1)
    t = min(1.0, (step - cfg.warmup_steps) / span)
    lo = cfg.lr * cfg.min_lr_frac
    return lo + 0.5 * (cfg.lr - lo) * (1 + math.cos(math.pi * t))


def param_counts(model: Llama, cfg: TrainConfig) -> dict:
    """Total, trainable (in any stage) and active-per-token parameter counts of ``model``.

    Active: total minus the (E - k) unchosen experts' ``w_*`` of every MoE
    layer (principal parts and routers are always active).
    """
    total = sum(p.numel() for p in model.parameters())
    names = set(trainable_names(model, cfg, 2))
    trainable = sum(p.numel() for n, p in model.named_parameters() if n in names)
    inactive = 0
    for _, layer in moe_layers(model):
        per_expert = layer.w_gate[0].numel() + layer.w_up[0].numel() + layer.w_down[0].numel()
        inactive += (layer.num_experts - layer.top_k) * per_expert
    stage1 = sum(
        p.numel() for n, p in model.named_parameters() if n in set(trainable_names(model, cfg, 1))
    )
    return {
        "total": total,
        "trainable": trainable,
        "trainable_stage1": stage1 if cfg.stage1_frac else trainable,
        "active": total - inactive,
    }


def with_overrides(cfg: TrainConfig, **kw) -> TrainConfig:
    """``dataclasses.replace`` that also merges ``upcycle_opts``."""
    if "upcycle_opts" in kw:
        kw["upcycle_opts"] = {**cfg.upcycle_opts, **kw["upcycle_opts"]}
    return replace(cfg, **kw)


def is_moe(model: Llama) -> bool:
    return moe_config_of(model) is not None
