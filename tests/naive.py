"""Slow, obviously correct oracles for the fast paths: the index of the oracle modules.

Each oracle lives in its own module, one concept each, named ``naive_<concept>.py``; this module
re-exports their public names so that ``from naive import X`` finds any of them. Add a new
oracle as its own module (owned by the module it checks) and list it here.

* ``naive_fp``: exact values, the FP16 / FP32 / BF16 formats, rounding, exact arithmetic;
* ``naive_unit``: the unit, numerics §3;
* ``naive_ops``: reciprocal / rsqrt, softmax and RMSNorm rows, numerics §4, §5;
* ``naive_prescale``: the RMSNorm row prescale, numerics §4.1;
* ``naive_solver``: the cutpoint solver: point-by-point costs, brute-force DP;
* ``naive_datapath_solver``: the datapath-exact cutpoint objectives;
* ``naive_engine``: the engine's fp16 and bf16 ops, mpmath at 50 digits;
* ``naive_moe``: the MoE layer and its load-balancing loss;
* ``naive_bootstrap``: the paired bootstrap;
* ``naive_tokenizer``: the GGUF tokenizers.
"""

from naive_bootstrap import naive_paired_bootstrap, naive_paired_contrast
from naive_datapath_solver import (
    naive_datapath_errors,
    naive_datapath_optimum,
    naive_datapath_value,
)
from naive_engine import (
    naive_bf16_rmsnorm_bits,
    naive_bf16_silu_bits,
    naive_bf16_softmax_bits,
    naive_fp16_rmsnorm_bits,
    naive_fp16_silu_bits,
    naive_fp16_softmax_bits,
)
from naive_fp import (
    NV_BF16,
    NV_FP16,
    NV_FP32,
    NvVal,
    nv16,
    nv32,
    nv_add,
    nv_bf16,
    nv_decode,
    nv_encode16,
    nv_encode_bf16,
    nv_floor,
    nv_lt,
    nv_mul,
    nv_neg,
    nv_rne16,
    nv_rne32,
    nv_rne_bf16,
    nv_sub,
)
from naive_moe import naive_load_balancing_loss, naive_moe_token
from naive_ops import NV_DTYPES, nv_inverse, nv_rmsnorm_row, nv_softmax_row
from naive_prescale import naive_fp16_rmsnorm_f32_bits, nv_prescale_exponent, nv_rmsnorm_f32_row
from naive_solver import (
    naive_clamp_errors,
    naive_cost,
    naive_enumerate,
    naive_point_errors,
    naive_solve,
)
from naive_tokenizer import (
    naive_bpe,
    naive_byte_bpe_ids,
    naive_generated_merges,
    naive_gpt2_byte_map,
    naive_split_added,
    naive_spm_bpe_ids,
)
from naive_unit import NvTable, nv_unit, nv_unit_all

__all__ = [
    "NvVal",
    "NV_FP16",
    "NV_FP32",
    "NV_BF16",
    "nv_decode",
    "nv16",
    "nv32",
    "nv_bf16",
    "nv_rne16",
    "nv_rne32",
    "nv_rne_bf16",
    "nv_encode_bf16",
    "nv_encode16",
    "nv_neg",
    "nv_add",
    "nv_sub",
    "nv_mul",
    "nv_lt",
    "nv_floor",
    "NvTable",
    "nv_unit",
    "nv_unit_all",
    "NV_DTYPES",
    "nv_inverse",
    "nv_softmax_row",
    "nv_rmsnorm_row",
    "nv_prescale_exponent",
    "nv_rmsnorm_f32_row",
    "naive_fp16_rmsnorm_f32_bits",
    "naive_point_errors",
    "naive_clamp_errors",
    "naive_cost",
    "naive_solve",
    "naive_enumerate",
    "naive_datapath_errors",
    "naive_datapath_value",
    "naive_datapath_optimum",
    "naive_fp16_silu_bits",
    "naive_fp16_softmax_bits",
    "naive_fp16_rmsnorm_bits",
    "naive_bf16_silu_bits",
    "naive_bf16_softmax_bits",
    "naive_bf16_rmsnorm_bits",
    "naive_moe_token",
    "naive_load_balancing_loss",
    "naive_paired_bootstrap",
    "naive_paired_contrast",
    "naive_split_added",
    "naive_bpe",
    "naive_gpt2_byte_map",
    "naive_byte_bpe_ids",
    "naive_generated_merges",
    "naive_spm_bpe_ids",
]
