"""Subword-to-word merging of attention matrices and their labels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from seq2seq.viz.common import PlotError, to_numpy
from seq2seq.vocab import BOS, EOS, PAD

WORD_START = "\u2581"  # sentencepiece's "▁": the piece begins a new word
SPECIAL_PIECES = frozenset({BOS, EOS, PAD})


def default_piece_word_ids(pieces: Sequence[str]) -> list[int]:
    """Word index of each piece: a piece starting with "▁" starts a new word."""
    ids: list[int] = []
    for i, piece in enumerate(pieces):
        ids.append(0 if i == 0 else ids[-1] + int(piece.startswith(WORD_START)))
    return ids


def word_ids(
    pieces: Sequence[str],
    piece_word_ids: Callable[[Sequence[str]], Sequence[int]] | None = None,
) -> list[int]:
    """Word index of each piece, with every special token (<s>, </s>, <pad>) a word of its own.

    `piece_word_ids` (e.g. `Tokenizer.piece_word_ids`) maps a run of ordinary pieces to word
    indices starting at 0; the default uses the "▁ starts a word" rule of sentencepiece.
    """
    piece_word_ids = piece_word_ids or default_piece_word_ids
    ids: list[int] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            offset = ids[-1] + 1 if ids else 0
            ids.extend(offset + int(i) for i in piece_word_ids(run))
            run.clear()

    for piece in pieces:
        if piece in SPECIAL_PIECES:
            flush()
            ids.append(ids[-1] + 1 if ids else 0)
        else:
            run.append(piece)
    flush()
    return ids


def merge_labels(pieces: Sequence[str], ids: Sequence[int]) -> list[str]:
    """Join the pieces of each word into one label, dropping the "▁" word-start markers."""
    _check_ids(ids, len(pieces), "word ids of labels")
    words: list[str] = [""] * (max(ids) + 1) if ids else []
    for piece, i in zip(pieces, ids, strict=True):
        words[i] += piece if piece in SPECIAL_PIECES else piece.replace(WORD_START, "")
    return words


def merge_to_words(
    weights: Any, src_word_ids: Sequence[int], tgt_word_ids: Sequence[int]
) -> np.ndarray:
    """Merge subword attention into word attention.

    weights: [..., Tt, Ts] (tensor or array), rows are queries, columns keys.
    src_word_ids: [Ts] word index of each column; tgt_word_ids: [Tt] word index of each row.
    Returns [..., Wt, Ws] (float64 numpy): the weights of the source pieces of a word are
    summed (so a row still sums to what it summed to before) and the rows of the target pieces
    of a word are averaged. Word indices must be 0, 1, ... in order without gaps.
    For self-attention pass the same side's word ids for both arguments.
    """
    array = to_numpy(weights)
    if array.ndim < 2:
        raise PlotError(f"weights: expected [..., Tt, Ts], got shape {tuple(array.shape)}")
    tt, ts = array.shape[-2:]
    _check_ids(src_word_ids, ts, "src_word_ids")
    _check_ids(tgt_word_ids, tt, "tgt_word_ids")
    src_sum = np.zeros((ts, max(src_word_ids) + 1))  # [Ts, Ws] one-hot
    src_sum[np.arange(ts), src_word_ids] = 1.0
    tgt_mean = np.zeros((max(tgt_word_ids) + 1, tt))  # [Wt, Tt] rows average a word's pieces
    tgt_mean[tgt_word_ids, np.arange(tt)] = 1.0
    tgt_mean /= tgt_mean.sum(axis=1, keepdims=True)
    return tgt_mean @ array @ src_sum


def _check_ids(ids: Sequence[int], size: int, name: str) -> None:
    if len(ids) != size:
        raise PlotError(f"{name}: got {len(ids)} ids for a matrix axis of size {size}")
    expected = 0
    for position, i in enumerate(ids):
        if i not in (expected, expected + 1) or (position == 0 and i != 0):
            raise PlotError(
                f"{name}: word ids must start at 0 and increase by 0 or 1, got {list(ids)}"
            )
        expected = i
