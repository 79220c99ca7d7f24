"""`nli.export`: C header, $readmemh files and npz hold exactly the table's bits; writes are
atomic."""

import os
import re

import numpy as np
import pytest

from nli.export import c_header, export_table, readmemh_files, table_arrays
from nli.published import published_table


@pytest.fixture(scope="module")
def table():
    return published_table("silu")


def _c_values(text, name):
    m = re.search(rf"{name}\[(\d+)\] = {{(.*?)}};", text, re.S)
    vals = [int(v, 16) for v in re.findall(r"0x([0-9a-f]+)", m.group(2))]
    assert len(vals) == int(m.group(1))
    return vals


def test_c_header_arrays_equal_table_bits(table):
    h = c_header(table)
    assert "#include <stdint.h>" in h and h.count("#ifndef NLI_TABLE_SILU_H") == 1
    assert _c_values(h, "NLI_SILU_CUTPOINTS") == [int(v) for v in table.cutpoints]
    assert _c_values(h, "NLI_SILU_LUT") == [int(v) for v in table.lut]
    assert _c_values(h, "NLI_SILU_BINS") == [int(v) for v in table.bins]
    assert _c_values(h, "NLI_SILU_BASE") == [int(v) for v in table.base]
    assert _c_values(h, "NLI_SILU_MUL") == [int(v) for v in table.mul.view(np.uint32)]
    assert "uint32_t NLI_SILU_MUL[10]" in h
    assert f"NLI_SILU_BELOW ((uint16_t)0x{table.below:04x})" in h


def test_readmemh_files_one_word_per_line(table):
    files = readmemh_files(table)

    def words(text):
        return [int(line, 16) for line in text.splitlines() if line and not line.startswith("//")]

    assert words(files["lut.hex"]) == [int(v) for v in table.lut]
    assert words(files["mul.hex"]) == [int(v) for v in table.mul.view(np.uint32)]
    assert all(len(line) == 8 for line in files["mul.hex"].splitlines()[1:])
    assert words(files["clamps.hex"]) == [table.below, table.above]
    assert words(files["cutpoints.hex"]) == [int(v) for v in table.cutpoints]


def test_npz_round_trip(table, tmp_path):
    p = tmp_path / "t.npz"
    export_table(table, "npz", p)
    with np.load(p) as z:
        for k, v in table_arrays(table).items():
            assert z[k].dtype == v.dtype and np.array_equal(z[k], v)


def test_hex_writes_a_directory_and_refuses_a_file(table, tmp_path):
    out = export_table(table, "hex", tmp_path / "mem")
    assert sorted(p.name for p in out) == sorted(readmemh_files(table))
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="directory"):
        export_table(table, "hex", f)


def test_unknown_format_and_atomic_failure(table, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="format"):
        export_table(table, "vhdl", tmp_path / "x")
    p = tmp_path / "t.npz"
    p.write_bytes(b"old")
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("no space")))
    with pytest.raises(OSError):
        export_table(table, "npz", p)
    assert p.read_bytes() == b"old" and [q.name for q in tmp_path.iterdir()] == ["t.npz"]
