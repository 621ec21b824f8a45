"""Attention diagnostics of validation: entropy of the cross-attention rows and the weight on
the source's </s>, checked on a hand-made batch."""

from __future__ import annotations

import math

import pytest
import torch

from seq2seq.data import collate
from seq2seq.training.validation import cross_attention_stats
from seq2seq.vocab import EOS_ID


def test_stats_read_the_source_eos_column_and_skip_padded_rows():
    # two pairs: sources of 2 and 1 tokens (+ </s>), targets of 1 and 0 tokens (+ </s>)
    batch = collate([([5, 6], [7]), ([8], [])])
    assert batch.src.tolist()[1][1] == EOS_ID  # the short source's </s> sits at position 1
    b, layers, heads, t, s = 2, 1, 1, batch.tgt_out.size(1), batch.src.size(1)
    weights = torch.zeros(b, layers, heads, t, s)
    weights[0, 0, 0, 0] = torch.tensor([0.5, 0.25, 0.25])  # pair 0, target token 7
    weights[0, 0, 0, 1] = torch.tensor([0.0, 0.0, 1.0])  # pair 0, </s> step: all on </s>
    weights[1, 0, 0, 0] = torch.tensor([0.5, 0.5, 0.0])  # pair 1, </s> step: half on </s>
    weights[1, 0, 0, 1] = torch.tensor([0.2, 0.2, 0.6])  # pair 1, a padded row: ignored
    entropy, eos, rows = cross_attention_stats(weights, batch.src, batch.tgt_out)
    assert rows == 3
    row0 = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert entropy == pytest.approx(row0 + 0.0 + math.log(2))
    assert eos == pytest.approx(0.25 + 1.0 + 0.5)
