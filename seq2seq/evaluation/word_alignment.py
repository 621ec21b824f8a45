"""Word alignments from attention, Pharaoh format, and the alignment error rate (AER).

Attention to alignment: the cross-attention of one layer (averaged over heads, or one head) is
merged from subword pieces into words — the weights of a source word's pieces are summed, the
rows of a target word's pieces averaged — and each target word is linked to the source word it
attends to most (the attention-argmax baseline of Garg et al. 2019, arXiv:1909.02074).

Links are written and read in Pharaoh format by `seq2seq.data.pharaoh` ("i-j": source word i,
target word j, 0-based; gold files may also hold possible links, "ipj" or "i?j").

AER (Och & Ney 2003, "A Systematic Comparison of Various Statistical Alignment Models"), over a
corpus with predicted links A, sure links S and possible links P (S ⊆ P):
    AER = 1 - (|A ∩ S| + |A ∩ P|) / (|A| + |S|)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from seq2seq.data.tokenizer import WORD_START, Tokenizer

__all__ = [
    "AlignmentError",
    "Link",
    "alignment_error_rate",
    "attention_alignment",
    "pieces_to_words",
    "select_attention",
]

Link = tuple[int, int]  # (source word, target word)


class AlignmentError(ValueError):
    """Attention or alignment input that cannot be used; the message says what was expected."""


def select_attention(weights: Tensor, *, layer: int = -1, head: int | None = None) -> Tensor:
    """[L, H, Tq, Tk] -> [Tq, Tk]: one layer (negative counts from the last), one head or the
    mean over heads (head=None)."""
    if weights.dim() != 4:
        raise AlignmentError(
            f"attention: expected [L, H, Tq, Tk], got shape {tuple(weights.shape)}"
        )
    n_layers, n_heads = weights.shape[:2]
    if not -n_layers <= layer < n_layers:
        raise AlignmentError(
            f"align layer: got {layer}, the model has {n_layers} layer(s) "
            f"(valid: 0..{n_layers - 1} or -1..-{n_layers})"
        )
    if head is not None and not -n_heads <= head < n_heads:
        raise AlignmentError(
            f"align head: got {head}, the attention has {n_heads} head(s) "
            f"(valid: 0..{n_heads - 1}, or none for the mean over heads)"
        )
    per_layer = weights[layer].float()
    return per_layer.mean(dim=0) if head is None else per_layer[head]


def pieces_to_words(pieces: Sequence[str]) -> list[int]:
    """Word index of each subword piece, -1 for a piece that is part of no word.

    Words follow `Tokenizer.piece_word_ids` ("▁" starts a word); a word made only of "▁"
    markers (nothing visible after detokenization) is dropped and the later words renumbered,
    so the indices match the whitespace-separated words of the detokenized text.
    """
    ids = Tokenizer.piece_word_ids(pieces)
    visible: dict[int, bool] = {}
    for piece, i in zip(pieces, ids, strict=True):
        visible[i] = visible.get(i, False) or bool(piece.replace(WORD_START, "").strip())
    renumber, n = {}, 0
    for i in sorted(visible):
        if visible[i]:
            renumber[i], n = n, n + 1
    return [renumber.get(i, -1) for i in ids]


def attention_alignment(
    weights: Tensor, src_word_ids: Sequence[int], tgt_word_ids: Sequence[int]
) -> list[Link]:
    """Links (source word, target word) from piece-level cross-attention.

    weights: [Tt, Ts] attention of target pieces (rows) over source pieces (columns); extra
    rows or columns beyond the id lists (EOS step, padding) are ignored.
    src_word_ids: [Ts'] word of each source piece; tgt_word_ids: [Tt'] word of each target
    piece (-1: ignored). Source pieces' weights are summed per word, target rows averaged per
    word; each target word is linked to its highest-weighted source word.
    """
    rows, cols = len(tgt_word_ids), len(src_word_ids)
    if weights.size(0) < rows or weights.size(1) < cols:
        raise AlignmentError(
            f"attention of shape {tuple(weights.shape)} is smaller than the "
            f"{rows} target x {cols} source pieces to align"
        )
    src_ids = torch.tensor(src_word_ids, dtype=torch.long)
    tgt_ids = torch.tensor(tgt_word_ids, dtype=torch.long)
    n_src, n_tgt = max(src_word_ids, default=-1) + 1, max(tgt_word_ids, default=-1) + 1
    if n_src == 0 or n_tgt == 0:
        return []
    w = weights[:rows, :cols].double()
    src_onehot = torch.zeros(cols, n_src, dtype=torch.float64)  # [Ts, Ws]
    keep = src_ids >= 0
    src_onehot[keep.nonzero()[:, 0], src_ids[keep]] = 1.0
    tgt_mean = torch.zeros(n_tgt, rows, dtype=torch.float64)  # [Wt, Tt]
    keep = tgt_ids >= 0
    tgt_mean[tgt_ids[keep], keep.nonzero()[:, 0]] = 1.0
    tgt_mean /= tgt_mean.sum(dim=1, keepdim=True)
    words = tgt_mean @ w @ src_onehot  # [Wt, Ws]
    best = words.argmax(dim=1).tolist()
    return sorted((i, j) for j, i in enumerate(best))


def alignment_error_rate(
    predicted: Sequence[Iterable[Link]],
    sure: Sequence[Iterable[Link]],
    possible: Sequence[Iterable[Link]] | None = None,
) -> float:
    """Corpus AER (Och & Ney 2003) of predicted links against gold sure/possible links.

    All arguments hold one collection of links per sentence pair; `possible` defaults to the
    sure links (and always includes them). Returns a value in [0, 1]; 0 for an empty corpus
    with nothing predicted.
    """
    possible = possible if possible is not None else sure
    if not len(predicted) == len(sure) == len(possible):
        raise AlignmentError(
            f"AER: got {len(predicted)} predicted alignments for {len(sure)} gold sure and "
            f"{len(possible)} possible alignments; expected equal counts"
        )
    n_a = n_s = a_s = a_p = 0
    for a, s, p in zip(predicted, sure, possible, strict=True):
        a, s = set(a), set(s)
        p = set(p) | s
        n_a, n_s = n_a + len(a), n_s + len(s)
        a_s, a_p = a_s + len(a & s), a_p + len(a & p)
    if n_a + n_s == 0:
        return 0.0
    return 1.0 - (a_s + a_p) / (n_a + n_s)
