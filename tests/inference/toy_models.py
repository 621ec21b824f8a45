"""A tiny deterministic model implementing the Seq2Seq stepping interface, for search tests.

The next-token distribution is a table lookup: log_probs[min(t, T-1), prev] plus an optional
per-sentence bias computed from the source. No caches, no learned parts: the best sequences can
be computed by hand or by enumeration, independently of the search code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from seq2seq.models.base import beam_rows
from seq2seq.vocab import PAD_ID


class ToyEncoded(NamedTuple):
    states: Tensor  # [B, S, 1]
    src_mask: Tensor  # [B, S]
    weights: dict[str, Tensor]


@dataclass
class ToyState:
    bias: Tensor  # [R, V]
    src_mask: Tensor  # [R, S]
    step: Tensor  # [R] number of steps taken

    def select(self, index: Tensor) -> ToyState:
        return ToyState(self.bias[index], self.src_mask[index], self.step[index])


class ToyModel(nn.Module):
    """logits(t, prev | src) = table[min(t, T-1), prev] + src_scale * mean(src_emb[src]).

    Attention (one layer, one head): cross peaks at source position t + prev; decoder_self
    depends on the previous token; encoder_self is the identity. Counts the rows of every step call.
    """

    slots = ("encoder_self", "decoder_self", "cross")

    def __init__(
        self,
        table: Tensor,
        *,
        src_scale: float = 0.0,
        src_vocab: int = 16,
        max_positions: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.table = table.float()  # [T, V, V] logits of the next token given step and prev
        self.vocab = table.size(-1)
        g = torch.Generator().manual_seed(seed)
        self.src_emb = torch.randn(src_vocab, self.vocab, generator=g) * src_scale
        self.max_positions = max_positions
        self.src_vocab_size, self.tgt_vocab_size = src_vocab, self.vocab
        self.step_rows: list[int] = []

    def encode(self, src: Tensor, need_weights: bool = False) -> ToyEncoded:
        mask = src != PAD_ID
        emb = self.src_emb[src] * mask[..., None]
        bias = emb.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        weights = {}
        if need_weights:
            eye = torch.eye(src.size(1))[None, None, None].expand(src.size(0), 1, 1, -1, -1)
            weights["encoder_self"] = eye * mask[:, None, None, None, :]
        return ToyEncoded(bias[:, :, None], mask, weights)

    def init_state(self, encoded: ToyEncoded, beam: int = 1) -> ToyState:
        n = encoded.states.size(0)
        state = ToyState(
            encoded.states[:, :, 0], encoded.src_mask, torch.zeros(n, dtype=torch.long)
        )
        return state.select(beam_rows(n, beam))

    def _logits(self, t: Tensor, prev: Tensor, bias: Tensor) -> Tensor:
        t = t.clamp(max=self.table.size(0) - 1)
        return self.table[t, prev] + bias

    def _cross(self, t: Tensor, prev: Tensor, src_mask: Tensor) -> Tensor:
        """[R, S]: peaks at source position t + prev, so it depends on the path taken."""
        pos = torch.arange(src_mask.size(1)).float()
        score = -((pos[None] - (t + prev)[:, None].float()) ** 2) / 4.0
        return score.masked_fill(~src_mask, float("-inf")).softmax(-1).nan_to_num(0.0)

    @staticmethod
    def _self(t: int, prev: Tensor) -> Tensor:
        """[R, t + 1] over the decoder inputs so far, depending on the previous token."""
        return (torch.arange(t + 1).float()[None] * 0.3 * prev[:, None].float()).softmax(-1)

    def step(self, prev_tokens: Tensor, state: ToyState, need_weights: bool = False):
        self.step_rows.append(int(prev_tokens.size(0)))
        logits = self._logits(state.step, prev_tokens, state.bias)
        weights = {}
        if need_weights:
            t = int(state.step.max())
            weights["cross"] = self._cross(state.step, prev_tokens, state.src_mask)[:, None, None]
            weights["decoder_self"] = self._self(t, prev_tokens)[:, None, None]
        return logits, ToyState(state.bias, state.src_mask, state.step + 1), weights

    def forward(self, src: Tensor, tgt_in: Tensor, need_weights: bool = False):
        encoded = self.encode(src, need_weights)
        b, t_len = tgt_in.shape
        steps = torch.arange(t_len)
        logits = torch.stack(
            [
                self._logits(steps[t].expand(b), tgt_in[:, t], encoded.states[:, :, 0])
                for t in range(t_len)
            ],
            dim=1,
        )
        weights = {}
        if need_weights:
            cross = torch.stack(
                [
                    self._cross(steps[t].expand(b), tgt_in[:, t], encoded.src_mask)
                    for t in range(t_len)
                ],
                dim=1,
            )  # [B, T, S]
            dec = torch.zeros(b, t_len, t_len)
            for t in range(t_len):
                dec[:, t, : t + 1] = self._self(t, tgt_in[:, t])
            weights["cross"] = cross[:, None, None]
            weights["decoder_self"] = dec[:, None, None]
            weights["encoder_self"] = encoded.weights["encoder_self"]
        return logits, weights


def random_table(steps: int, vocab: int, seed: int, sharpness: float = 2.0) -> Tensor:
    """Random next-token logits [steps, vocab, vocab]."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(steps, vocab, vocab, generator=g) * sharpness
