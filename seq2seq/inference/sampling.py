"""Random sampling of the next token, for back-translation and diverse outputs.

A :class:`Sampler` draws each next token from the model's distribution, sharpened or flattened
by a temperature T (probabilities proportional to p ** (1 / T)) and restricted to

- ``full``: the whole vocabulary (ancestral sampling);
- ``topk:K``: the K most probable tokens (Fan et al. 2018, arXiv:1805.04833);
- ``topp:P``: the smallest set of most probable tokens whose probability reaches P (nucleus
  sampling, Holtzman et al. 2019, arXiv:1904.09751).

The temperature applies first: top-k and top-p restrict the tempered distribution (as in
Hugging Face transformers and fairseq). T = 0 is the limit T -> 0: always the most probable
token, i.e. greedy search. The scores of a sample stay the model's own log-probabilities
(untempered), so that samples, greedy and beam outputs are scored alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Sampler", "SamplingError", "parse_sampling"]


class SamplingError(ValueError):
    """A sampling method or temperature that cannot be used; the message names the option."""


@dataclass(frozen=True)
class Sampler:
    """method: "full", "topk" or "topp"; k for topk, p for topp; temperature >= 0."""

    method: str = "full"
    k: int = 0
    p: float = 1.0
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in ("full", "topk", "topp"):
            raise SamplingError(f"sampling: got {self.method!r}, expected full, topk:K or topp:P")
        if self.method == "topk" and self.k < 1:
            raise SamplingError(f"sampling: topk:{self.k}, expected K >= 1 (topk:K)")
        if self.method == "topp" and not 0.0 < self.p <= 1.0:
            raise SamplingError(f"sampling: topp:{self.p}, expected 0 < P <= 1 (topp:P)")
        if not 0.0 <= self.temperature < float("inf"):
            raise SamplingError(
                f"temperature: got {self.temperature}, expected a finite number >= 0"
            )

    def draw(self, log_probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One token per row of ``log_probs`` [R, V] (float32 log-probabilities; -inf never
        drawn). Returns [R] token ids."""
        if self.temperature == 0.0:
            return log_probs.argmax(dim=-1)
        logits = log_probs / self.temperature
        if self.method == "topk" and self.k < logits.size(-1):
            kth = logits.topk(self.k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        elif self.method == "topp" and self.p < 1.0:
            logits = _nucleus(logits, self.p)
        probs = logits.softmax(dim=-1)
        return torch.multinomial(probs, 1, generator=generator)[:, 0]


def _nucleus(logits: Tensor, p: float) -> Tensor:
    """``logits`` with every token outside the top-p nucleus of each row set to -inf."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    before = probs.cumsum(dim=-1) - probs  # mass of the tokens ranked above each one
    drop = before >= p  # the most probable token always stays (its "before" is 0)
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


def parse_sampling(spec: str, temperature: float = 1.0) -> Sampler:
    """A Sampler from ``full``, ``topk:K`` or ``topp:P`` (the ``--sampling`` option)."""
    method, _, value = spec.partition(":")
    bad = SamplingError(f"sampling: got {spec!r}, expected full, topk:K or topp:P")
    if method == "full" and not value:
        return Sampler("full", temperature=temperature)
    if method not in ("topk", "topp") or not value:
        raise bad
    try:
        number = int(value) if method == "topk" else float(value)
    except ValueError:
        raise bad from None
    if method == "topk":
        return Sampler("topk", k=number, temperature=temperature)
    return Sampler("topp", p=number, temperature=temperature)
