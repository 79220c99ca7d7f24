"""moe: upcycling the dense LLaMA of ``engine`` into a Mixture-of-Experts.

``moe.upcycle(model, method=..., num_experts=E, top_k=k, layers=...)`` and
``moe.grow(model, factor=m, select=...)`` return new models; see
:mod:`moe.layer` (the MoE FFN), :mod:`moe.model` (the MoE model type, built
from its :class:`MoEConfig`), :mod:`moe.checkpoint` (checkpoints),
:mod:`moe.diagnostics` (KL, diversity, routing); the fine-tuning benchmark is
the subpackage :mod:`moe.finetune`. Importing the package registers MoE
checkpoints with :func:`engine.load_model`, the MoE layer's ONNX writer with
:func:`engine.onnx_model_export.export_model` and the MoE model's extra `nli eval
ppl` report with :func:`engine.register_eval_report`.
"""

from engine import register_eval_report, register_ffn_exporter, register_model_resolver

from .checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from .config import MoEConfig
from .growth import grow
from .layer import MoEFFN, load_balancing_loss, moe_layers, router_z_loss
from .model import MoELlama
from .upcycling import upcycle

register_model_resolver(resolve_checkpoint)
register_ffn_exporter(MoEFFN, "moe.onnx_moe:write_moe_ffn")
register_eval_report(MoELlama, "moe.eval_report:moe_eval_report")

__all__ = [
    "upcycle",
    "grow",
    "MoEFFN",
    "MoELlama",
    "MoEConfig",
    "moe_layers",
    "load_balancing_loss",
    "router_z_loss",
    "save_checkpoint",
    "load_checkpoint",
]
