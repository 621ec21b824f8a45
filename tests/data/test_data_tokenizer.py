"""Sentencepiece tokenizer: training, files, special ids, round trips, word grouping."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from seq2seq.data import DataError, Tokenizer
from seq2seq.data.io import TextStream
from seq2seq.data.tokenizer import (
    JOINT_MODEL,
    SRC_MODEL,
    TGT_MODEL,
    sample_indices,
)
from seq2seq.demo.corpus import generate_examples
from seq2seq.vocab import BOS, BOS_ID, EOS, EOS_ID, PAD, PAD_ID, UNK


@dataclass
class TokCfg:  # the fields of seq2seq.config.TokenizerConfig that Tokenizer.train reads
    type: str = "unigram"
    vocab_size: int = 200
    joint: bool = True
    character_coverage: float = 1.0
    sample_sentences: int = 1_000_000


@pytest.fixture(scope="module")
def corpus():
    examples = generate_examples(400, seed=11)
    return [e.en for e in examples], [e.de for e in examples]


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
@pytest.mark.parametrize("joint", [True, False])
def test_train_save_load_round_trip(tmp_path, corpus, model_type, joint):
    src, tgt = corpus
    cfg = TokCfg(type=model_type, joint=joint)
    tok = Tokenizer.train(cfg, src, tgt, tmp_path)
    expected = {JOINT_MODEL} if joint else {SRC_MODEL, TGT_MODEL}
    assert {p.name for p in tmp_path.iterdir()} == expected  # no temporary files left
    assert tok.joint is joint
    assert tok.src_vocab_size == tok.tgt_vocab_size == 200
    for pieces in (tok.src_pieces(range(4)), tok.tgt_pieces(range(4))):
        assert pieces == [PAD, UNK, BOS, EOS]
    for line in src[:50]:
        ids = tok.encode_src(line)
        assert BOS_ID not in ids and EOS_ID not in ids and PAD_ID not in ids
        assert tok.decode_src(ids) == line
    for line in tgt[:50]:
        assert tok.decode_tgt(tok.encode_tgt(line)) == line
    loaded = Tokenizer.load(tmp_path)
    assert loaded.joint is joint
    assert (loaded.src_vocab_size, loaded.tgt_vocab_size) == (tok.src_vocab_size, 200)
    assert loaded.encode_src_batch(src[:20]) == [tok.encode_src(s) for s in src[:20]]
    assert loaded.encode_tgt_batch(tgt[:20]) == [tok.encode_tgt(t) for t in tgt[:20]]
    again = Tokenizer.from_bytes(tok.to_bytes())
    assert again.encode_tgt(tgt[0]) == tok.encode_tgt(tgt[0])


def test_joint_model_shares_pieces_and_separate_models_differ(tmp_path, corpus):
    src, tgt = corpus
    joint = Tokenizer.train(TokCfg(joint=True), src, tgt, tmp_path / "joint")
    word = "Katzen"
    assert joint.encode_src(word) == joint.encode_tgt(word)
    separate = Tokenizer.train(TokCfg(joint=False), src, tgt, tmp_path / "sep")
    assert separate.src_pieces(range(200)) != separate.tgt_pieces(range(200))


def test_training_is_deterministic_by_seed_and_uses_the_sample(tmp_path, corpus):
    src, tgt = corpus
    cfg = TokCfg(vocab_size=150, sample_sentences=300)
    first = Tokenizer.train(cfg, src, tgt, seed=3).to_bytes()
    assert Tokenizer.train(cfg, src, tgt, seed=3).to_bytes() == first
    assert Tokenizer.train(cfg, src, tgt, seed=4).to_bytes() != first
    whole = Tokenizer.train(TokCfg(vocab_size=150), src, tgt, seed=3).to_bytes()
    assert whole != first  # 300 of the 800 lines: another model


def test_a_streamed_file_gives_the_same_sample_as_its_lines(tmp_path, corpus):
    src, tgt = corpus
    (tmp_path / "src.txt").write_text("\n".join(src) + "\n", encoding="utf-8")
    (tmp_path / "tgt.txt").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    streams = [TextStream(tmp_path / "src.txt", block_bytes=999), TextStream(tmp_path / "tgt.txt")]
    for stream in streams:
        for _ in stream:  # the first pass counts the lines
            pass
    cfg = TokCfg(vocab_size=150, sample_sentences=300)
    streamed = Tokenizer.train(cfg, *streams, seed=3)
    assert streamed.to_bytes() == Tokenizer.train(cfg, src, tgt, seed=3).to_bytes()
    assert streams[0].take([0, 5, 399]) == [src[0], src[5], src[399]]


def test_sample_indices_are_uniform_distinct_and_ordered():
    n, k, trials = 40, 8, 4000
    counts = np.zeros(n)
    for seed in range(trials):
        chosen = sample_indices(n, k, seed)
        assert len(set(chosen.tolist())) == k and chosen.tolist() == sorted(chosen.tolist())
        counts[chosen] += 1
    expected = trials * k / n  # 800; binomial sd = sqrt(800 * 0.8) ~ 28
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 80  # 39 degrees of freedom: p(chi2 > 80) < 1e-4 for a uniform draw
    assert sample_indices(5, 8, seed=1).tolist() == [0, 1, 2, 3, 4]
    assert sample_indices(100, 8, seed=1).tolist() == sample_indices(100, 8, seed=1).tolist()


def test_decode_stops_at_eos_and_drops_specials(tmp_path, corpus):
    src, tgt = corpus
    tok = Tokenizer.train(TokCfg(), src, tgt, tmp_path)
    ids = tok.encode_tgt(tgt[3])
    junk = tok.encode_tgt(tgt[4])
    assert tok.decode_tgt([BOS_ID, *ids, EOS_ID, *junk, PAD_ID]) == tgt[3]
    assert tok.decode_tgt(torch.tensor([BOS_ID, *ids, EOS_ID, PAD_ID])) == tgt[3]
    assert tok.decode_tgt([EOS_ID, *ids]) == ""


def test_too_large_vocab_falls_back_with_a_warning(tmp_path, corpus, caplog):
    src, tgt = corpus
    with caplog.at_level(logging.WARNING):
        tok = Tokenizer.train(TokCfg(vocab_size=50_000), src[:50], tgt[:50], tmp_path)
    assert 16 <= tok.src_vocab_size < 50_000
    assert "data.tokenizer.vocab_size" in caplog.text
    line = tgt[0]
    assert tok.decode_tgt(tok.encode_tgt(line)) == line


def test_too_small_vocab_is_a_clear_error(tmp_path, corpus):
    src, tgt = corpus
    with pytest.raises(DataError, match=r"data\.tokenizer\.vocab_size=16 is too small"):
        Tokenizer.train(TokCfg(vocab_size=16), src, tgt, tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_load_errors_and_layout_switch(tmp_path, corpus):
    with pytest.raises(DataError, match="no subword model"):
        Tokenizer.load(tmp_path)
    (tmp_path / JOINT_MODEL).write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a valid sentencepiece model"):
        Tokenizer.load(tmp_path)
    src, tgt = corpus
    Tokenizer.train(TokCfg(joint=False), src, tgt, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {SRC_MODEL, TGT_MODEL}  # stale joint removed
    assert Tokenizer.load(tmp_path).joint is False


def test_piece_word_ids_hand_cases():
    ids = Tokenizer.piece_word_ids
    assert ids([]) == []
    assert ids(["▁the", "▁ca", "t", "s", "."]) == [0, 1, 1, 1, 1]
    assert ids(["un", "known", "▁x"]) == [0, 0, 1]  # the first piece starts word 0
    assert ids(["▁", "2", "0", "▁am"]) == [0, 0, 0, 1]
    assert ids([BOS, "▁a", "b", EOS, PAD]) == [0, 1, 1, 2, 3]
    assert ids(["▁a", EOS, "b"]) == [0, 1, 2]
    assert Tokenizer.words(["▁the", "▁ca", "t", "s", "."]) == ["the", "cats."]
    assert Tokenizer.words(["▁a", "b", EOS]) == ["ab", EOS]
    assert Tokenizer.words(["▁x", UNK, "y"]) == ["x<unk>y"]


def test_words_of_pieces_are_the_whitespace_words(tmp_path, corpus):
    """Word grouping of real pieces equals str.split(), the unit of the gold alignments."""
    src, tgt = corpus
    tok = Tokenizer.train(TokCfg(type="bpe", joint=False), src, tgt, tmp_path)
    for line in src[:100]:
        pieces = tok.src_pieces(tok.encode_src(line))
        assert Tokenizer.words(pieces) == line.split()
        assert max(Tokenizer.piece_word_ids(pieces)) == len(line.split()) - 1
    for line in tgt[:100]:
        assert Tokenizer.words(tok.tgt_pieces(tok.encode_tgt(line))) == line.split()
