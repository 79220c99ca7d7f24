"""User-defined functions: a dotted path ``pkg.module:name`` to a vectorized float64 callable.

``nli table build pkg.module:name --domain LO HI`` imports the module and looks the name up
(a dotted attribute path is allowed after the colon). The callable is called on float64
arrays only -- once over the FP16 grid of the domain, once at the table's points -- and must
return a float64 array of the same shape; the solver's Numba kernels never call it (they
read its grid values, see :mod:`nli.objective`). A table built from one records the dotted
path as its ``function``. A table file never imports code on its own: ``nli table report`` /
``refine`` import a table's user function only when the command line names it
(``--import-function pkg.module:name``), and Python callers of the library do the same with
:func:`allow_import` (``nli.solve`` / ``nli table build`` allow the function they are given).
Every failure is a :class:`UserFunctionError` (a
ValueError: one line from the CLI) that names the path and, where there is one, the first
bad x.
"""

from __future__ import annotations

import importlib
import re
import sys

import numpy as np

USER_FN_ID = -1  # fn_id of every user function: kernels must not call evaluate_scalar with it
_SPEC = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
# a second difference counts as a sign only above this many float64 rounding units of the
# values it is made of (below it, f is linear to within rounding noise there)
NOISE_ULPS = 64.0


_ALLOWED: set[str] = set()  # user functions this process may import (named by the user)


def allow_import(spec: str) -> None:
    """Let :func:`load_callable` import ``spec`` (a function the user named, not a table file)."""
    _ALLOWED.add(spec)


class UserFunctionError(ValueError):
    """A user function that does not import, is not a vectorized float64 callable, or is not
    finite on its domain."""


def is_user_spec(name: str) -> bool:
    """True when ``name`` names a user function (it has a colon), not a built-in."""
    return isinstance(name, str) and ":" in name


def load_callable(spec: str):
    """``pkg.module:name`` -> the callable it names, or a UserFunctionError."""
    if not _SPEC.fullmatch(spec):
        raise UserFunctionError(
            f"function {spec[:80]!r}: a user function is a dotted path pkg.module:name"
        )
    if spec not in _ALLOWED:
        raise UserFunctionError(
            f"function {spec}: a user function is imported only when you name it "
            f"(--import-function {spec}, or nli.user_function.allow_import); table files never "
            "import code on their own"
        )
    mod, attr = spec.split(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: modules in the working directory import
    try:
        obj = importlib.import_module(mod)
    except Exception as e:  # noqa: BLE001 -- user code: any failure is the user's
        raise UserFunctionError(
            f"function {spec}: module {mod!r} does not import ({type(e).__name__}: {e})"
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except Exception:  # noqa: BLE001
            raise UserFunctionError(f"function {spec}: {mod!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise UserFunctionError(f"function {spec}: {attr!r} is not callable")
    return obj


def evaluate_user(spec: str, fn, x: np.ndarray) -> np.ndarray:
    """fn on float64 x (any shape) -> float64 of x's shape; an error names the first x of the
    array when fn is not vectorized (raises on an array, or returns another shape or dtype)."""
    flat = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    if flat.size == 0:
        return np.zeros(np.shape(x))
    where = f"on a float64 array of {flat.size} values (first x = {float(flat[0])!r})"
    try:
        with np.errstate(all="ignore"):
            y = np.asarray(fn(flat.copy()))
    except Exception as e:  # noqa: BLE001
        raise UserFunctionError(
            f"function {spec}: not vectorized: {type(e).__name__} {where}: {e}"
        ) from None
    if y.shape != flat.shape or y.dtype != np.float64:
        raise UserFunctionError(
            f"function {spec}: not vectorized: returned {y.dtype}{list(y.shape)} {where}, "
            f"need float64[{flat.size}]"
        )
    return y.reshape(np.shape(x))


def first_not_finite(spec: str, x: np.ndarray, y: np.ndarray) -> None:
    """Raise a UserFunctionError naming the first x (ascending) where y is NaN or inf."""
    bad = ~np.isfinite(y)
    if bad.any():
        i = int(np.argmax(bad))
        raise UserFunctionError(
            f"function {spec}: f(x) = {float(y[i])} is not finite at x = {float(x[i])!r} "
            f"({int(bad.sum())} such FP16 inputs in the domain)"
        )


def detect_inflections(x: np.ndarray, f: np.ndarray) -> tuple:
    """Inflection points of f seen on an ascending grid: where the sign of the second divided
    difference flips, counting only differences above the rounding noise. Each is placed
    halfway between the last grid point of one sign and the first of the other."""
    if x.size < 3:
        return ()
    h = np.diff(x)
    dd = np.diff(f) / h
    d2 = np.diff(dd)  # sign of f'' between grid points i and i + 2 (i = 0..n-3)
    tau = NOISE_ULPS * np.finfo(np.float64).eps * (np.abs(f[:-2]) + np.abs(f[1:-1]) + np.abs(f[2:]))
    tau = tau / np.minimum(h[:-1], h[1:])
    sign = np.where(np.abs(d2) > tau, np.sign(d2), 0.0)
    idx = np.flatnonzero(sign)
    out = []
    for a, b in zip(idx[:-1], idx[1:]):
        if sign[a] != sign[b]:
            out.append(0.5 * (x[a + 1] + x[b + 1]))
    return tuple(float(p) for p in out)
