"""Shared helpers of the torch-backend tests (tests/test_torch_unit.py for FP16,
tests/test_torch_unit_bf16.py for BF16): bit views, the one-line-error check, and the
torch-vs-numba backend comparisons (substituted model logits, ``nli eval ppl`` reports, the
torch backend's independence from hw_sim)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from engine.substitution import substitute

ALL16 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)  # every 16-bit encoding
ROW_LENGTHS = (1, 7, 64, 1031)
BACKENDS = ("numba", "torch")
PPL_KEYS = ("ppl", "ppl_ref", "top1_agreement", "mean_kl", "activation_stats")


def u32(y) -> np.ndarray:
    """float32 array or tensor -> its uint32 bit patterns."""
    y = y.numpy() if isinstance(y, torch.Tensor) else y
    assert y.dtype == np.float32
    return np.ascontiguousarray(y).view(np.uint32)


def assert_one_line_value_errors(cases) -> None:
    """Each (call, pattern) of ``cases``: call() raises a ValueError matching pattern whose
    message is one line."""
    for call, pattern in cases:
        with pytest.raises(ValueError, match=pattern) as e:
            call()
        assert "\n" not in str(e.value)


def tiny_ids() -> torch.Tensor:
    """The token ids the model tests feed the tiny model: [1, 66]."""
    return torch.arange(3, 200, 3)[None] % 257


def logits_on_both_backends(model, ids, **kwargs) -> dict:
    """{backend: logits} of ``model`` substituted with ``kwargs`` on the numba and the torch
    backend (call under torch.no_grad())."""
    return {b: substitute(model, backend=b, **kwargs)(ids) for b in BACKENDS}


def eval_ppl_argv(tmp_path, text: str) -> list[str]:
    """``nli eval ppl`` argv for the tiny model on ``text`` (written under tmp_path), 90 tokens."""
    path = tmp_path / "t.txt"
    path.write_text(text, "utf-8")
    return ["eval", "ppl", "--model", "tiny", "--text", str(path), "--max-tokens", "90"]


def eval_ppl_on_both_backends(base: list[str], tmp_path, *extra: str) -> dict:
    """{backend: JSON report} of ``nli eval ppl`` (``base`` + ``extra``) on each backend; both
    must exit 0 and agree exactly on every key of PPL_KEYS."""
    from nli.cli import main

    res = {}
    for b in BACKENDS:
        out = tmp_path / f"{b}.json"
        assert main([*base, *extra, "--backend", b, "--json", str(out), "--no-progress"]) == 0
        res[b] = json.loads(out.read_text())
    for key in PPL_KEYS:
        assert res["torch"][key] == res["numba"][key], key
    return res


def hw_sim_modules_after_torch_run(substitute_kwargs: str) -> str:
    """In a fresh interpreter, run the tiny model substituted with ``substitute(m,
    {substitute_kwargs})`` and return the sorted list of hw_sim modules it imported, printed."""
    code = (
        "import sys, torch, engine\n"
        "from engine.substitution import substitute\n"
        "m, _ = engine.load_tiny()\n"
        "with torch.no_grad():\n"
        f"    substitute(m, {substitute_kwargs})(torch.arange(10)[None])\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] == 'hw_sim'))\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return out.stdout.strip()
