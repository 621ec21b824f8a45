"""Several trained models decoding as one: their log-probabilities averaged at each step.

An :class:`Ensemble` implements the stepping interface of `Seq2Seq` (``encode``,
``init_state``, ``step``, ``forward``), so greedy search, beam search, sampling and forced
scoring run on it unchanged. At each step every member computes its next-token
log-probabilities; the ensemble's logits are their mean, log(prod_i p_i) / n, which the
search normalises again: the ensemble's distribution is the normalised geometric mean of the
members' (as in Marian and OpenNMT-py; fairseq averages the probabilities instead). Members
must share the target vocabulary (the runs' subword model, checked by its SHA-256 when loaded)
and may differ in architecture and attention type. Attention weights, where asked for, are the
first member's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from torch import Tensor, nn

from seq2seq.models.base import DecoderState, Seq2Seq

__all__ = ["Ensemble", "EnsembleError"]


class EnsembleError(ValueError):
    """Models that cannot decode together: the message names them and why."""


class EnsembleEncoded(NamedTuple):
    members: tuple  # each member's Encoded
    weights: dict[str, Tensor]  # the first member's encoder self-attention, when asked for


@dataclass
class EnsembleState:
    """The decoder state of every member, selected together."""

    members: tuple

    def select(self, index: Tensor) -> EnsembleState:
        return EnsembleState(tuple(state.select(index) for state in self.members))


class Ensemble(nn.Module):
    """Members decoding together; see the module docstring."""

    def __init__(self, members: Sequence[Seq2Seq]) -> None:
        super().__init__()
        if len(members) < 2:
            raise EnsembleError(f"an ensemble needs at least 2 models, got {len(members)}")
        vocab = {(m.src_vocab_size, m.tgt_vocab_size) for m in members}
        if len(vocab) > 1:
            raise EnsembleError(
                f"ensemble members have different vocabulary sizes (source, target): {vocab}"
            )
        self.members = nn.ModuleList(members)
        self.slots = tuple(members[0].slots)
        self.max_positions = min(int(m.max_positions) for m in members)
        self.src_vocab_size, self.tgt_vocab_size = vocab.pop()

    def encode(self, src: Tensor, need_weights: bool = False) -> EnsembleEncoded:
        encoded = tuple(
            m.encode(src, need_weights=need_weights and i == 0) for i, m in enumerate(self.members)
        )
        return EnsembleEncoded(members=encoded, weights=dict(encoded[0].weights))

    def init_state(self, encoded: EnsembleEncoded, beam: int = 1) -> EnsembleState:
        return EnsembleState(
            tuple(
                m.init_state(e, beam=beam)
                for m, e in zip(self.members, encoded.members, strict=True)
            )
        )

    def step(
        self, prev_tokens: Tensor, state: DecoderState, need_weights: bool = False
    ) -> tuple[Tensor, EnsembleState, dict[str, Tensor]]:
        """prev_tokens [B] -> mean log-probabilities [B, V] (float32), new state, the first
        member's weights {slot: [B, L, H, Tk]} when asked for."""
        total, states, weights = None, [], {}
        for i, (model, member) in enumerate(zip(self.members, state.members, strict=True)):
            logits, new, w = model.step(prev_tokens, member, need_weights=need_weights and i == 0)
            log_probs = logits.float().log_softmax(dim=-1)
            total = log_probs if total is None else total + log_probs
            states.append(new)
            weights = weights or w
        return total / len(self.members), EnsembleState(tuple(states)), weights

    def forward(
        self, src: Tensor, tgt_in: Tensor, need_weights: bool = False
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Teacher forcing: mean log-probabilities [B, T, V] and the first member's weights."""
        total, weights = None, {}
        for i, model in enumerate(self.members):
            logits, w = model(src, tgt_in, need_weights=need_weights and i == 0)
            log_probs = logits.float().log_softmax(dim=-1)
            total = log_probs if total is None else total + log_probs
            weights = weights or w
        return total / len(self.members), weights


def check_same_vocabulary(hashes: Sequence[dict[str, str]], names: Sequence[str]) -> None:
    """Refuse members trained with different subword models (their files' SHA-256)."""
    first = hashes[0]
    for name, other in zip(names[1:], hashes[1:], strict=True):
        if set(other.values()) != set(first.values()):
            raise EnsembleError(
                f"ensemble: {name} was trained with another subword model than {names[0]} "
                f"(SHA-256 {_short(other)} vs {_short(first)}); ensemble members must share "
                "the subword model, as their output distributions are averaged token by token"
            )


def _short(hashes: dict[str, str]) -> str:
    return ", ".join(f"{file} {digest[:12]}..." for file, digest in sorted(hashes.items()))
