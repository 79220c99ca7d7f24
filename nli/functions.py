"""Registry of the approximated functions: float64 references and default domains.

Each function has
- ``scalar``: a Numba-compiled float64 -> float64 reference (usable inside kernels),
- ``__call__``: the same, vectorized over a float64 array of any shape,
- ``domains``: named FP16 domains. ``direct`` is the function's legal FP16
  domain (the default); reciprocal and rsqrt also have ``reduced``, the
  mantissa range of numerics §5's exponent range reduction.
- ``bf16_domains``: the same names for bf16 tables (numerics §13), see ``bf16_direct``.

No calibration data is used anywhere: domains are the legal FP16 ranges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math

import numba
import numpy as np

from .formats import BF16_MIN_SUBNORMAL, DTYPES, FP16_MAX, FP16_MIN_SUBNORMAL

_SQRT1_2 = 0.7071067811865476


@numba.njit(cache=True)
def _silu(x):
    if x >= 0.0:
        return x / (1.0 + math.exp(-x))
    e = math.exp(x)
    return x * e / (1.0 + e)


@numba.njit(cache=True)
def _sigmoid(x):
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@numba.njit(cache=True)
def _exp(x):
    return math.exp(x)


@numba.njit(cache=True)
def _reciprocal(x):
    return 1.0 / x


@numba.njit(cache=True)
def _rsqrt(x):
    return 1.0 / math.sqrt(x)


@numba.njit(cache=True)
def _gelu(x):
    # erf form, written with erfc so the negative tail keeps its precision
    return 0.5 * x * math.erfc(-x * _SQRT1_2)


@numba.njit(cache=True)
def _tanh(x):
    return math.tanh(x)


@numba.njit(cache=True)
def _softplus(x):
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


_GELU_TANH_C = 0.7978845608028654  # sqrt(2 / pi)
_GELU_TANH_K = 0.044715


@numba.njit(cache=True)
def _gelu_tanh(x):
    # 0.5 x (1 + tanh(z)) written as x * sigmoid(2 z): no cancellation in the negative tail
    z = _GELU_TANH_C * (x + _GELU_TANH_K * x * x * x)
    return x * _sigmoid(2.0 * z)


@numba.njit(cache=True)
def _erf(x):
    return math.erf(x)


@numba.njit(cache=True)
def _exp2(x):
    return 2.0**x


@numba.njit(cache=True)
def _log(x):
    return math.log(x)


@numba.njit(cache=True)
def _log2(x):
    return math.log2(x)


@numba.njit(cache=True)
def _mish(x):
    # x tanh(softplus(x)) = x n / (n + 2) with n = e^x (e^x + 2) (x < 0), or with u = e^-x:
    # x (1 + 2u) / (1 + 2u + 2u^2) (x >= 0): no cancellation in either tail
    if x < 0.0:
        e = math.exp(x)
        n = e * (e + 2.0)
        return x * n / (n + 2.0)
    u = math.exp(-x)
    return x * (1.0 + 2.0 * u) / (1.0 + 2.0 * u + 2.0 * u * u)


@numba.njit(cache=True)
def _elu(x):
    # alpha = 1; expm1 keeps the small negative inputs exact
    return x if x > 0.0 else math.expm1(x)


@numba.njit(cache=True)
def _logsigmoid(x):
    # -softplus(-x)
    return -(math.log1p(math.exp(-abs(x))) + max(-x, 0.0))


@numba.njit(cache=True)
def _softsign(x):
    return x / (1.0 + abs(x))


@numba.njit(cache=True)
def _apply(fn_id, x):
    out = np.empty_like(x)
    for i in range(x.size):
        out.flat[i] = _dispatch(fn_id, x.flat[i])
    return out


@numba.njit(cache=True)
def _dispatch(fn_id, x):
    if fn_id == 0:
        return _silu(x)
    if fn_id == 1:
        return _exp(x)
    if fn_id == 2:
        return _reciprocal(x)
    if fn_id == 3:
        return _rsqrt(x)
    if fn_id == 4:
        return _gelu(x)
    if fn_id == 5:
        return _sigmoid(x)
    if fn_id == 6:
        return _tanh(x)
    if fn_id == 8:
        return _gelu_tanh(x)
    if fn_id == 9:
        return _erf(x)
    if fn_id == 10:
        return _exp2(x)
    if fn_id == 11:
        return _log(x)
    if fn_id == 12:
        return _log2(x)
    if fn_id == 13:
        return _mish(x)
    if fn_id == 14:
        return _elu(x)
    if fn_id == 15:
        return _logsigmoid(x)
    if fn_id == 16:
        return _softsign(x)
    return _softplus(x)


@dataclass(frozen=True)
class Function:
    """A named nonlinear function with its float64 reference and FP16 domains."""

    name: str
    fn_id: int  # index understood by :func:`evaluate_scalar` inside Numba kernels
    domains: dict = field(default_factory=dict)
    # inflection points of the real function (the solver uses the convexity runs)
    inflections: tuple = ()
    # a user function (nli.user_function): its vectorized float64 callable, fn_id USER_FN_ID
    user: object = field(default=None, compare=False)
    # named BF16 domains (numerics §13): filled in for every built-in from BF16_DOMAINS
    bf16_domains: dict = field(default_factory=dict)

    @property
    def default_domain(self) -> tuple[float, float]:
        if "direct" not in self.domains:
            raise ValueError(f"function {self.name}: has no default domain; give --domain LO HI")
        return self.domains["direct"]

    def domains_for(self, dtype: str = "fp16") -> dict:
        """The named domains of a table of ``dtype``: FP16 or BF16 ones."""
        if dtype not in DTYPES:
            raise ValueError(f"dtype: must be one of {', '.join(DTYPES)}, got {dtype!r}")
        return self.domains if dtype == "fp16" else self.bf16_domains

    def default_domain_for(self, dtype: str = "fp16") -> tuple[float, float]:
        """The ``direct`` domain of a table of ``dtype``."""
        d = self.domains_for(dtype)
        if "direct" not in d:
            raise ValueError(
                f"function {self.name}: has no default {dtype} domain; give --domain LO HI"
            )
        return d["direct"]

    def __call__(self, x) -> np.ndarray:
        """float64 array (any shape) -> float64 array of f(x)."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if self.user is not None:
            from .user_function import evaluate_user

            return evaluate_user(self.name, self.user, x)
        return _apply(self.fn_id, x.reshape(-1)).reshape(x.shape)  # (N,) -> x.shape


