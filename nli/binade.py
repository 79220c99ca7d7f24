"""Binade-aligned bf16 tables (numerics §13): cutpoints on powers of two, built to an ulp target.

A macro interval ``[2^e, 2^(e+1)]`` (or its negative mirror) of ``B`` bins, ``B`` a power of
two up to 128, has ``mul = B / 2^e`` exact and its LUT points ``c + m 2^e / B`` are BF16 values;
with ``B = 128`` every BF16 input of the binade is a LUT point, so the unit returns
``RNE_bf16(f(x))`` there (``dx``, ``u`` and ``t = 0`` are exact). Each binade's outputs depend
only on its own entries, so each gets the fewest bins that meet the target on every BF16 input
of the binade (measured through the bit-accurate unit, :mod:`hw_sim.unit`): at most ``target``
ulp, and at least ``min_pct_cr`` percent of them correctly rounded.

Beyond the binades, on each side of 0, single-bin intervals cover what is (nearly) linear:

* ``outer``: ``[2^E, hi]`` (``[lo, -2^E]``): f saturates or equals x; E is the smallest
  exponent for which that one interval meets the target;
* ``inner``, positive side: ``[0, 2^e0]``, where f is close to ``f(0) + f'(0) x`` (``dx = x``
  is exact since ``c_I = 0``);
* ``inner``, negative side: the unit measures ``dx = RNE32(x - c_I)`` from the *left* cutpoint,
  which loses a tiny ``x`` entirely when ``c_I`` is far larger, so ``[-2^e0, 0]`` is split
  geometrically into single-bin intervals ``[-2^(e+GEOMETRIC_STEP), -2^e]`` down to BF16's
  subnormals (``|c_I| / |x| <= 2^GEOMETRIC_STEP``).

Every choice is checked by running the unit on every BF16 input of the piece; the result is a
valid :class:`nli.table.Table` whose meta records the construction. Pure: no I/O.
"""

from __future__ import annotations

import math

import numpy as np

from .functions import get_function
from .grid import bf16_grid, f64_to_bf16_bits
from .table import MAX_ENTRIES, Table, table_from_cutpoints

BIN_CHOICES = (1, 2, 4, 8, 16, 32, 64, 128)  # bins per binade; 128: every BF16 value a LUT point
GEOMETRIC_STEP = 8  # binades per single-bin interval next to 0 on the negative side
_SMALLEST_EXP = -126  # the last geometric cutpoint: |c| = 2^-126 .. 2^-118, dx exact below


def _ord(bits: np.ndarray) -> np.ndarray:
    b = bits.astype(np.int64)
    return np.where(b & 0x8000, -(b & 0x7FFF), b)


class _Meter:
    """Max ulp of a candidate piece over the BF16 grid inputs it covers."""

    def __init__(self, function: str, lo: float, hi: float, target: int, min_pct_cr: float):
        from hw_sim.unit import output_lut  # the bit-accurate unit (hw_sim builds on nli)

        self._lut = output_lut
        self.function = function
        self.x, self.bits = bf16_grid(lo, hi)
        f = get_function(function)
        self.ref = _ord(f64_to_bf16_bits(f(self.x)))
        self.lo, self.hi = lo, hi
        self.target, self.min_pct_cr = target, min_pct_cr

    def meets(self, cuts: list[float], bins: list[int]) -> bool:
        """Whether the table with these cutpoints keeps every grid input in [cuts[0], cuts[-1]]
        within ``target`` ulp, ``min_pct_cr`` percent of them correctly rounded (False if the
        table is invalid or a LUT value overflows)."""
        try:
            t = table_from_cutpoints(
                self.function, f64_to_bf16_bits(np.array(cuts)), bins, dtype="bf16"
            )
        except ValueError:
            return False
        m = (self.x >= cuts[0]) & (self.x <= cuts[-1])
        if not m.any():
            return True
        ulp = np.abs(_ord(self._lut(t)[self.bits[m]]) - self.ref[m])
        return bool(ulp.max() <= self.target and 100.0 * np.mean(ulp == 0) >= self.min_pct_cr)


def _side_exponents(a: float, b: float) -> tuple[int, int]:
    """Exponents e with 2^e strictly inside (a, b), a >= 0: (first, last), or (1, 0) if none."""
    lo = math.floor(math.log2(a)) + 1 if a > 0 else _SMALLEST_EXP
    hi = math.ceil(math.log2(b)) - 1
    return max(lo, _SMALLEST_EXP), hi


