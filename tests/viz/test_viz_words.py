"""Merging subword attention into words, and the axes of each attention slot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seq2seq.viz import AttentionExample, merge_labels, merge_to_words, word_ids


def test_merge_to_words_hand_case():
    # target pieces: ▁je | ▁t ' aime   -> words: je, t'aime
    # source pieces: ▁I | ▁lo ve | ▁you -> words: I, love, you
    w = np.array(
        [
            [0.7, 0.1, 0.1, 0.1],
            [0.0, 0.2, 0.2, 0.6],
            [0.1, 0.1, 0.0, 0.8],
            [0.2, 0.3, 0.3, 0.2],
        ]
    )
    merged = merge_to_words(w, src_word_ids=[0, 1, 1, 2], tgt_word_ids=[0, 1, 1, 1])
    expected = np.array(
        [
            [0.7, 0.2, 0.1],
            [(0.0 + 0.1 + 0.2) / 3, (0.4 + 0.1 + 0.6) / 3, (0.6 + 0.8 + 0.2) / 3],
        ]
    )
    np.testing.assert_allclose(merged, expected)
    np.testing.assert_allclose(merged.sum(-1), 1.0)  # rows still sum to 1


def test_merge_to_words_batched_tensor_rows_sum_to_one():
    w = torch.rand(2, 3, 5, 6).softmax(-1)  # [L, H, Tt, Ts]
    src_ids, tgt_ids = [0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 3]
    merged = merge_to_words(w, src_ids, tgt_ids)
    assert merged.shape == (2, 3, 4, 3)
    np.testing.assert_allclose(merged.sum(-1), 1.0, rtol=1e-6)
    # against an explicit float64 loop
    ref = np.zeros((2, 3, 4, 3))
    counts = np.bincount(tgt_ids)
    for i, wi in enumerate(tgt_ids):
        for j, wj in enumerate(src_ids):
            ref[..., wi, wj] += w[..., i, j].double().numpy() / counts[wi]
    np.testing.assert_allclose(merged, ref, rtol=1e-6)


def test_merge_identity_when_every_piece_is_a_word():
    w = np.random.default_rng(1).random((3, 4))
    np.testing.assert_allclose(merge_to_words(w, [0, 1, 2, 3], [0, 1, 2]), w)


@pytest.mark.parametrize(
    ("src_ids", "tgt_ids", "message"),
    [
        ([0, 1], [0, 1], "src_ids|src_word_ids: got 2 ids"),
        ([0, 0, 2], [0, 1], "increase by 0 or 1"),
        ([1, 1, 2], [0, 1], "start at 0"),
        ([0, 1, 2], [0], "tgt_word_ids: got 1 ids"),
    ],
)
def test_merge_bad_word_ids(src_ids, tgt_ids, message):
    with pytest.raises(ValueError, match=message):
        merge_to_words(np.ones((2, 3)), src_ids, tgt_ids)


def test_word_ids_and_labels_with_special_tokens():
    pieces = ["<s>", "▁je", "▁t", "'", "aime", "</s>"]
    ids = word_ids(pieces)
    assert ids == [0, 1, 2, 2, 2, 3]
    assert merge_labels(pieces, ids) == ["<s>", "je", "t'aime", "</s>"]
    # a special token never glues to a neighbour, even without a "▁" after it
    assert word_ids(["ab", "</s>", "cd"]) == [0, 1, 2]


def test_word_ids_match_the_tokenizer_rule():
    from seq2seq.data.tokenizer import Tokenizer

    for pieces in (["▁I", "▁lo", "ve", "</s>"], ["<s>", "x", "▁y", "z"], ["a", "▁b"]):
        assert word_ids(pieces, Tokenizer.piece_word_ids) == Tokenizer.piece_word_ids(pieces)
        assert word_ids(pieces) == Tokenizer.piece_word_ids(pieces)
        assert merge_labels(pieces, word_ids(pieces)) == Tokenizer.words(pieces)


def _example():
    rng = np.random.default_rng(3)
    src = ["▁I", "▁lo", "ve", "▁you"]
    tgt = ["▁je", "▁t", "'", "aime", "</s>"]

    def soft(*shape):
        e = np.exp(rng.normal(size=shape))
        return e / e.sum(-1, keepdims=True)

    causal = np.tril(np.ones((5, 5)))
    dec = soft(2, 2, 5, 5) * causal
    dec /= dec.sum(-1, keepdims=True)
    weights = {"cross": soft(2, 2, 5, 4), "encoder_self": soft(2, 2, 4, 4), "decoder_self": dec}
    return AttentionExample(src_pieces=src, tgt_pieces=tgt, weights=weights, title="I love you")


def test_example_labels_per_slot():
    example = _example()
    assert example.labels("cross") == (example.tgt_pieces, example.src_pieces)
    assert example.labels("encoder_self") == (example.src_pieces, example.src_pieces)
    rows, cols = example.labels("decoder_self")
    assert rows == example.tgt_pieces and cols == ["<s>", "▁je", "▁t", "'", "aime"]
    with pytest.raises(ValueError, match="unknown attention slot 'crosss'"):
        example.labels("crosss")
    with pytest.raises(
        ValueError, match="cross row labels: got 4 labels for a matrix axis of size 5"
    ):
        AttentionExample(["a"], ["x"] * 4, {"cross": np.ones((1, 1, 5, 1))}).matrices("cross")


def test_example_to_words():
    example = _example()
    words = example.to_words()
    assert words.src_pieces == ["I", "love", "you"]
    assert words.tgt_pieces == ["je", "t'aime", "</s>"]
    assert words.labels("decoder_self")[1] == ["<s>", "je", "t'aime"]
    np.testing.assert_allclose(
        words.weights["cross"],
        merge_to_words(example.weights["cross"], [0, 1, 1, 2], [0, 1, 1, 1, 2]),
    )
    np.testing.assert_allclose(
        words.weights["decoder_self"],
        merge_to_words(example.weights["decoder_self"], [0, 1, 2, 2, 2], [0, 1, 1, 1, 2]),
    )
    for slot in ("cross", "encoder_self", "decoder_self"):
        np.testing.assert_allclose(words.matrices(slot).sum(-1), 1.0)
    # causality survives merging: the first output word ("je", read from <s>) sees only <s>
    np.testing.assert_allclose(words.weights["decoder_self"][..., 0, 0], 1.0)