evaluate_scalar = _dispatch  # Numba-callable: evaluate_scalar(fn_id, x) inside kernels

_ALL_FINITE = (-FP16_MAX, FP16_MAX)
_SMALLEST_POSITIVE = FP16_MIN_SUBNORMAL

FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in [
        # silu'' = 0 where x tanh(x/2) = 2
        Function("silu", 0, {"direct": _ALL_FINITE}, (-2.3993572805154676, 2.3993572805154676)),
        Function("exp", 1, {"direct": (-FP16_MAX, 0.0)}),
        Function(
            "reciprocal", 2, {"direct": (_SMALLEST_POSITIVE, FP16_MAX), "reduced": (1.0, 2.0)}
        ),
        Function("rsqrt", 3, {"direct": (_SMALLEST_POSITIVE, FP16_MAX), "reduced": (1.0, 4.0)}),
        # gelu'' = 0 where x^2 = 2
        Function("gelu", 4, {"direct": _ALL_FINITE}, (-math.sqrt(2.0), math.sqrt(2.0))),
        Function("sigmoid", 5, {"direct": _ALL_FINITE}, (0.0,)),
        Function("tanh", 6, {"direct": _ALL_FINITE}, (0.0,)),
        Function("softplus", 7, {"direct": _ALL_FINITE}),
        # PyTorch's gelu(approximate="tanh"), Gemma's activation; its second derivative is even
        # (gelu_tanh(x) - gelu_tanh(-x) = x) and vanishes at +-1.41850400879...
        Function(
            "gelu_tanh", 8, {"direct": _ALL_FINITE}, (-1.4185040087908283, 1.4185040087908283)
        ),
        # erf'' = -(4 / sqrt(pi)) x exp(-x^2): one inflection, at 0
        Function("erf", 9, {"direct": _ALL_FINITE}, (0.0,)),
        # as exp: the non-positive half (the result is in (0, 1])
        Function("exp2", 10, {"direct": (-FP16_MAX, 0.0)}),
        Function("log", 11, {"direct": (_SMALLEST_POSITIVE, FP16_MAX)}),
        Function("log2", 12, {"direct": (_SMALLEST_POSITIVE, FP16_MAX)}),
        # mish'' = 0 at -2.25637639636079... and 1.49057117948542... (mpmath findroot)
        Function("mish", 13, {"direct": _ALL_FINITE}, (-2.256376396360793, 1.4905711794854285)),
        # alpha 1: convex (expm1 below 0, linear above, f' continuous at 0)
        Function("elu", 14, {"direct": _ALL_FINITE}),
        Function("logsigmoid", 15, {"direct": _ALL_FINITE}),  # concave
        # softsign'' = -2 sign(x) / (1 + |x|)^3
        Function("softsign", 16, {"direct": _ALL_FINITE}, (0.0,)),
    ]
}


