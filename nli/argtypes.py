"""Validated argparse ``type=`` converters, shared by every subcommand.

argparse's ``type=float`` accepts "nan", "inf" and "-1e999"; ``type=int``
accepts 0 and negatives. These converters refuse what a quantity cannot
mean, with argparse's own one-line error and exit code 2::

    p.add_argument("--eps", type=finite_float(min=0.0))
    p.add_argument("--experts", type=positive_int(max=MAX_EXPERTS))
    p.add_argument("--share", type=probability)
"""

from __future__ import annotations

import argparse
import math

MAX_COUNT = 1 << 31  # upper bound of any count argument unless a tighter one is given


def finite_float(min: float | None = None, max: float | None = None, min_exclusive: bool = False):
    """A converter to a finite float in [min, max] (``min_exclusive``: (min, max])."""

    def conv(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if min is not None and (v <= min if min_exclusive else v < min):
            raise argparse.ArgumentTypeError(
                f"must be {'>' if min_exclusive else '>='} {min:g}, got {text}"
            )
        if max is not None and v > max:
            raise argparse.ArgumentTypeError(f"must be <= {max:g}, got {text}")
        return v

    conv.__name__ = "finite number"
    return conv


def bounded_int(min: int, max: int = MAX_COUNT):
    """A converter to an int in [min, max] (decimal digits, optional sign)."""

    def conv(text: str) -> int:
        try:
            v = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if v < min:
            raise argparse.ArgumentTypeError(f"must be >= {min}, got {v}")
        if v > max:
            raise argparse.ArgumentTypeError(f"must be <= {max}, got {v}")
        return v

    conv.__name__ = "integer"
    return conv


def positive_int(max: int = MAX_COUNT):
    """A converter to an int in [1, max]."""
    return bounded_int(1, max)


def nonnegative_int(max: int = MAX_COUNT):
    """A converter to an int in [0, max]."""
    return bounded_int(0, max)


probability = finite_float(0.0, 1.0)
probability.__name__ = "probability"
positive_float = finite_float(0.0, min_exclusive=True)
seed = bounded_int(0, 2**63 - 1)  # torch.Generator.manual_seed takes a 64-bit value
