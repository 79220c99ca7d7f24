"""The MoE model type: a Llama whose MoE configuration is part of the model, fixed at construction.

:class:`MoELlama` is an :class:`engine.model.Llama` built from a
:class:`LlamaConfig` and a :class:`MoEConfig`: the blocks in
``moe_config.layers`` hold an :class:`MoEFFN` of exactly that shape and
routing (experts, top-k, expert hidden size, renormalization, SPRI principal
part, residual scale, select_on). The config is read-only data
(``model.moe_config`` has no setter); a model with other experts is a new
model (``upcycle`` and ``grow`` build one with :func:`moe_model`). A dense
model is a plain :class:`Llama` (:func:`moe_config_of` gives None).
"""

from __future__ import annotations

from engine.model import Llama, LlamaConfig
from nli.inputs import check_alloc

from .config import MoEConfig
from .layer import MoEFFN

# (MoEFFN attribute, MoEConfig field) pairs a layer must agree on with its model's config
_LAYER_FIELDS = (
    ("expert_hidden_dim", "expert_hidden_dim"),
    ("num_experts", "num_experts"),
    ("top_k", "top_k"),
    ("renormalize", "renormalize"),
    ("principal", "principal"),
    ("residual_scale", "residual_scale"),
    ("select_on", "select_on"),
)


def empty_ffn(cfg: LlamaConfig, moe_cfg: MoEConfig) -> MoEFFN:
    """An all-zero MoEFFN shaped and routed by ``moe_cfg`` for a model of ``cfg``."""
    return MoEFFN(
        cfg.dim,
        moe_cfg.expert_hidden_dim,
        moe_cfg.num_experts,
        moe_cfg.top_k,
        moe_cfg.renormalize,
        moe_cfg.principal,
        moe_cfg.residual_scale,
        moe_cfg.select_on,
        activation=cfg.activation,
    )


def check_ffn(ffn: MoEFFN, cfg: LlamaConfig, moe_cfg: MoEConfig, where: str = "MoE layer") -> None:
    """ValueError naming the first attribute in which ``ffn`` disagrees with ``moe_cfg``
    (or ``cfg.dim``)."""
    if not isinstance(ffn, MoEFFN):
        raise ValueError(f"{where}: expected an MoEFFN, got {type(ffn).__name__}")
    if ffn.dim != cfg.dim:
        raise ValueError(f"{where}: dim {ffn.dim} differs from the model's {cfg.dim}")
    for attr, key in _LAYER_FIELDS:
        if getattr(ffn, attr) != getattr(moe_cfg, key):
            raise ValueError(
                f"{where}: {attr} {getattr(ffn, attr)!r} differs from the MoE config's "
                f"{getattr(moe_cfg, key)!r}"
            )


class MoELlama(Llama):
    """A Llama with MoE FFNs in ``moe_config.layers``. ``ffns``: optional {block: MoEFFN} to use (as
    they are, checked against the config) instead of all-zero layers; other weights
    uninitialised."""

    def __init__(
        self, cfg: LlamaConfig, moe_config: MoEConfig, ffns: dict[int, MoEFFN] | None = None
    ):
        if not isinstance(moe_config, MoEConfig):
            raise TypeError(f"moe_config must be an MoEConfig, got {type(moe_config).__name__}")
        moe_config.check_against(cfg)
        ffns = dict(ffns or {})
        extra = sorted(set(ffns) - set(moe_config.layers))
        if extra:
            raise ValueError(
                f"MoE layers given for blocks {extra}, "
                f"which the MoE config {list(moe_config.layers)} does not name"
            )
        super().__init__(cfg)
        self._moe_config = moe_config
        for i in moe_config.layers:
            ffn = ffns[i] if i in ffns else empty_ffn(cfg, moe_config)
            check_ffn(ffn, cfg, moe_config, where=f"layer {i}")
            self.layers[i].mlp = ffn

    @property
    def moe_config(self) -> MoEConfig:
        """The model's MoE configuration (read-only)."""
        return self._moe_config


def build_model(cfg: LlamaConfig, moe_cfg: MoEConfig | None) -> Llama:
    """A Llama (``moe_cfg`` None) or an MoELlama with all-zero MoE layers. Weights uninitialised.

    Refuses (before allocating) a model whose float32 parameters would exceed the allocation
    limit."""
    if moe_cfg is not None:
        moe_cfg.check_against(cfg)
    check_alloc(
        4
        * (
            cfg.param_count()
            + cfg.rope_count()
            + (0 if moe_cfg is None else moe_cfg.param_count(cfg))
        ),
        "the model",
    )
    return Llama(cfg) if moe_cfg is None else MoELlama(cfg, moe_cfg)


def moe_config_of(model: Llama) -> MoEConfig | None:
    """The MoEConfig of ``model`` (None for a dense model)."""
    return model.moe_config if isinstance(model, MoELlama) else None


def moe_model(base: Llama, moe_cfg: MoEConfig, ffns: dict[int, MoEFFN]) -> MoELlama:
    """A NEW MoELlama: ``base``'s weights, ops, trainability and mode everywhere except the blocks
    of ``moe_cfg.layers``, whose FFN is ``ffns[i]`` (used as given). ``base`` is not modified."""
    missing = sorted(set(moe_cfg.layers) - set(ffns))
    if missing:
        raise ValueError(f"no MoE layer given for blocks {missing} of the MoE config")
    new = MoELlama(base.cfg, moe_cfg, ffns)
    heads = tuple(f"layers.{i}.mlp" for i in moe_cfg.layers)
    in_moe = lambda name: name in heads or name.startswith(tuple(h + "." for h in heads))  # noqa: E731
    state = {k: v for k, v in base.state_dict().items() if not in_moe(k)}
    res = new.load_state_dict(state, strict=False)
    bad = [k for k in res.missing_keys if not in_moe(k)]
    if bad or res.unexpected_keys:
        raise ValueError(
            f"base model does not match its config: missing {bad[:4]}, "
            f"unexpected {res.unexpected_keys[:4]}"
        )
    old_params = dict(base.named_parameters())
    for name, p in new.named_parameters():
        if not in_moe(name) and name in old_params:
            p.requires_grad_(old_params[name].requires_grad)
    old_modules = dict(base.named_modules())
    for name, m in new.named_modules():
        if hasattr(m, "ops") and not in_moe(name) and hasattr(old_modules.get(name), "ops"):
            m.ops = old_modules[name].ops
    return new.train(base.training)


__all__ = ["MoELlama", "build_model", "moe_config_of", "moe_model", "check_ffn", "empty_ffn"]