# ----------------------------------------------------------------------------- BF16 domains
# numerics §13 / §10. BF16 spans FP32's range, so "every finite value" is not the default: each
# domain [lo, hi] is chosen so that (a) outside it the table's constant below / above is the
# correctly rounded result where f saturates or underflows (tanh -> +-1, exp -> 0, silu -> -0:
# |x| = 128 is far past every such point, e.g. e^-128 ~ 2.6e-56 rounds to 0), and (b) hi - lo
# stays below 2^126, so mul = RNE32(bins / (c_{I+1} - c_I)) is a normal FP32 for every macro
# interval inside the domain (an interval cannot be arbitrarily wide; a subnormal mul would
# lose bits and be flushed by an FTZ implementation). Where f(x) -> x without bound (silu,
# gelu, softplus, ...) (b) caps the domain at BF16_LINEAR_TOP, the largest BF16 value below
# 2^126 (about 8.5e37): inputs above it get ``above`` = f(BF16_LINEAR_TOP), not f(x).
BF16_LINEAR_TOP = (2.0 - 2.0**-7) * 2.0**125
_BF16_SAT = 128.0
_BF16_TINY = BF16_MIN_SUBNORMAL
BF16_DOMAINS = {
    "silu": {"direct": (-_BF16_SAT, BF16_LINEAR_TOP)},
    "gelu": {"direct": (-_BF16_SAT, BF16_LINEAR_TOP)},
    "gelu_tanh": {"direct": (-_BF16_SAT, BF16_LINEAR_TOP)},
    "softplus": {"direct": (-_BF16_SAT, BF16_LINEAR_TOP)},
    "mish": {"direct": (-_BF16_SAT, BF16_LINEAR_TOP)},
    "elu": {"direct": (-_BF16_SAT, BF16_LINEAR_TOP)},
    "logsigmoid": {"direct": (-BF16_LINEAR_TOP, _BF16_SAT)},
    "sigmoid": {"direct": (-_BF16_SAT, _BF16_SAT)},
    "tanh": {"direct": (-_BF16_SAT, _BF16_SAT)},
    "erf": {"direct": (-_BF16_SAT, _BF16_SAT)},
    "softsign": {"direct": (-1024.0, 1024.0)},  # 1 / (1 + |x|) < 2^-10 past |x| = 1023
    "exp": {"direct": (-_BF16_SAT, 0.0)},
    "exp2": {"direct": (-2 * _BF16_SAT, 0.0)},  # 2^-134 is half the least subnormal: ties to 0
    "log": {"direct": (_BF16_TINY, BF16_LINEAR_TOP)},
    "log2": {"direct": (_BF16_TINY, BF16_LINEAR_TOP)},
    "reciprocal": {"direct": (_BF16_TINY, BF16_LINEAR_TOP), "reduced": (1.0, 2.0)},
    "rsqrt": {"direct": (_BF16_TINY, BF16_LINEAR_TOP), "reduced": (1.0, 4.0)},
}
for _name, _d in BF16_DOMAINS.items():
    FUNCTIONS[_name].bf16_domains.update(_d)


def get_function(name: str) -> Function:
    """Look a function up by name, with an error that lists the known ones; a dotted path
    ``pkg.module:name`` imports a user function (:mod:`nli.user_function`)."""
    from .user_function import USER_FN_ID, is_user_spec, load_callable

    if is_user_spec(name):
        return Function(name, USER_FN_ID, user=load_callable(name))
    try:
        return FUNCTIONS[name]
    except KeyError:
        raise KeyError(
            f"unknown function {name!r}; known: {', '.join(sorted(FUNCTIONS))}"
        ) from None
