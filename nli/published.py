"""NLI's own published macro cutpoints, for comparison (not used to build our tables).

Source: the public repository ``neulxf/NN-LUT`` (commit
29ce2ee8c620739e64a4465238067f118dedaefb), file
``fplut/nl/generate_split_points/_cached_cut_points_v2.py``, dict
``cut_points_dict``: the cache their code path reads
(``generate_split_points.py``: ``_process_cache`` looks in ``cut_points_dict_v2``
only; the v1 lookup is commented out). Numbers are copied verbatim; each is an
FP16 value (checked by :func:`published_table`).

Softplus has no entry in the v2 cache (their ``info['softplus']`` even points at
softsign), so the softplus row comes from the older v1 cache
(``_cached_cut_points_v1.py``, key ``"softplus"``), which their code no longer
reads; it is marked as such. The v2 ``gelu`` key is the erf form (their
``gelu_tanh`` is the tanh approximation).
"""

from __future__ import annotations

import numpy as np

from .solver import PAPER_BINS
from .table import Table, table_from_cutpoints

SOURCE_REPO = "neulxf/NN-LUT"
SOURCE_COMMIT = "29ce2ee8c620739e64a4465238067f118dedaefb"
SOURCE_V2 = "fplut/nl/generate_split_points/_cached_cut_points_v2.py"
SOURCE_V1 = "fplut/nl/generate_split_points/_cached_cut_points_v1.py"

PUBLISHED_CUTPOINTS: dict[str, tuple[str, list[float]]] = {
    "silu": (
        SOURCE_V2,
        [
            -20.359375,
            -17.109375,
            -8.3671875,
            -1.9755859375,
            -0.255615234375,
            -0.007244110107421875,
            0.0072174072265625,
            0.228515625,
            1.58203125,
            10.46875,
            65504.0,
        ],
    ),
    "exp": (
        SOURCE_V2,
        [
            -17.34375,
            -15.171875,
            -8.890625,
            -5.2734375,
            -2.35546875,
            -0.3583984375,
            0.91650390625,
            3.451171875,
            6.84765625,
            10.9453125,
            11.0859375,
        ],
    ),
    "gelu": (
        SOURCE_V2,
        [
            -5.5390625,
            -5.15625,
            -3.18359375,
            -0.98046875,
            -0.1229248046875,
            -0.00374603271484375,
            0.0035247802734375,
            0.11322021484375,
            0.78076171875,
            4.10546875,
            65504.0,
        ],
    ),
    "sigmoid": (
        SOURCE_V2,
        [
            -17.34375,
            -15.765625,
            -10.65625,
            -8.15625,
            -6.3046875,
            -4.421875,
            -2.6640625,
            -0.7998046875,
            1.9462890625,
            6.90234375,
            8.3203125,
        ],
    ),
    "tanh": (
        SOURCE_V2,
        [
            -4.5078125,
            -3.79296875,
            -1.55078125,
            -0.5302734375,
            -0.028564453125,
            0.0364990234375,
            0.423828125,
            1.076171875,
            2.0390625,
            4.0625,
            4.5078125,
        ],
    ),
    "reciprocal": (
        SOURCE_V2,
        [
            1.531839370727539e-05,
            2.2590160369873047e-05,
            0.0004699230194091797,
            0.007053375244140625,
            0.08837890625,
            1.07421875,
            15.546875,
            244.5,
            3694.0,
            46560.0,
            65504.0,
        ],
    ),
    "rsqrt": (
        SOURCE_V2,
        [
            5.960464477539063e-08,
            7.748603820800781e-07,
            0.00011140108108520508,
            0.0018644332885742188,
            0.030029296875,
            0.48193359375,
            7.7734375,
            129.75,
            2406.0,
            47456.0,
            65504.0,
        ],
    ),
    "softplus": (
        SOURCE_V1 + " (v1 cache, no longer read by their code)",
        [
            -65504.0,
            -19.5625,
            -10.4453125,
            -7.62890625,
            -6.31640625,
            -4.58984375,
            -2.8828125,
            -1.0712890625,
            0.921875,
            5.5234375,
            65504.0,
        ],
    ),
}


def published_cutpoint_bits(function: str) -> np.ndarray:
    """uint16[11]: the published macro cutpoints of ``function`` as FP16 bits (exactly
    representable)."""
    if function not in PUBLISHED_CUTPOINTS:
        raise KeyError(
            f"no published NLI cutpoints for {function!r}; have: {', '.join(PUBLISHED_CUTPOINTS)}"
        )
    values = np.array(PUBLISHED_CUTPOINTS[function][1], dtype=np.float64)
    bits = values.astype(np.float16)
    if not np.array_equal(bits.astype(np.float64), values):
        raise ValueError(f"published cutpoints of {function} are not all FP16 values")
    return bits.view(np.uint16)


def published_table(function: str, precision: str = "fp32") -> Table:
    """The paper-layout table from NLI's published cutpoints: LUT = RNE16(f(point)),
    below = lut[0], above = lut[-1] (``table_from_cutpoints``)."""
    src = PUBLISHED_CUTPOINTS.get(function, (None,))[0]
    return table_from_cutpoints(
        function,
        published_cutpoint_bits(function),
        list(PAPER_BINS),
        precision,
        provenance={
            "method": "NLI published macro cutpoints",
            "source": f"{SOURCE_REPO}@{SOURCE_COMMIT}:{src}",
        },
        layout="paper",
    )
