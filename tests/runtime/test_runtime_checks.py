"""Argument checks run once per search call, not at every decoder step."""

from __future__ import annotations

import threading

import pytest
import torch

import seq2seq.attention.module as attention_module
import seq2seq.models.base as base
from seq2seq.models.base import check_tokens
from seq2seq.runtime.checks import checked, checks_enabled


def test_checked_switches_and_restores():
    assert checks_enabled()
    with checked(False):
        assert not checks_enabled()
        check_tokens("x", torch.zeros(2, 2), 1)  # a float 2-D tensor passes unchecked
        seen = []
        thread = threading.Thread(target=lambda: seen.append(checks_enabled()))
        thread.start()
        thread.join()
        assert seen == [True]  # another thread keeps its checks
    assert checks_enabled()
    with pytest.raises(ValueError, match="integer tensor"):
        check_tokens("x", torch.zeros(2, 2), 1)


@pytest.mark.parametrize("beam", [1, 3])
def test_a_search_checks_its_first_step_only(beam, monkeypatch):
    from seq2seq.config import ModelConfig
    from seq2seq.data import collate_src
    from seq2seq.inference.search import beam_search, greedy_search
    from seq2seq.models import build_model

    torch.manual_seed(0)
    model = build_model(
        ModelConfig(arch="transformer", embed_dim=16, encoder_layers=1, decoder_layers=1,
                    max_positions=32),
        20, 20,
    ).eval()  # fmt: skip
    calls = {"enabled": 0, "skipped": 0}
    real = base.check_tokens

    def counting(name, *args, **kwargs):
        if name == "prev_tokens":
            calls["enabled" if checks_enabled() else "skipped"] += 1
        return real(name, *args, **kwargs)

    monkeypatch.setattr("seq2seq.models.transformer.check_tokens", counting)
    src = collate_src([[5, 6, 7, 8], [9, 10]])
    if beam == 1:
        greedy_search(model, src, max_len=12)
    else:
        beam_search(model, src, beam=beam, max_len=12)
    assert calls["enabled"] == 1 and calls["skipped"] >= 1
    assert attention_module.checks_enabled() and checks_enabled()  # restored after the search
