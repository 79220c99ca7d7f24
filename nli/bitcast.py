"""Bit casts between floats and their integer bit patterns inside Numba kernels (LLVM bitcasts:
no arithmetic, no call, no allocation). Shared by the solver (``nli``) and the simulator
(``hw_sim`` re-exports them from :mod:`hw_sim.fp`); packages import only to their left.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def f64_as_i64(typingctx, x):
    """Reinterpret a float64 as its int64 bit pattern (LLVM bitcast, no arithmetic)."""
    if x != types.float64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def i64_as_f64(typingctx, x):
    """Reinterpret an int64 bit pattern as a float64."""
    if x != types.int64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def f32_as_i32(typingctx, x):
    """Reinterpret a float32 as its int32 bit pattern."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def i32_as_f32(typingctx, x):
    """Reinterpret an int32 bit pattern as a float32."""
    if x != types.int32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen
