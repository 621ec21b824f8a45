"""Search with the real models: cached stepping agrees with teacher-forced re-decoding."""

from __future__ import annotations

import pytest
import torch

from seq2seq.config import (
    AttentionConfig,
    AttentionSlots,
    ModelConfig,
    RNNConfig,
    TransformerConfig,
)
from seq2seq.inference import beam_search, forced_attention, greedy_search
from seq2seq.inference.search import length_penalty, max_output_lengths
from seq2seq.models import build_model
from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID

VOCAB = 24


def tiny_config(arch: str, attention: str) -> ModelConfig:
    heads = 2 if arch == "transformer" else None
    slot = AttentionConfig(type=attention, heads=heads)
    return ModelConfig(
        arch=arch,
        embed_dim=16,
        encoder_layers=2,
        decoder_layers=2,
        dropout=0.0,
        max_positions=32,
        attention=AttentionSlots(cross=slot, encoder_self=slot, decoder_self=slot),
        rnn=RNNConfig(hidden_dim=16),
        transformer=TransformerConfig(ffn_dim=32),
    )


MODELS = [
    ("transformer", "scaled_dot"),
    ("transformer", "additive"),
    ("rnn", "additive"),
    ("rnn", "general"),
]


@pytest.fixture(params=MODELS, ids=["-".join(m) for m in MODELS])
def model(request):
    torch.manual_seed(0)
    model = build_model(tiny_config(*request.param), VOCAB, VOCAB).eval()
    with torch.no_grad():  # peakier output distributions than at init: outputs of varied length
        for p in model.parameters():
            p.mul_(3.0 if p.dim() > 1 else 1.0)
    return model


def sources(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    lengths = [5, 1, 9, 3]
    src = torch.full((len(lengths), max(lengths)), PAD_ID)
    for i, n in enumerate(lengths):
        src[i, :n] = torch.randint(4, VOCAB, (n,), generator=g)
    return src


def teacher_forced_log_prob(model, src_row: torch.Tensor, tokens: list[int], ended: bool) -> float:
    """log P(tokens [+ EOS]) from one full forward pass, in float64."""
    tgt_in = torch.tensor([[BOS_ID, *tokens]])
    with torch.no_grad():
        logits, _ = model(src_row[None], tgt_in)
    log_p = logits[0].double().log_softmax(-1)
    targets = [*tokens, EOS_ID]
    total = sum(float(log_p[t, y]) for t, y in enumerate(targets[: len(tokens)]))
    return total + (float(log_p[len(tokens), EOS_ID]) if ended else 0.0)


def test_cached_stepping_equals_full_forward(model):
    src = sources()
    limit = max_output_lengths(src, ratio=1.0, offset=3)
    results = beam_search(model, src, beam=3, n_best=3, length_penalty=0.6, max_len=limit)
    seen_lengths = set()
    for i, hyps in enumerate(results):
        row = src[i, : int((src[i] != PAD_ID).sum())]
        for h in hyps:
            ended = len(h.tokens) < int(limit[i])
            steps = len(h.tokens) + int(ended)
            seen_lengths.add(len(h.tokens))
            reference = teacher_forced_log_prob(model, row, h.tokens, ended)
            assert h.log_prob == pytest.approx(reference, abs=2e-4)
            assert h.score == pytest.approx(reference / length_penalty(float(steps), 0.6), abs=2e-4)


def test_beam_one_is_greedy(model):
    src = sources(1)
    limit = max_output_lengths(src, ratio=1.5, offset=2)
    greedy = greedy_search(model, src, max_len=limit)
    beam = beam_search(model, src, beam=1, max_len=limit)
    assert [g.tokens for g in greedy] == [b[0].tokens for b in beam]
    assert [g.log_prob for g in greedy] == [b[0].log_prob for b in beam]


def test_beam_at_least_greedy_and_sorted(model):
    src = sources(2)
    greedy = greedy_search(model, src, max_len=8)
    results = beam_search(model, src, beam=4, n_best=4, length_penalty=0.0, max_len=8)
    for g, hyps in zip(greedy, results, strict=True):
        assert hyps[0].log_prob >= g.log_prob - 1e-5
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == len(hyps)


def test_hypothesis_attention_equals_forced_attention(model):
    src = sources(3)
    results = beam_search(model, src, beam=3, n_best=2, max_len=6, need_weights=True)
    for i, hyps in enumerate(results):
        n_src = int((src[i] != PAD_ID).sum())
        for h in hyps:
            forced = forced_attention(model, src[i, :n_src], torch.tensor(h.tokens))
            assert set(h.attention) == set(model.slots)
            for slot, w in h.attention.items():
                steps = w.shape[-2]
                rows = forced[slot] if slot == "encoder_self" else forced[slot][..., :steps, :]
                torch.testing.assert_close(w, rows[..., : w.shape[-1]], atol=1e-4, rtol=1e-4)
                assert torch.isfinite(w).all()
            cross = h.attention["cross"]
            assert cross.shape[-1] == n_src
            torch.testing.assert_close(
                cross.sum(-1), torch.ones(cross.shape[:-1]), atol=1e-4, rtol=0
            )


def test_bf16_autocast_search_runs(model):
    src = sources(4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hyps = beam_search(model, src, beam=2, max_len=5)
    assert all(torch.isfinite(torch.tensor(h[0].log_prob)) for h in hyps)


def test_empty_and_one_token_sources(model):
    # an all-padding row (empty source) and a one-token source in the same batch
    src = torch.tensor([[PAD_ID, PAD_ID], [7, PAD_ID], [5, 9]])
    for hyps in beam_search(model, src, beam=2, n_best=2, max_len=4):
        assert all(torch.isfinite(torch.tensor(h.score)) for h in hyps)
        assert all(len(h.tokens) <= 4 for h in hyps)
    assert len(greedy_search(model, src, max_len=4)) == 3
