"""The MoE part of a model's configuration: which layers are MoE, how many experts, top-k.

It travels with every checkpoint (see :mod:`moe.checkpoint`), next to the
dense :class:`engine.model.LlamaConfig`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import math
import numbers

from engine.model import LlamaConfig
from nli.formats import SELECT_ON_CHOICES

from .layer import SELECT_ON

DEFAULT_NUM_EXPERTS = 8
DEFAULT_TOP_K = 2
DEFAULT_NUM_MOE_LAYERS = 8


@dataclass(frozen=True)
class MoEConfig:
    """Shape of the MoE layers of a model.

    ``layers``: indices of the blocks whose FFN is an MoE layer (sorted, unique).
    ``expert_hidden_dim``: intermediate size of one SwiGLU expert.
    ``renormalize``: top-k weights renormalized to sum 1 (Mixtral); False keeps
    the softmax probabilities of the chosen experts (Megatron pre-softmax).
    ``principal``: experts are ``principal + residual_scale * residual[e]``
    with the principal part a separate shared parameter (SPRI).
    ``select_on``: the top-k ranks the router logits ("logits", default) or the softmax output
    ("probs").
    ``method``/``options``: provenance of the upcycling, for the record only.
    """

    layers: tuple[int, ...]
    num_experts: int = DEFAULT_NUM_EXPERTS
    top_k: int = DEFAULT_TOP_K
    expert_hidden_dim: int = 1536
    renormalize: bool = True
    principal: bool = False
    residual_scale: float = 1.0
    select_on: str = SELECT_ON
    method: str = ""
    options: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if isinstance(self.layers, (str, bytes)) or not hasattr(self.layers, "__iter__"):
            raise ValueError(
                f"MoEConfig.layers must be a list of layer indices, got {self.layers!r}"
            )
        for k, v in [("layers", i) for i in self.layers] + [
            (k, getattr(self, k)) for k in ("num_experts", "top_k", "expert_hidden_dim")
        ]:
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise ValueError(f"MoEConfig.{k} must hold integers, got {v!r}")
        for k in ("renormalize", "principal"):
            if not isinstance(getattr(self, k), bool):
                raise ValueError(f"MoEConfig.{k} must be true or false, got {getattr(self, k)!r}")
        if isinstance(self.residual_scale, bool) or not isinstance(
            self.residual_scale, numbers.Real
        ):
            raise ValueError(
                f"MoEConfig.residual_scale must be a number, got {self.residual_scale!r}"
            )
        if not isinstance(self.method, str) or not isinstance(self.options, dict):
            raise ValueError("MoEConfig.method must be a string and MoEConfig.options an object")
        layers = tuple(int(i) for i in self.layers)
        object.__setattr__(self, "layers", layers)
        if not layers:
            raise ValueError("MoEConfig.layers is empty: name at least one MoE layer")
        if len(set(layers)) != len(layers) or list(layers) != sorted(layers) or layers[0] < 0:
            raise ValueError(
                f"MoEConfig.layers must be sorted, unique and >= 0, got {list(layers)}"
            )
        if int(self.num_experts) < 1:
            raise ValueError(f"MoEConfig.num_experts must be >= 1, got {self.num_experts}")
        if not 1 <= int(self.top_k) <= int(self.num_experts):
            raise ValueError(
                f"MoEConfig.top_k must be in 1..num_experts={self.num_experts}, got {self.top_k}"
            )
        if int(self.expert_hidden_dim) < 1:
            raise ValueError(
                f"MoEConfig.expert_hidden_dim must be >= 1, got {self.expert_hidden_dim}"
            )
        if self.select_on not in SELECT_ON_CHOICES:
            raise ValueError(
                f"MoEConfig.select_on must be 'probs' or 'logits', got {self.select_on!r}"
            )
        if not math.isfinite(self.residual_scale):
            raise ValueError(f"MoEConfig.residual_scale must be finite, got {self.residual_scale}")

    def check_against(self, cfg: LlamaConfig) -> None:
        """Raise ValueError if a layer index does not exist in ``cfg``."""
        bad = [i for i in self.layers if i >= cfg.n_layers]
        if bad:
            raise ValueError(f"MoE layers {bad} do not exist in a model of {cfg.n_layers} layers")

    def param_count(self, cfg: LlamaConfig) -> int:
        """Parameters the MoE layers add to a dense model of ``cfg``
        (experts, routers, principals)."""
        d, h, e = cfg.dim, int(self.expert_hidden_dim), int(self.num_experts)
        per_layer = 3 * e * h * d + d * e + e + (3 * h * d if self.principal else 0)
        return len(self.layers) * per_layer

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = list(self.layers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MoEConfig":
        if not isinstance(d, dict):
            raise ValueError(f"MoE config: expected a JSON object, got {type(d).__name__}")
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        unknown = sorted(map(str, set(d) - set(cls.__dataclass_fields__)))
        if unknown:
            raise ValueError(f"MoE config has unknown keys {unknown}")
        return cls(**known)


def default_layers(cfg: LlamaConfig, n: int = DEFAULT_NUM_MOE_LAYERS) -> tuple[int, ...]:
    """The last ``n`` layers of ``cfg`` (all of them if the model is shallower)."""
    return tuple(range(max(0, cfg.n_layers - n), cfg.n_layers))


def parse_layers(spec: str | None, cfg: LlamaConfig) -> tuple[int, ...]:
    """``"22-29"``, ``"0,5,7"``, ``"last8"`` or None (default: last 8) -> sorted layer indices."""
    if spec is None or spec == "":
        return default_layers(cfg)
    spec = spec.strip()
    if spec.startswith("last"):
        try:
            return default_layers(cfg, int(spec[4:]))
        except ValueError:
            raise ValueError(f"bad --layers {spec!r}: expected lastN, e.g. last8") from None
    out: set[int] = set()
    for part in spec.split(","):
        try:
            if "-" in part:
                a, b = part.split("-")
                out.update(range(int(a), int(b) + 1))
            else:
                out.add(int(part))
        except ValueError:
            raise ValueError(
                f"bad --layers {spec!r}: expected e.g. 22-29 or 0,5,7 or last8"
            ) from None
    layers = tuple(sorted(out))
    MoEConfig(layers=layers).check_against(cfg)
    return layers