def _positive_side(meter: _Meter, a: float, b: float, target: int, sign: int):
    """Cutpoints and bins for the side [a, b] (0 <= a < b) of the domain, mirrored when sign is
    -1 (then it describes [-b, -a]); returned in increasing order of |x| for sign +1."""
    e_first, e_last = _side_exponents(a, b)
    if e_first > e_last:  # no power of two inside: one interval, the fewest bins that do
        return [a, b], [_fewest_bins(meter, a, b, target, sign)]

    def ok(cuts, bins):
        if sign > 0:
            return meter.meets(cuts, bins)
        return meter.meets([-c for c in cuts[::-1]], bins[::-1])

    # outer: the smallest E whose single interval [2^E, b] meets the target
    E = e_last + 1
    while E - 1 >= e_first and ok([2.0 ** (E - 1), b], [1]):
        E -= 1

    # inner: the largest e0 whose inner piece meets the target
    def inner(e0):
        if a > 0:
            return [a, 2.0**e0], [_fewest_bins(meter, a, 2.0**e0, target, sign)]
        if sign > 0:
            return [0.0, 2.0**e0], [1]
        cuts = [2.0**e0]
        while math.log2(cuts[-1]) - GEOMETRIC_STEP >= _SMALLEST_EXP:
            cuts.append(cuts[-1] * 2.0**-GEOMETRIC_STEP)
        cuts = [0.0] + cuts[::-1]
        return cuts, [1] * (len(cuts) - 1)

    e0 = e_first
    for e in range(min(E, e_last + 1), e_first - 1, -1):
        c, bb = inner(e)
        if ok(c, bb):
            e0 = e
            break
    cuts, bins = inner(e0)
    for e in range(e0, E):  # the binades between
        cuts.append(2.0 ** (e + 1))
        bins.append(_fewest_bins(meter, 2.0**e, 2.0 ** (e + 1), target, sign))
    if cuts[-1] < b:
        cuts.append(b)
        bins.append(1)
    return cuts, bins


def _fewest_bins(meter: _Meter, a: float, b: float, target: int, sign: int) -> int:
    for B in BIN_CHOICES:
        cuts = [a, b] if sign > 0 else [-b, -a]
        if meter.meets(cuts, [B]):
            return B
    return BIN_CHOICES[-1]


def binade_table(
    function: str, domain: tuple[float, float], target: int, min_pct_cr: float = 0.0
) -> Table:
    """A bf16 table for ``function`` on ``domain`` (BF16 values lo < hi) whose pieces each meet
    ``target`` max ulp and ``min_pct_cr`` percent correctly rounded on their inputs where the
    construction can (a binade at 128 bins is exact; the report of the whole table is the
    measurement)."""
    lo, hi = (float(v) for v in domain)
    if not lo < hi:
        raise ValueError(f"domain: need lo < hi, got [{lo}, {hi}]")
    if not 0.0 <= min_pct_cr <= 100.0:
        raise ValueError(f"min_pct_cr: must be in [0, 100], got {min_pct_cr}")
    meter = _Meter(function, lo, hi, target, min_pct_cr)
    cuts: list[float] = []
    bins: list[int] = []
    if lo < 0:
        nc, nb = _positive_side(meter, max(0.0, -hi), -lo, target, -1)
        cuts, bins = [-c for c in nc[::-1]], nb[::-1]
    if hi > 0:
        pc, pb = _positive_side(meter, max(0.0, lo), hi, target, 1)
        if cuts:
            assert cuts[-1] == pc[0] == 0.0
            cuts, bins = cuts + pc[1:], bins + pb
        else:
            cuts, bins = pc, pb
    if 1 + sum(bins) > MAX_ENTRIES:
        raise ValueError(f"{function}: {1 + sum(bins)} LUT entries exceed {MAX_ENTRIES}")
    from .grid import f16_hex
    from .solver import solver_version

    dom = [f16_hex(int(v)) for v in f64_to_bf16_bits(np.array([lo, hi]))]
    return table_from_cutpoints(
        function,
        f64_to_bf16_bits(np.array(cuts)),
        bins,
        dtype="bf16",
        domain=dom,
        layout=f"binade:{len(bins)}",
        objective=f"max_ulp<={target}, pct_cr>={min_pct_cr:g} per piece",
        solver_version=solver_version(),
        provenance={"method": "nli.binade: binade-aligned cutpoints, fewest bins per binade"},
    )
