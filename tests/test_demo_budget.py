"""`nli demo` stays within its time budget as modes and models are added: each model section
spends at most DEMO_FORWARD_TOKENS forward tokens (tokens x passes), --quick half of it."""

import pytest

from engine.demo import DEMO_FORWARD_TOKENS, DEMO_VARIANTS, MIN_DEMO_TOKENS, demo_tokens
from nli.cli import main
from nli.demo import DemoContext


@pytest.mark.parametrize("passes", [1, 2, 5, 6, 9, 12])
def test_token_budget_is_kept_whatever_the_number_of_passes(passes):
    for quick in (False, True):
        n = demo_tokens("smollm2", passes, quick)
        budget = DEMO_FORWARD_TOKENS["smollm2"] // (2 if quick else 1)
        assert n * passes <= budget or n == MIN_DEMO_TOKENS
        assert n >= MIN_DEMO_TOKENS


def test_more_passes_means_fewer_tokens_not_more_time():
    assert demo_tokens("smollm2", len(DEMO_VARIANTS) + 1) > demo_tokens(
        "smollm2", len(DEMO_VARIANTS) + 4
    )
    assert demo_tokens("smollm2", 5, quick=True) < demo_tokens("smollm2", 5)


def test_default_demo_modes_are_a_small_subset_with_nli():
    labels = [m[0] for m in DEMO_VARIANTS]
    assert "nli" in labels and len(labels) <= 4


def test_bad_budget_inputs_are_rejected():
    with pytest.raises(ValueError):
        demo_tokens("smollm2", 0)
    with pytest.raises(KeyError):
        demo_tokens("no-such-model", 3)
    with pytest.raises(ValueError):
        DemoContext(out="x", quick=True, full=True)


def test_cli_rejects_quick_with_full(capsys, tmp_path):
    assert main(["demo", "--quick", "--full", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "not allowed with" in err and len(err.strip().splitlines()) == 1  # one line
    assert not (tmp_path / "d").exists()
