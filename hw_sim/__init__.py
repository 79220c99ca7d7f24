"""hw_sim: a bit-accurate simulator of the NLI Engine (docs/numerics.md).

Public API (numpy in, numpy out; FP16 as float16 or uint16 bit patterns):
:func:`run_elementwise` (section 3), :func:`softmax` and :func:`rmsnorm`
(section 4), :func:`reciprocal` and :func:`rsqrt` (section 5),
:func:`output_lut` (a table's output for all 65,536 inputs). The ``*_f32`` variants
take float32 model activations (rounded to FP16 at the op boundary) and return the
FP16 results as float32, bit-identical to the FP16 functions (``rmsnorm_f32`` on a row
with a finite value of 65520 or more: numerics §4.1's prescale, or ``'plain'``).
:func:`run_elementwise` and :func:`output_lut` also run bf16 tables (numerics §13: uint16 BF16
bit patterns in and out); the composite ops take fp16 tables.
"""

from .inputs import MODES, SimInputError
from .ops import reciprocal, rmsnorm, rmsnorm_f32, rsqrt, softmax, softmax_f32
from .unit import output_lut, run_elementwise, run_elementwise_f32

__all__ = [
    "run_elementwise",
    "softmax",
    "rmsnorm",
    "reciprocal",
    "rsqrt",
    "output_lut",
    "run_elementwise_f32",
    "softmax_f32",
    "rmsnorm_f32",
    "SimInputError",
    "MODES",
]
