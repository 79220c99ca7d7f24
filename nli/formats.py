"""Number formats and shared vocabularies: the one source of every constant the packages share.

Numbers (docs/numerics.md section 1): each IEEE 754 binary interchange format
the datapath uses is one frozen :class:`BinaryFormat`, from which every
derived constant (largest finite value, overflow threshold, infinity and
canonical NaN bit patterns, ...) is computed, never typed in. Flat
module-level names (``FP16_NAN``, ``FP16_MAX``, ...) repeat the values as
plain ``int`` / ``float`` globals, because Numba kernels freeze module globals
as compile-time constants but cannot read a dataclass attribute. A future
format (BF16) is one more ``BinaryFormat(...)`` line plus its flat names.

Vocabularies: the reciprocal/rsqrt modes (section 5), unit precisions
(sections 2 and 3), the composite ops and the tables each needs (section 4),
RMSNorm's FP32 input handling (section 4.1) and the MoE router's ranking
choices (section 12).

This module is the lowest layer: it imports nothing from the project.
tests/test_one_source.py fails if a copy of any of these reappears elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

# ----------------------------------------------------------------------------- numerics version
NUMERICS_VERSION = "1.1"
"""The numerics version table files record as ``"numerics"`` (docs/numerics.md section 6): the
last version of the document that changed what a table means. docs/numerics.md is at 1.2, whose
only addition (section 4.1, RMSNorm's row prescale) changes no table, so tables stay at 1.1."""


# ----------------------------------------------------------------------------- binary formats
@dataclass(frozen=True)
class BinaryFormat:
    """An IEEE 754 binary format with subnormals: ``exponent_bits`` / ``fraction_bits`` wide."""

    name: str
    exponent_bits: int
    fraction_bits: int

    def __post_init__(self):
        if self.exponent_bits < 2 or self.fraction_bits < 1:
            raise ValueError(f"{self.name}: need >= 2 exponent bits and >= 1 fraction bit")

    @property
    def width(self) -> int:
        """Total bits: sign + exponent + fraction."""
        return 1 + self.exponent_bits + self.fraction_bits

    @property
    def precision(self) -> int:
        """Significant bits, the hidden one included."""
        return self.fraction_bits + 1

    @property
    def bias(self) -> int:
        return (1 << (self.exponent_bits - 1)) - 1

    @property
    def emax(self) -> int:
        return self.bias

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal value."""
        return 1 - self.bias

    @property
    def max(self) -> float:
        """Largest finite value, (2 - 2^-fraction_bits) * 2^emax."""
        return (2.0 - 2.0**-self.fraction_bits) * 2.0**self.emax

    @property
    def overflow(self) -> float:
        """Overflow threshold: the round-to-nearest-even result of a real v is +-inf iff |v| >= this
        (the midpoint between ``max`` and 2^(emax+1))."""
        return (2.0 - 2.0**-self.precision) * 2.0**self.emax

    @property
    def min_normal(self) -> float:
        return 2.0**self.emin

    @property
    def min_subnormal(self) -> float:
        return 2.0 ** (self.emin - self.fraction_bits)

    @property
    def sign_bit(self) -> int:
        return 1 << (self.width - 1)

    @property
    def inf_bits(self) -> int:
        """Bit pattern of +inf (= the exponent field mask)."""
        return ((1 << self.exponent_bits) - 1) << self.fraction_bits

    @property
    def max_bits(self) -> int:
        """Bit pattern of the largest finite value."""
        return self.inf_bits - 1

    @property
    def nan_bits(self) -> int:
        """The canonical NaN every operator outputs: positive, quiet, payload zero."""
        return self.inf_bits | (1 << (self.fraction_bits - 1))


FP16 = BinaryFormat("fp16", exponent_bits=5, fraction_bits=10)
FP32 = BinaryFormat("fp32", exponent_bits=8, fraction_bits=23)
BF16 = BinaryFormat("bf16", exponent_bits=8, fraction_bits=7)

# Flat names (plain int / float, usable as Numba compile-time constants).
FP16_MAX = FP16.max  # 65504.0
FP16_OVERFLOW = FP16.overflow  # 65520.0: |v| >= this rounds to inf
FP16_MIN_NORMAL = FP16.min_normal  # 2^-14
FP16_MIN_SUBNORMAL = FP16.min_subnormal  # 2^-24
FP16_NAN = FP16.nan_bits  # 0x7E00, the canonical NaN
FP16_POS_INF = FP16.inf_bits  # 0x7C00
FP16_NEG_INF = FP16.sign_bit | FP16.inf_bits  # 0xFC00
FP16_MAX_BITS = FP16.max_bits  # 0x7BFF

BF16_MAX = BF16.max  # (2 - 2^-7) 2^127 ~ 3.3895e38
BF16_OVERFLOW = BF16.overflow  # (2 - 2^-8) 2^127: |v| >= this rounds to inf
BF16_MIN_NORMAL = BF16.min_normal  # 2^-126
BF16_MIN_SUBNORMAL = BF16.min_subnormal  # 2^-133
BF16_NAN = BF16.nan_bits  # 0x7FC0, the canonical NaN (the top half of FP32_NAN)
BF16_POS_INF = BF16.inf_bits  # 0x7F80
BF16_NEG_INF = BF16.sign_bit | BF16.inf_bits  # 0xFF80
BF16_MAX_BITS = BF16.max_bits  # 0x7F7F
BF16_MIN_WIDTH_PER_BIN = 2.0**-127  # the solvers keep a bf16 interval of B bins >= B 2^-127 wide

FP32_MAX = FP32.max
FP32_NAN = FP32.nan_bits  # 0x7FC00000 (converts to FP16_NAN)
FP32_POS_INF = FP32.inf_bits  # 0x7F800000

# ----------------------------------------------------------------------------- vocabularies
DTYPES = ("fp16", "bf16")
"""A table's ``dtype`` (section 13): the 16-bit format of its cutpoints, LUT, inputs and outputs.
The first is the default (a table file without ``dtype`` is fp16)."""

DTYPE_FORMATS = {"fp16": FP16, "bf16": BF16}
"""dtype name -> its :class:`BinaryFormat`."""

TABLE_NUMERICS = {"fp16": NUMERICS_VERSION, "bf16": "1.3"}
"""dtype -> the ``"numerics"`` version its table files record (section 6): fp16 tables mean what
they meant in 1.1; bf16 tables exist from 1.3 (section 13)."""

MODES = ("direct", "reduced")
"""Reciprocal / inverse-square-root modes (section 5)."""

PRECISIONS = ("fp32", "fp16")
"""Internal precision of the elementwise unit (sections 2, 3); the first is the default."""

ACTIVATIONS = ("silu", "gelu_tanh")
"""The FFN activations a model can have (its config's ``activation``); the ``act`` op runs the
model's own one on that function's table."""

ARCHITECTURES = ("llama", "gemma3", "qwen2", "qwen3")
"""The decoder architectures engine builds natively (``LlamaConfig.arch``; a GGUF's
``general.architecture``); the first is the default."""

OP_TABLES = {"act": ("<activation>",), "rmsnorm": ("rsqrt",), "softmax": ("exp", "reciprocal")}
"""Composite ops (roles) the NLI unit can take over (section 4) -> the table functions each
needs; ``act``'s is the model's activation (see :func:`op_functions`)."""

OPS = tuple(OP_TABLES)
"""("act", "rmsnorm", "softmax")."""

OP_ALIASES = {"silu": "act"}
"""Old op names still accepted (``--ops silu,...`` from before roles)."""

BACKENDS = ("numba", "torch")
"""Implementations of the unit's datapath a substituted model can run on: ``numba`` (hw_sim, the
reference, on the CPU) and ``torch`` (engine.torch_unit / torch_ops, bit-identical, on the
tensors' own device). ``auto`` (the default) picks numba for CPU tensors, torch otherwise."""

UNIT_FUNCTIONS = (*ACTIVATIONS, "exp", "reciprocal", "rsqrt")
"""Every table function an op can need."""


def op_functions(ops, activation: str) -> list[str]:
    """The table functions ``ops`` (role names) need in a model whose activation is
    ``activation``."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    return [activation if f == "<activation>" else f for op in ops for f in OP_TABLES[op]]


INVERSE_FUNCTIONS = ("reciprocal", "rsqrt")
"""Table functions computed on FP32 values in one of MODES (section 5); the others are always
direct."""

SELECT_ON_CHOICES = ("probs", "logits")
"""What the MoE router's top-k ranks (section 12)."""

RMSNORM_INPUTS = ("scaled", "plain")
"""How RMSNorm's FP32 input rows enter the FP16 unit (section 4.1): ``scaled`` (the default) by
the row prescale, ``plain`` by RNE16 alone (a value of 65520 or more becomes +-inf)."""

RMSNORM_PRESCALE_TOP = FP16.emax - 1
"""14: a prescaled row's largest finite |x| lies in [2^14, 2^15) (section 4.1)."""
