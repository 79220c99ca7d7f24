"""moe: upcycling the dense LLaMA of ``engine`` into a Mixture-of-Experts.

``moe.upcycle(model, method=..., num_experts=E, top_k=k, layers=...)`` and
``moe.grow(model, factor=m, select=...)`` return new models; see
:mod:`moe.layer` (the MoE FFN), :mod:`moe.checkpoint` (configs, checkpoints),
:mod:`moe.diagnostics` (KL, diversity, routing). Importing the package
registers MoE checkpoints with :func:`engine.load_model` and the MoE layer's
ONNX writer with :func:`engine.onnx_export.export_model`.
"""
from engine import register_ffn_exporter, register_model_resolver

from .checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from .config import MoEConfig
from .grow import grow
from .layer import MoEFFN, load_balancing_loss, router_z_loss
from .upcycle import upcycle

register_model_resolver(resolve_checkpoint)
register_ffn_exporter(MoEFFN, "moe.onnx_moe:write_moe_ffn")

__all__ = ["upcycle", "grow", "MoEFFN", "MoEConfig", "load_balancing_loss", "router_z_loss",
           "save_checkpoint", "load_checkpoint"]
