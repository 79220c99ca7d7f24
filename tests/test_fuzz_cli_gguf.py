"""Fuzzing the `nli` commands that read a GGUF model (tests/fuzz_cli_helpers.py has the rules):
truncated headers, huge counts, wrong magic or version, absurd metadata sizes.
"""

from __future__ import annotations

from pathlib import Path
import struct

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
import fuzz_cli_helpers
from fuzz_cli_helpers import FUZZ, _fresh, check
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.fuzz

# the shared module-scoped fixtures (tests/fuzz_cli_helpers.py), found by name
driver = fuzz_cli_helpers.driver
work = fuzz_cli_helpers.work


def _gguf_str(s: bytes, declared: int | None = None) -> bytes:
    return struct.pack("<Q", len(s) if declared is None else declared) + s


@st.composite
def gguf_bytes(draw):
    magic = draw(
        st.sampled_from([b"GGUF", b"GGUF", b"GGUF", b"GGML", b"FUGG", b"\x00\x00\x00\x00"])
    )
    version = draw(st.sampled_from([3, 3, 2, 1, 0, 4, 2**32 - 1]))
    n_tensors = draw(st.sampled_from([0, 1, 2, 2**31, 2**63, 2**64 - 1]))
    n_kv = draw(st.sampled_from([0, 1, 3, 2**32, 2**63, 2**64 - 1]))
    body = b""
    for _ in range(draw(st.integers(0, 3))):
        key = draw(
            st.sampled_from(
                [
                    b"general.architecture",
                    b"llama.block_count",
                    b"llama.context_length",
                    b"llama.embedding_length",
                    b"tokenizer.ggml.tokens",
                    b"x",
                ]
            )
        )
        body += _gguf_str(key, draw(st.sampled_from([None, None, 2**40, 2**64 - 1, 0])))
        vtype = draw(st.sampled_from([4, 8, 9, 10, 12, 13, 2**32 - 1]))
        body += struct.pack("<I", vtype)
        if vtype == 8:
            body += _gguf_str(b"llama", draw(st.sampled_from([None, 2**33, 2**64 - 1])))
        elif vtype == 9:
            body += struct.pack(
                "<IQ",
                draw(st.sampled_from([8, 4, 9, 99])),
                draw(st.sampled_from([0, 3, 2**40, 2**64 - 1])),
            )
        else:
            body += struct.pack("<Q", draw(st.sampled_from([0, 1, 2**31, 2**64 - 1])))
    raw = magic + struct.pack("<I", version % 2**32) + struct.pack("<QQ", n_tensors, n_kv) + body
    cut = draw(st.integers(0, len(raw)))
    return raw[:cut] if draw(st.booleans()) else raw


@FUZZ
@given(raw=gguf_bytes())
def test_fuzz_gguf_headers(driver, work, raw):
    ex = _fresh(work)
    g = ex / "m.gguf"
    g.write_bytes(raw)
    out = ex / "out"
    out.mkdir()
    assert (
        check(driver, ["eval", "ppl", "--model", g, "--max-tokens", "8", "--no-progress"], out) == 2
    )
    assert (
        check(driver, ["moe", "upcycle", "--model", g, "--method", "sparse", "-o", out / "ck"], out)
        == 2
    )


def _write_llama_gguf(path: Path, meta: dict, tensors: bool = True) -> None:
    gguf = pytest.importorskip("gguf")
    w = gguf.GGUFWriter(str(path), "llama")
    for k, v in meta.items():
        if isinstance(v, str):
            w.add_string(k, v)
        elif isinstance(v, float):
            w.add_float32(k, v)
        else:
            w.add_uint64(k, v) if v >= 2**32 else w.add_uint32(k, v)
    if tensors:
        w.add_tensor("token_embd.weight", np.zeros((8, 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


GGUF_META = {
    "llama.block_count": 2,
    "llama.context_length": 64,
    "llama.embedding_length": 8,
    "llama.feed_forward_length": 16,
    "llama.attention.head_count": 2,
    "llama.attention.head_count_kv": 1,
    "llama.attention.layer_norm_rms_epsilon": 1e-5,
    "llama.vocab_size": 8,
}


@FUZZ
@given(
    key=st.sampled_from(sorted(GGUF_META)),
    value=st.sampled_from([0, 1, 3, 2**20, 2**31, 2**40, 2**63, 2**64 - 1, -1.0, 1e38, "x"]),
)
def test_fuzz_gguf_metadata_values(driver, work, key, value):
    """A well-formed GGUF whose metadata asks for absurd sizes: refused before allocating."""
    ex = _fresh(work)
    g = ex / "m.gguf"
    meta = dict(GGUF_META)
    meta[key] = float(value) if key.endswith("epsilon") and not isinstance(value, str) else value
    if isinstance(meta[key], float) and not key.endswith("epsilon"):
        meta[key] = int(abs(meta[key])) % 2**64
    _write_llama_gguf(g, meta)
    out = ex / "out"
    out.mkdir()
    assert (
        check(driver, ["eval", "ppl", "--model", g, "--max-tokens", "8", "--no-progress"], out) == 2
    )
