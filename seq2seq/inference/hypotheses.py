"""The hypotheses of a search: finished outputs, and the bookkeeping of live ones.

`History` holds the tokens and per-step attention of the live rows, reordered with them;
`Finished` collects, per sentence, the hypotheses that ended and returns the n best. Both are
used by greedy and beam search alike (`seq2seq.inference.search`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seq2seq.vocab import EOS_ID, PAD_ID

__all__ = ["Finished", "History", "Hypothesis", "length_penalty", "trim_weights"]


@dataclass
class Hypothesis:
    """One output sentence of a search.

    tokens: target token ids, without BOS and EOS.
    score: log_prob divided by the GNMT length penalty (equal to log_prob in greedy search).
    log_prob: sum of the model's float32 log-probabilities of the tokens (and of EOS if produced).
    attention: {slot: [L, H, T_out, Tk]} when weights were asked for, else None. Row t belongs
        to output step t: T_out = len(tokens) + 1 when the hypothesis ended with EOS (the last
        row is the EOS step), else len(tokens). cross: Tk = source length (without padding);
        decoder_self: Tk = T_out (decoder inputs BOS, y_1, ..., y_{T_out-1});
        encoder_self: [L, H, S, S] of the source sentence.
    """

    tokens: list[int]
    score: float
    log_prob: float
    attention: dict[str, Tensor] | None = None


def length_penalty(length: Tensor | float, alpha: float) -> Tensor | float:
    """GNMT length penalty ((5 + length) / 6) ** alpha (arXiv:1609.08144, eq. 14)."""
    return ((5.0 + length) / 6.0) ** alpha


def trim_weights(weights: dict[str, Tensor], src_len: int, steps: int) -> dict[str, Tensor]:
    """Cut one sentence's padded weights {slot: [L, H, Tq, Tk]} to its real lengths."""
    sizes = {
        "cross": (steps, src_len),
        "encoder_self": (src_len, src_len),
        "decoder_self": (steps, steps),
    }
    out = {}
    for slot, w in weights.items():
        rows, cols = sizes.get(slot, (w.size(-2), w.size(-1)))
        out[slot] = w[..., :rows, :cols]
    return out


class History:
    """Tokens and per-step attention of each live row, reordered along with the rows."""

    def __init__(self, rows: int, device: torch.device) -> None:
        self.tokens = torch.zeros(rows, 0, dtype=torch.long, device=device)  # [R, t]
        self.weights: dict[str, Tensor] = {}  # {slot: [R, L, H, t, Tk]}

    def extend(self, origin: Tensor, tokens: Tensor, weights: dict[str, Tensor]) -> None:
        """Append one step: the step's rows are reordered by `origin`, then `tokens` added.

        origin: [R'] row of the previous step each new row continues; tokens: [R'];
        weights: {slot: [R, L, H, Tk]} computed by this step for the previous rows.
        """
        for slot, w in weights.items():
            w = w.float()[:, :, :, None, :]  # [R, L, H, 1, Tk]
            old = self.weights.get(slot)
            if old is not None and old.size(-1) < w.size(-1):  # decoder_self: Tk grows
                old = torch.nn.functional.pad(old, (0, w.size(-1) - old.size(-1)))
            self.weights[slot] = w[origin] if old is None else torch.cat([old, w], dim=3)[origin]
        self.tokens = torch.cat([self.tokens[origin], tokens[:, None]], dim=1)

    def select(self, rows: Tensor) -> History:
        new = History(0, self.tokens.device)
        new.tokens = self.tokens[rows]
        new.weights = {slot: w[rows] for slot, w in self.weights.items()}
        return new


class Finished:
    """Finished hypotheses of every sentence of a search.

    A hypothesis keeps its tokens on the device until `results`, which reads all of them in one
    copy: setting a hypothesis aside during the search reads nothing from the device.
    """

    def __init__(self, encoded, src: Tensor, *, n_best: int, alpha: float, need_weights: bool):
        self.n_best, self.alpha, self.need_weights = n_best, alpha, need_weights
        self.src_len = (src != PAD_ID).sum(dim=1).tolist()
        self.encoder_weights = (
            {slot: w.float() for slot, w in getattr(encoded, "weights", {}).items()}
            if need_weights
            else {}
        )
        # Per sentence, best first: (hypothesis without its tokens, its tokens on the device).
        self.found: list[list[tuple[Hypothesis, Tensor]]] = [[] for _ in range(src.size(0))]

    def add(self, sent: int, history: History, row: int, log_prob: float, steps: int) -> None:
        """Finish the hypothesis in `row` of `history` after `steps` output steps."""
        attention = None
        if self.need_weights:
            attention = {slot: w[sent] for slot, w in self.encoder_weights.items()}
            attention.update({slot: w[row] for slot, w in history.weights.items()})
            attention = trim_weights(attention, self.src_len[sent], steps)
        score = log_prob / length_penalty(float(steps), self.alpha)
        hyp = Hypothesis(tokens=[], score=score, log_prob=log_prob, attention=attention)
        found = self.found[sent]
        found.append((hyp, history.tokens[row].clone()))
        found.sort(key=lambda pair: pair[0].score, reverse=True)

    def results(self) -> list[list[Hypothesis]]:
        """Up to n_best hypotheses per sentence, best first, with their tokens (without EOS)."""
        kept = [found[: self.n_best] for found in self.found]
        pairs = [pair for found in kept for pair in found]
        if pairs:
            flat = torch.cat([tokens for _, tokens in pairs]).tolist()
            start = 0
            for hyp, tokens in pairs:
                hyp.tokens = flat[start : start + tokens.numel()]
                start += tokens.numel()
                if hyp.tokens and hyp.tokens[-1] == EOS_ID:
                    hyp.tokens = hyp.tokens[:-1]
        return [[hyp for hyp, _ in found] for found in kept]
