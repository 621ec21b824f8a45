"""Word alignments from attention, Pharaoh parsing and AER on hand-made cases."""

from __future__ import annotations

import pytest
import torch

from seq2seq.data.pharaoh import format_alignment as format_pharaoh
from seq2seq.data.pharaoh import parse_alignment as parse_pharaoh
from seq2seq.evaluation import (
    alignment_error_rate,
    attention_alignment,
    pieces_to_words,
    select_attention,
)


def test_aer_hand_computed():
    # Sentence 1: S = {0-0, 1-1}, P = S + {1-2}, A = {0-0, 1-2, 2-2}
    #   |A| = 3, |S| = 2, |A & S| = 1 (0-0), |A & P| = 2 (0-0, 1-2)
    #   AER = 1 - (1 + 2) / (3 + 2) = 0.4
    a1, s1, p1 = {(0, 0), (1, 2), (2, 2)}, {(0, 0), (1, 1)}, {(1, 2)}
    assert alignment_error_rate([a1], [s1], [p1]) == pytest.approx(0.4)
    # Sentence 2: S = P = {0-1}, A = {0-1}: adds 1 to every count.
    #   corpus AER = 1 - (2 + 3) / (4 + 3) = 2/7
    a2, s2 = {(0, 1)}, {(0, 1)}
    assert alignment_error_rate([a1, a2], [s1, s2], [p1, s2]) == pytest.approx(2 / 7)
    # A = S is perfect whatever P holds; A = {} is AER 1; nothing anywhere is 0
    assert alignment_error_rate([s1], [s1], [p1]) == 0.0
    assert alignment_error_rate([set()], [s1]) == 1.0
    assert alignment_error_rate([set()], [set()]) == 0.0
    with pytest.raises(ValueError, match="equal counts"):
        alignment_error_rate([a1, a2], [s1])


def test_parse_and_format_pharaoh():
    sure, possible = parse_pharaoh("0-0 1p2 3?1 2-2")
    assert sure == {(0, 0), (2, 2)}
    assert possible == {(0, 0), (2, 2), (1, 2), (3, 1)}
    assert format_pharaoh([(2, 1), (0, 0), (1, 3), (0, 0)]) == "0-0 1-3 2-1"
    assert parse_pharaoh("") == (set(), set())
    with pytest.raises(ValueError, match=r"gold.txt, line 3: bad link '1x2'"):
        parse_pharaoh("0-0 1x2", where="gold.txt, line 3")


def test_pieces_to_words():
    assert pieces_to_words(["▁un", "believ", "able", "▁story"]) == [0, 0, 0, 1]
    # a lone "▁" followed by punctuation forms a word; a trailing lone "▁" forms none
    assert pieces_to_words(["▁Hi", "▁", ",", "▁you", "▁"]) == [0, 1, 1, 2, -1]
    assert pieces_to_words([]) == []


def test_attention_alignment_merges_pieces():
    src_words = pieces_to_words(["▁un", "believ", "able", "▁story"])  # [0, 0, 0, 1]
    tgt_words = pieces_to_words(["▁Geschichte", "▁un", "glaub", "lich"])  # [0, 1, 1, 1]
    weights = torch.tensor(
        [
            # tgt word 0: the largest single piece weight is on "▁story" (0.4), but the three
            # pieces of "unbelievable" sum to 0.6, so the word goes to source word 0.
            [0.2, 0.2, 0.2, 0.4],
            # tgt word 1, three pieces with per-row source-word sums [0.3, 0.7], [0.1, 0.9] and
            # [0.9, 0.1]: averaged [0.433, 0.567] -> source word 1
            [0.1, 0.1, 0.1, 0.7],
            [0.05, 0.05, 0.0, 0.9],
            [0.5, 0.3, 0.1, 0.1],
            [0.0, 0.0, 0.0, 1.0],  # the EOS step: ignored
        ]
    )
    assert attention_alignment(weights, src_words, tgt_words) == [(0, 0), (1, 1)]
    # with only the last of those rows as target word 1: [0.9, 0.1] -> source word 0
    assert attention_alignment(weights[[0, 3]], src_words, [0, 1]) == [(0, 0), (0, 1)]
    assert attention_alignment(weights, src_words, []) == []
    with pytest.raises(ValueError, match="smaller"):
        attention_alignment(weights[:2], src_words, tgt_words)


def test_select_attention():
    w = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)  # [L, H, Tq, Tk]
    torch.testing.assert_close(select_attention(w), w[-1].mean(0))
    torch.testing.assert_close(select_attention(w, layer=0, head=2), w[0, 2])
    with pytest.raises(ValueError, match="2 layer"):
        select_attention(w, layer=2)
    with pytest.raises(ValueError, match="3 head"):
        select_attention(w, head=3)
