"""Table fingerprints (nli.fingerprint) and the record of which shipped tables were loaded."""

from __future__ import annotations

import numpy as np

from nli.defaults import (
    default_table,
    default_table_names,
    default_table_path,
    loaded_default_tables,
    shipped_fingerprints,
)
from nli.fingerprint import FINGERPRINT_HEX, table_fingerprint


def test_fingerprint_ignores_meta_and_sees_every_lut_bit():
    t = default_table("exp")
    fp = table_fingerprint(t)
    assert len(fp) == FINGERPRINT_HEX and int(fp, 16) >= 0
    assert table_fingerprint(t.with_lut(t.lut, note="provenance only")) == fp
    seen = {fp}
    for i in (0, t.entries // 2, t.entries - 1):  # one flipped bit anywhere: a new fingerprint
        lut = t.lut.copy()
        lut[i] ^= np.uint16(1)
        seen.add(table_fingerprint(t.with_lut(lut)))
    assert len(seen) == 4
    assert table_fingerprint(t.with_precision("fp16")) != fp  # the unit's precision is read too


def test_loaded_default_tables_records_what_was_loaded():
    t = default_table("rsqrt", "reduced")
    got = loaded_default_tables()
    assert got["rsqrt_reduced"] == table_fingerprint(t)
    assert list(got) == sorted(got)


def test_shipped_fingerprints_cover_every_shipped_table():
    fps = shipped_fingerprints()
    for dtype in ("fp16", "bf16"):
        for name, mode in default_table_names(dtype):
            path = default_table_path(name, mode, dtype)
            if path.exists():
                assert fps[path.stem] == table_fingerprint(default_table(name, mode, dtype))
    assert len(set(fps.values())) == len(fps)  # no two shipped tables alike
