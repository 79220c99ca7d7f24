"""Validation of the simulator's array arguments; the table, mode, eps and row checks live in
:mod:`nli.unit_checks` (shared with the torch datapath) and are re-exported here."""

from __future__ import annotations

import numpy as np

from nli.formats import MODES  # noqa: F401 (re-exported)
from nli.unit_checks import (  # noqa: F401 (re-exported)
    SimInputError,
    check_eps,
    check_mode,
    check_rmsnorm_input,
    check_rows,
    check_table,
    check_table_fits,
)


def as_bits(x, name: str = "x") -> np.ndarray:
    """float16 or uint16 array (any shape) -> C-contiguous uint16 bit patterns.

    A C-contiguous input is viewed, not copied; anything else of the right
    dtype is copied once. Every other dtype (float32, int, object, ...) and
    non-arrays are rejected: the unit takes FP16 bit patterns, and silently
    rounding a float32 input would hide a bug upstream.
    """
    if isinstance(x, np.generic):  # a numpy scalar: a 0-d array
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        raise SimInputError(
            f"{name}: expected a numpy array of float16 or uint16 bit patterns, "
            f"got {type(x).__name__}"
        )
    if x.dtype not in (np.float16, np.uint16):
        raise SimInputError(
            f"{name}: expected dtype float16 or uint16 (FP16 bit patterns), got {x.dtype}"
        )
    if not x.flags.c_contiguous:
        x = x.copy(order="C")
    return x.view(np.uint16)
