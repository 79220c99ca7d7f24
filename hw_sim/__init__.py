"""hw_sim: a bit-accurate simulator of the NLI Engine (docs/numerics.md).

Public API (numpy in, numpy out; FP16 as float16 or uint16 bit patterns):
:func:`run_elementwise` (section 3), :func:`softmax` and :func:`rmsnorm`
(section 4), :func:`reciprocal` and :func:`rsqrt` (section 5),
:func:`output_lut` (a table's output for all 65,536 inputs).
"""
from .inputs import MODES, SimInputError
from .ops import reciprocal, rmsnorm, rsqrt, softmax
from .unit import output_lut, run_elementwise

__all__ = ["run_elementwise", "softmax", "rmsnorm", "reciprocal", "rsqrt", "output_lut",
           "SimInputError", "MODES"]
