"""Translator: chunking, length sorting, order, empty and over-long lines, precision."""

from __future__ import annotations

import logging

import pytest
import torch
from toy_models import random_table

from seq2seq.data import collate_src
from seq2seq.inference import beam_search, greedy_search
from seq2seq.inference.decode import DecodeOptions, decode_ids, score_ids
from seq2seq.inference.search import max_output_lengths
from seq2seq.inference.translate import Translator
from seq2seq.runtime.precision import DECODE_PRECISIONS
from seq2seq.runtime.precision import resolve_precision as _resolve


class WordTokenizer:
    """One id per whitespace word (id = 4 + word number), pieces "▁w<id>"."""

    def __init__(self, vocab: int) -> None:
        self.vocab = vocab

    def encode_src_batch(self, lines):
        return [[4 + int(w) % (self.vocab - 4) for w in line.split()] for line in lines]

    encode_tgt_batch = encode_src_batch

    def decode_tgt(self, ids):
        return " ".join(str(i - 4) for i in ids)

    def src_pieces(self, ids):
        return [f"\u2581w{i}" for i in ids]

    tgt_pieces = src_pieces


LINES = ["3 1 4 1 5", "", "9", "2 6 5 3 5 8 9 7", "", "9 3", "2 3 8 4 6 2 6", "4"]


def make_translator(toy_model, **options):
    model = toy_model(random_table(6, 14, seed=11), src_scale=2.0, max_positions=6)
    options = {
        "beam": 3,
        "batch_size": 2,
        "chunk_size": 3,
        "max_len_ratio": 1.0,
        "max_len_offset": 2,
        **options,
    }
    return model, Translator(model=model, tokenizer=WordTokenizer(14), **options)


@pytest.mark.parametrize("beam", [1, 3])
def test_order_kept_and_equal_to_one_sentence_search(toy_model, beam, caplog):
    model, translator = make_translator(toy_model, beam=beam, n_best=beam)
    with caplog.at_level(logging.WARNING):
        results = list(translator.translate(iter(LINES)))
    assert len(results) == len(LINES)
    # line 4 has 8 words, more than max_positions = 6: truncated with a warning naming it
    assert any("input line 4" in r.message and "truncated" in r.message for r in caplog.records)
    tok = WordTokenizer(14)
    for line, result in zip(LINES, results, strict=True):
        if not line:
            assert result.text == "" and result.nbest == [("", 0.0)]
            continue
        src = collate_src([tok.encode_src_batch([line])[0][:5]])  # + EOS: 6 positions
        limit = max_output_lengths(src, ratio=1.0, offset=2, max_positions=6)
        if beam == 1:
            expected = [[greedy_search(model, src, max_len=limit)[0]]]
        else:
            expected = beam_search(model, src, beam=3, n_best=3, max_len=limit)
        assert result.tokens == expected[0][0].tokens
        assert result.text == tok.decode_tgt(expected[0][0].tokens)
        assert [t for t, _ in result.nbest] == [tok.decode_tgt(h.tokens) for h in expected[0]]
        assert [s for _, s in result.nbest] == pytest.approx([h.score for h in expected[0]])


def test_alignments_within_sentences(toy_model):
    _, translator = make_translator(toy_model, alignments=True)
    for line, result in zip(LINES, translator.translate(LINES), strict=True):
        n_src, n_tgt = len(line.split()[:5]), len(result.text.split())
        assert len(result.alignment) == n_tgt  # one link per target word (argmax)
        assert all(0 <= i < n_src and 0 <= j < n_tgt for i, j in result.alignment)


def test_align_pairs_follow_the_attention(toy_model):
    # The toy's cross-attention at step t peaks at source position t + previous token id, so
    # after BOS (id 2) target word 0 attends source word 2, and so on.
    _, translator = make_translator(toy_model, alignments=True)
    links = translator.align(["0 0 0 0 0 0", "", "0 0"], ["0 0", "1", ""])
    # target word 0: step 0, prev = BOS (2) -> position 2; word 1: step 1, prev = id 4 -> 5,
    # which is the source's EOS (6 words truncated to 5 + EOS), no word: the nearest word 4 wins
    assert links == [[(2, 0), (4, 1)], [], []]


def test_bad_options(toy_model):
    with pytest.raises(ValueError, match="n-best"):
        make_translator(toy_model, beam=2, n_best=3)
    with pytest.raises(ValueError, match="batch size"):
        make_translator(toy_model, batch_size=0)
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp16", torch.device("cpu"))


def resolve_precision(name, device):
    """The autocast dtype decoding uses for `name` (None: float32)."""
    precision = _resolve(name, device, allowed=DECODE_PRECISIONS, option="precision")
    return None if precision.name == "fp32" else precision.dtype


def test_precision_resolution(monkeypatch):
    import seq2seq.runtime.precision as translate

    monkeypatch.setattr(translate, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", torch.device("cpu")) == torch.bfloat16
    assert resolve_precision("fp32", torch.device("cpu")) is None
    monkeypatch.setattr(translate, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", torch.device("cpu")) is None
    assert resolve_precision("bf16", torch.device("cpu")) == torch.bfloat16  # emulated, warned


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_forced_scores_equal_the_scores_beam_search_reported(toy_model, alpha):
    """Scoring each n-best hypothesis that ended with EOS gives back its log-prob and score."""
    model = toy_model(random_table(8, 14, seed=5), src_scale=2.0, max_positions=12)
    src_ids = WordTokenizer(14).encode_src_batch(LINES)
    options = DecodeOptions(beam=4, n_best=4, length_penalty=alpha, max_len_offset=4)
    found = decode_ids(model, src_ids, options, batch_size=3)
    ended = []
    for src, hyps in zip(src_ids, found, strict=True):
        limit = max_output_lengths(collate_src([src]), ratio=1.5, offset=4, max_positions=12)
        ended += [(src, h) for h in hyps if src and len(h.tokens) < int(limit[0])]
    assert len(ended) >= 10
    scores = score_ids(
        model, [s for s, _ in ended], [h.tokens for _, h in ended], alpha=alpha, batch_size=5
    )
    for (_, hyp), scored in zip(ended, scores, strict=True):
        assert scored.tokens == len(hyp.tokens) + 1
        assert scored.log_prob == pytest.approx(hyp.log_prob, abs=1e-5)
        assert scored.score == pytest.approx(hyp.score, abs=1e-5)
        assert scored.score == pytest.approx(
            scored.log_prob / ((5 + scored.tokens) / 6) ** alpha, rel=1e-12
        )
