"""Datapath-exact cutpoint objectives (issue 16, hw_sim/datapath_cost.py and
hw_sim/datapath_solve.py).

Every increasing cutpoint tuple of a tiny grid is made into a table here (LUT = RNE16 of the
float64 f at each entry's real point, below = lut[0], above = lut[-1]) and run through the Fraction
oracle nv_unit (tests/naive_unit.py) on every grid point, against RNE16(f(x)) rounded by the
oracle's own _nv_round. Slow on purpose.
"""

from fractions import Fraction as _NvF
import itertools as _it
import math as _nv_math

from naive_fp import NvVal, nv_encode16, nv_encode_bf16, nv_rne16, nv_rne_bf16
from naive_unit import nv_unit_all
import numpy as np


def _nv_f64(v):
    """A finite float64 -> NvVal (the sign of a zero kept)."""
    return NvVal("num", _NvF(float(v)), _nv_math.copysign(1.0, float(v)) < 0)


def _nv_ord16(bits):
    b = int(bits)
    return -(b & 0x7FFF) if b & 0x8000 else b & 0x7FFF


def naive_datapath_errors(fn_name, x, cut_idx, bins, dtype="fp16"):
    """ulp distances (list over the grid x, float64 FP16 values) of the table with cutpoints
    x[cut_idx] and ``bins``, or None when an entry overflows FP16 (no such table).
    ``dtype='bf16'``: x holds BF16 values, the table is a bf16 one (numerics §13), and None also
    when it is not a valid table or an interval of B bins is narrower than B 2^-127 (the
    solver's rule); widths and the rule are decided in Fractions."""
    from nli.functions import get_function
    from nli.table import Table, TableError

    bf16 = dtype == "bf16"
    rne, enc = (nv_rne_bf16, nv_encode_bf16) if bf16 else (nv_rne16, nv_encode16)
    inf = 0x7F80 if bf16 else 0x7C00
    f = get_function(fn_name)
    c = [float(x[i]) for i in cut_idx]
    if bf16 and any(
        _NvF(c[i + 1]) - _NvF(c[i]) < B * _NvF(1, 1 << 127) for i, B in enumerate(bins)
    ):
        return None
    pts = [c[0]]
    for i, B in enumerate(bins):  # the end entry is the cutpoint itself (Table.points)
        pts += [c[i] + (m * (c[i + 1] - c[i])) / B for m in range(1, B)] + [c[i + 1]]
    lut = [enc(rne(_nv_f64(v))) for v in f(np.array(pts))]
    if any((b & inf) == inf for b in lut):
        return None
    cbits = [enc(_nv_f64(v)) for v in c]
    try:
        table = Table(
            fn_name,
            np.array(cbits, dtype=np.uint16),
            list(bins),
            np.array(lut, dtype=np.uint16),
            lut[0],
            lut[-1],
            "fp32",
            dtype=dtype,
        )
    except TableError:
        return None
    xbits = [enc(_nv_f64(v)) for v in np.asarray(x, dtype=np.float64)]
    out = nv_unit_all(table, xbits)
    ref = [enc(rne(_nv_f64(v))) for v in f(np.asarray(x, dtype=np.float64))]
    return [abs(_nv_ord16(o) - _nv_ord16(r)) for o, r in zip(out, ref)]


def naive_datapath_value(errors, objective):
    """ulp: sum; cr: count of non-zero; cr+maxulp: (count, max)."""
    if objective == "ulp":
        return sum(errors)
    n = sum(1 for e in errors if e != 0)
    return n if objective == "cr" else (n, max(errors))


def naive_datapath_optimum(fn_name, x, bins, objective, max_ulp=None, dtype="fp16"):
    """Brute force: the best value of ``objective`` over every increasing tuple of
    len(bins) + 1 grid indices (tiny grids only) whose table is within ``max_ulp`` ulp
    everywhere (None: any); None if there is none."""
    best = None
    for c in _it.combinations(range(len(x)), len(bins) + 1):
        e = naive_datapath_errors(fn_name, x, c, bins, dtype)
        if e is not None and (max_ulp is None or max(e) <= max_ulp):
            v = naive_datapath_value(e, objective)
            best = v if best is None or v < best else best
    return best
