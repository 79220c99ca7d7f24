"""RMSNorm's row prescale (docs/numerics.md §4.1): the power-of-two exponent of each FP32 row.

A row whose largest finite |x_i| (``m``) would overflow FP16 (``m >= FP16_OVERFLOW``) is
multiplied by ``2^-s`` before its conversion to FP16, with ``s = E(m) - RMSNORM_PRESCALE_TOP``
and ``E(m) = floor(log2 m)``, so that ``m 2^-s`` lies in [2^14, 2^15); every other row has
``s = 0`` and keeps its bits. ``eps`` becomes ``eps 2^(-2s)``. This module only computes ``s``
(numpy, no Numba, so the ``fp16`` reference and the simulator share it); the scaling itself is
done by each datapath (``hw_sim.ops``, ``engine.op_sets.Fp16Ops``, the ONNX graph).
"""

from __future__ import annotations

import numpy as np

from .formats import FP16_OVERFLOW, RMSNORM_PRESCALE_TOP


def prescale_exponents(x: np.ndarray) -> np.ndarray:
    """float32 array (..., n), n >= 1 -> int32 array (...): each row's prescale exponent ``s``.

    ``m`` is the largest |x_i| over the row's finite values (inf and NaN left out; 0 if none);
    ``s = 0`` if ``m < FP16_OVERFLOW``, else the unbiased FP32 exponent of ``m`` minus
    RMSNORM_PRESCALE_TOP (read from the bit pattern: ``m`` is then a normal FP32)."""
    a = np.abs(x)
    m = np.asarray(a.max(axis=-1))  # (..., n) -> (...); inf or NaN where the row holds one
    redo = ~(m < np.float32(FP16_OVERFLOW))  # rows to look at again: large, inf or NaN
    if redo.any():  # those rows' max over their finite values only
        big = a[redo]
        m[redo] = np.max(big, axis=-1, initial=np.float32(0), where=np.isfinite(big))
    e = (m.view(np.int32) >> 23) - 127  # E(m) for a normal m; m >= 65520 is normal
    return np.where(m >= np.float32(FP16_OVERFLOW), e - RMSNORM_PRESCALE_TOP, 0).astype(np.int32)
