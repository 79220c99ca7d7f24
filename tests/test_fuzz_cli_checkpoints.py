"""Fuzzing the `nli` commands that read an MoE checkpoint (tests/fuzz_cli_helpers.py has the
rules): extreme and wrong-typed config values, damaged weight and config files.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

hypothesis = pytest.importorskip("hypothesis")
import fuzz_cli_helpers
from fuzz_cli_helpers import FUZZ, INT_EXTREMES, _fresh, check
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.fuzz

# the shared module-scoped fixtures (tests/fuzz_cli_helpers.py), found by name
driver = fuzz_cli_helpers.driver
work = fuzz_cli_helpers.work


@pytest.fixture(scope="module")
def checkpoint(driver, work):
    ck = work / "ck_base"
    rc, err = driver.run(
        [
            "moe",
            "upcycle",
            "--model",
            "tiny",
            "--method",
            "sparse",
            "--experts",
            "4",
            "--top-k",
            "2",
            "-o",
            str(ck),
        ]
    )
    assert rc == 0, err
    return ck


LLAMA_KEYS = [
    "vocab_size",
    "dim",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "hidden_dim",
    "norm_eps",
    "rope_theta",
    "max_seq_len",
    "tie_embeddings",
    "bogus_key",
]
MOE_KEYS = [
    "layers",
    "num_experts",
    "top_k",
    "expert_hidden_dim",
    "renormalize",
    "principal",
    "residual_scale",
    "select_on",
    "method",
    "options",
    "bogus_key",
]
CONFIG_VALUES = (
    INT_EXTREMES
    | st.sampled_from(
        [
            10**6,
            10**9,
            10**12,
            1.5,
            -0.0,
            1e308,
            "8",
            None,
            True,
            [],
            {},
            [0, 1],
            [1, 0],
            [-1],
            [10**9],
        ]
    )
    | st.floats(allow_nan=True, allow_infinity=True)
)


@FUZZ
@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(["llama", "moe", "top", "provenance"]),
            st.sampled_from(LLAMA_KEYS + MOE_KEYS + ["format", "version"]),
            CONFIG_VALUES,
        ),
        min_size=1,
        max_size=3,
    )
)
def test_fuzz_checkpoint_configs(driver, work, checkpoint, edits):
    ex = _fresh(work)
    ck = ex / "ck"
    shutil.copytree(checkpoint, ck)
    cfg = json.loads((ck / "config.json").read_text())
    for where, key, value in edits:
        target = cfg if where == "top" else cfg.setdefault(where, {})
        if isinstance(target, dict):
            target[key] = value
        else:
            cfg[where] = value
    (ck / "config.json").write_text(json.dumps(cfg, allow_nan=True))
    out = ex / "out"
    out.mkdir()
    check(driver, ["eval", "cost", "--model", ck, "--json", out / "c.json"], out)
    check(driver, ["moe", "grow", ck, "--factor", "2", "-o", out / "grown"], out)
    check(
        driver,
        [
            "eval",
            "ppl",
            "--model",
            ck,
            "--max-tokens",
            "12",
            "--window",
            "6",
            "--ops",
            "silu",
            "--mode",
            "fp16",
            "--no-progress",
        ],
        out,
    )


@pytest.mark.parametrize(
    "damage",
    [
        "empty",
        "truncated",
        "garbage",
        "pickle",
        "dir",
        "fifo",
        "wrong_dtype",
        "not_dict",
        "no_weights",
        "config_list",
        "config_deep",
        "tokenizer",
    ],
)
def test_damaged_checkpoints(driver, work, checkpoint, damage):
    import torch

    ex = _fresh(work)
    ck = ex / "ck"
    shutil.copytree(checkpoint, ck)
    w = ck / "weights.pt"
    if damage == "empty":
        w.write_bytes(b"")
    elif damage == "truncated":
        w.write_bytes(w.read_bytes()[:5000])
    elif damage == "garbage":
        w.write_bytes(os.urandom(4096))
    elif damage == "pickle":  # a pickle that would run code with weights_only=False
        import pickle

        w.write_bytes(pickle.dumps(os.system))
    elif damage in ("dir", "fifo"):
        w.unlink()
        w.mkdir() if damage == "dir" else os.mkfifo(w)
    elif damage in ("wrong_dtype", "not_dict"):
        state = torch.load(w, weights_only=True)
        obj = (
            {k: v.to(torch.int32) for k, v in state.items()}
            if damage == "wrong_dtype"
            else [1, 2, 3]
        )
        torch.save(obj, w)
    elif damage == "no_weights":
        w.unlink()
    elif damage == "config_list":
        (ck / "config.json").write_text("[1, 2]")
    elif damage == "config_deep":
        (ck / "config.json").write_text("[" * 200_000 + "]" * 200_000)
    elif damage == "tokenizer":
        (ck / "tokenizer.json").write_text('{"model": 5}')
    out = ex / "out"
    out.mkdir()
    assert check(driver, ["moe", "grow", ck, "-o", out / "g"], out) == 2
    assert (
        check(driver, ["eval", "ppl", "--model", ck, "--max-tokens", "8", "--no-progress"], out)
        == 2
    )
