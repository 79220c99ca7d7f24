"""Table fingerprints: which table contents a recorded result was measured with.

A fingerprint hashes the fields the datapath reads (numerics version, dtype, function,
precision, cutpoints, bins, base, mul, LUT, below, above), never ``meta``: rewriting a
table's provenance keeps its fingerprint, and changing any bit the unit reads changes it.
Benchmarks record the fingerprints of the shipped tables they loaded
(:func:`nli.defaults.loaded_default_tables`), so a report can tell a result measured with an
earlier table from one measured with today's.
"""

from __future__ import annotations

import hashlib
import json

from .table import SPEC_KEYS, Table

FINGERPRINT_HEX = 16  # 64 bits of sha256: tables are few, collisions are not a concern


def table_fingerprint(t: Table) -> str:
    """The first FINGERPRINT_HEX hex digits of sha256 over the table's spec fields, written as
    compact JSON with sorted keys (the file's own hex spellings of the bit patterns)."""
    d = t.to_json_dict()
    spec = {k: d[k] for k in sorted(d) if k in SPEC_KEYS}
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_HEX]
