"""Validation of the NLI unit's table, mode, eps and row arguments, shared by both
implementations of the datapath: hw_sim (Numba, the reference) and engine.torch_unit (torch).
Free of hw_sim, so the torch datapath validates without importing the simulator."""

from __future__ import annotations

import math

import numpy as np

from .formats import MODES, RMSNORM_INPUTS
from .functions import get_function
from .grid import bits_to_f64
from .table import Table


class SimInputError(ValueError):
    """An argument the unit (hw_sim or the torch datapath) cannot run: wrong dtype, shape or
    device, wrong table, bad mode."""


def check_table(table, function: str, role: str, mode: str | None = None) -> Table:
    """``table`` must be an nli Table built for ``function`` (e.g. the softmax's exp table);
    ``mode``, if given, is named in the error."""
    if not isinstance(table, Table):
        raise SimInputError(f"{role}: expected an nli Table, got {type(table).__name__}")
    if table.function != function:
        raise SimInputError(
            f"{role}: table is for {table.function!r}, expected a {function!r} table"
            + (f" ({mode} mode)" if mode else "")
        )
    return table


def check_table_fits(table, function: str, role: str, mode) -> Table:
    """``table`` must be a ``function`` table whose domain fits ``mode`` (numerics §5).

    Reduced mode looks up table(RNE16(m)) only for mantissas m in [1, hi) (hi = 2 for the
    reciprocal, 4 for rsqrt; the ``reduced`` domain of :mod:`nli.functions`): the table's
    cutpoints must span exactly [1, hi]. Direct mode looks up the value itself: a table
    whose cutpoints lie within [1, hi] (a reduced-domain table) would answer its below/
    above constants for every other value, so it is rejected there. Functions without a
    reduced domain (exp) are direct-only tables and are checked by function alone.
    """
    mode = check_mode(mode)
    check_table(table, function, role, mode)
    domains = get_function(function).domains
    if "reduced" not in domains:
        return table
    lo, hi = domains["reduced"]
    c0, ck = (
        float(bits_to_f64(np.uint16(b), table_dtype(table)))
        for b in (table.cutpoints[0], table.cutpoints[-1])
    )
    inside = lo <= c0 and ck <= hi
    if mode == "reduced" and not (c0 == lo and ck == hi):
        raise SimInputError(
            f"{role}: the {function!r} table spans [{c0:g}, {ck:g}]; reduced mode needs a "
            f"{function!r} table over the reduced domain [{lo:g}, {hi:g}]"
        )
    if mode == "direct" and inside:
        raise SimInputError(
            f"{role}: the {function!r} table spans [{c0:g}, {ck:g}], a reduced-domain table; "
            f"direct mode needs a {function!r} table over the direct domain"
        )
    return table


def table_dtype(table) -> str:
    """A table's dtype (numerics §13): its ``dtype`` field, 'fp16' for a table without one."""
    return getattr(table, "dtype", "fp16")


def check_dtypes(op: str, dtype: str | None = None, **tables) -> str:
    """One format per op (numerics §13): the ``tables`` (role name -> Table) of ``op`` share one
    dtype, and it is ``dtype`` (the rows' format) when given. A mismatch names both sides and
    their dtypes. Returns the common dtype."""
    got = {role.replace("_", " "): table_dtype(t) for role, t in tables.items()}
    roles = list(got)
    for role in roles[1:]:
        if got[role] != got[roles[0]]:
            raise SimInputError(
                f"{op}: the {roles[0]} is {got[roles[0]]} but the {role} is {got[role]}; "
                "one op's tables share one dtype (numerics §13)"
            )
    if dtype is not None and roles and got[roles[0]] != dtype:
        raise SimInputError(
            f"{op}: {dtype} rows need {dtype} tables, but the {roles[0]} is {got[roles[0]]} "
            "(numerics §13)"
        )
    return got[roles[0]] if roles else dtype


def check_mode(mode) -> str:
    """``mode`` must be 'direct' or 'reduced' (numerics §5)."""
    if mode not in MODES:
        raise SimInputError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def check_rmsnorm_input(rmsnorm_input) -> str:
    """``rmsnorm_input`` must be 'scaled' or 'plain' (numerics §4.1)."""
    if not isinstance(rmsnorm_input, str) or rmsnorm_input not in RMSNORM_INPUTS:
        raise SimInputError(
            f"rmsnorm_input: must be one of {', '.join(RMSNORM_INPUTS)}, got {rmsnorm_input!r}"
        )
    return rmsnorm_input


def check_eps(eps) -> np.float32:
    """RMSNorm's eps as FP32: a real number, rounded to FP32 (RNE), finite after rounding."""
    if isinstance(eps, (bool, np.bool_)) or not isinstance(
        eps, (int, float, np.floating, np.integer)
    ):
        raise SimInputError(f"eps: expected a finite real number, got {eps!r}")
    if not math.isfinite(float(eps)):
        raise SimInputError(f"eps: must be finite, got {eps!r}")
    with np.errstate(over="ignore"):
        e32 = np.float32(eps)
    if not np.isfinite(e32):
        raise SimInputError(f"eps: {eps!r} overflows FP32")
    return e32


def check_rows(bits: np.ndarray, name: str = "x") -> int:
    """Rows lie on the last axis: it must exist and be non-empty. Returns the row length."""
    if bits.ndim == 0:
        raise SimInputError(
            f"{name}: needs at least one axis (rows lie on the last axis), got a scalar"
        )
    n = bits.shape[-1]
    if n == 0:
        raise SimInputError(f"{name}: the last axis (the row) is empty")
    return n
