"""Bit pattern of a float64 inside Numba kernels (an LLVM bitcast: no call, no allocation).

``nli`` may not import ``hw_sim`` (packages import only to their left), so the solver
keeps its own copy of this one cast.
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def _f64_bits(typingctx, x):
    """Reinterpret a float64 as its int64 bit pattern (sign, 11-bit exponent, 52-bit fraction)."""
    if x != types.float64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen
