"""The attention of one sentence pair, with the labels of each matrix axis."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seq2seq.viz.common import PlotError, check_labels, to_numpy
from seq2seq.viz.words import merge_labels, merge_to_words, word_ids
from seq2seq.vocab import BOS

SLOTS: tuple[str, ...] = ("cross", "encoder_self", "decoder_self")
SLOT_TITLES = {
    "cross": "cross-attention",
    "encoder_self": "encoder self-attention",
    "decoder_self": "decoder self-attention",
}


@dataclass
class AttentionExample:
    """Attention weights of one sentence pair.

    src_pieces: source pieces as fed to the encoder (columns of cross and encoder_self).
    tgt_pieces: target pieces the decoder produced, one per decoder step, usually ending with
        "</s>" (rows of cross and decoder_self).
    weights: {slot: [L, H, Tq, Tk]} tensors or arrays; cross is tgt x src, encoder_self is
        src x src, decoder_self is tgt x decoder inputs ("<s>" followed by tgt_pieces[:-1]).
    """

    src_pieces: list[str]
    tgt_pieces: list[str]
    weights: dict[str, Any] = field(default_factory=dict)
    title: str | None = None
    tgt_in_pieces: list[str] | None = None  # decoder input labels, when not derivable

    def tgt_input_pieces(self) -> list[str]:
        """Labels of the decoder inputs: "<s>" then every produced piece but the last."""
        if self.tgt_in_pieces is not None:
            return list(self.tgt_in_pieces)
        return [BOS, *self.tgt_pieces[:-1]]

    def labels(self, slot: str) -> tuple[list[str], list[str]]:
        """(row labels, column labels) of the matrices of `slot`."""
        if slot == "cross":
            return list(self.tgt_pieces), list(self.src_pieces)
        if slot == "encoder_self":
            return list(self.src_pieces), list(self.src_pieces)
        if slot == "decoder_self":
            return list(self.tgt_pieces), self.tgt_input_pieces()
        raise PlotError(f"unknown attention slot {slot!r}, expected one of {', '.join(SLOTS)}")

    def matrices(self, slot: str) -> np.ndarray:
        """The [L, H, Tq, Tk] float64 array of `slot`, checked against the labels."""
        if slot not in self.weights:
            raise PlotError(
                f"no {slot!r} attention for this sentence; available slots: "
                f"{', '.join(self.weights) or '(none)'}"
            )
        array = to_numpy(self.weights[slot], name=f"{slot} weights", ndim=4)
        rows, cols = self.labels(slot)
        check_labels(rows, array.shape[-2], f"{slot} row labels")
        check_labels(cols, array.shape[-1], f"{slot} column labels")
        return array

    def to_words(
        self, piece_word_ids: Callable[[Sequence[str]], Sequence[int]] | None = None
    ) -> AttentionExample:
        """The same example with subword pieces merged into words (see `merge_to_words`)."""
        src_ids = word_ids(self.src_pieces, piece_word_ids)
        tgt_ids = word_ids(self.tgt_pieces, piece_word_ids)
        tgt_in_ids = word_ids(self.tgt_input_pieces(), piece_word_ids)
        ids = {
            "cross": (tgt_ids, src_ids),
            "encoder_self": (src_ids, src_ids),
            "decoder_self": (tgt_ids, tgt_in_ids),
        }
        weights = {}
        for slot in self.weights:
            array = self.matrices(slot)  # checks the slot name and the shapes
            rows, cols = ids[slot]
            weights[slot] = merge_to_words(array, cols, rows)
        return AttentionExample(
            src_pieces=merge_labels(self.src_pieces, src_ids),
            tgt_pieces=merge_labels(self.tgt_pieces, tgt_ids),
            weights=weights,
            title=self.title,
            tgt_in_pieces=merge_labels(self.tgt_input_pieces(), tgt_in_ids),
        )


def as_example(item: AttentionExample | Mapping[str, Any]) -> AttentionExample:
    """Accept an AttentionExample or a mapping with keys src, tgt, weights (and title)."""
    if isinstance(item, AttentionExample):
        return item
    if isinstance(item, Mapping):
        missing = {"src", "tgt", "weights"} - set(item)
        if missing:
            raise PlotError(f"attention item lacks keys {sorted(missing)}; got {sorted(item)}")
        return AttentionExample(
            src_pieces=list(item["src"]),
            tgt_pieces=list(item["tgt"]),
            weights=dict(item["weights"]),
            title=item.get("title"),
        )
    raise TypeError(f"expected an AttentionExample or a mapping, got {type(item).__name__}")
