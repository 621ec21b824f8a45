"""Decoding many sentences: the one path from source ids to hypotheses, and forced scoring.

Every caller that decodes (the `Translator`, validation's greedy BLEU, the attention plots)
goes through :func:`decode_ids`: it sorts the sentences by length so that a batch holds
sentences of similar length (little padding), decodes batch by batch with greedy search
(beam 1) or beam search, and returns the hypotheses in input order. :func:`score_ids` is its
counterpart for given targets: the log-probability the model assigns to each pair.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from seq2seq.data import collate, collate_src, pad_ids
from seq2seq.inference.sampling import Sampler
from seq2seq.inference.search import (
    STOPPING_RULES,
    Hypothesis,
    beam_search,
    greedy_search,
    length_penalty,
    max_output_lengths,
)
from seq2seq.vocab import PAD_ID

logger = logging.getLogger(__name__)

__all__ = [
    "DecodeOptions",
    "PairScore",
    "decode_ids",
    "length_batches",
    "model_device",
    "score_ids",
    "truncate",
]

#: A context manager factory for the forward passes (autocast, or a no-op in float32).
Autocast = Callable[[], contextlib.AbstractContextManager]


class DecodeError(ValueError):
    """Decoding options that cannot be used: the message names the option."""


@dataclass(frozen=True)
class DecodeOptions:
    """How to search: beam 1 is greedy search, `sampling` draws `n_best` random outputs
    per sentence; the output limit of a sentence of S source tokens (its EOS included) is
    ``floor(S * max_len_ratio + max_len_offset)``."""

    beam: int = 5
    n_best: int = 1
    length_penalty: float = 0.6
    max_len_ratio: float = 1.5
    max_len_offset: int = 10
    stopping: str = "exact"  # beam search's stopping rule (`search.STOPPING_RULES`)
    sampling: Sampler | None = None  # draw n_best samples per sentence instead of searching
    seed: int = 0  # of the samples' random generator

    def __post_init__(self) -> None:
        if self.beam < 1:
            raise DecodeError(f"beam: got {self.beam}, expected an integer >= 1")
        if self.sampling is not None:
            if self.beam != 1:
                raise DecodeError(
                    f"beam: got {self.beam} with sampling; sampling draws n-best samples "
                    "per sentence and does not combine with beam search (use beam 1)"
                )
            if self.n_best < 1:
                raise DecodeError(f"n-best: got {self.n_best}, expected samples >= 1")
        elif not 1 <= self.n_best <= self.beam:
            raise DecodeError(
                f"n-best: got {self.n_best}, expected 1 <= n-best <= beam ({self.beam})"
            )
        if self.max_len_ratio <= 0 or self.max_len_offset < 0:
            raise DecodeError(
                f"max length: got ratio {self.max_len_ratio} and offset "
                f"{self.max_len_offset}, expected ratio > 0 and offset >= 0"
            )
        if not 0 <= self.length_penalty < float("inf"):
            raise DecodeError(f"length penalty: got {self.length_penalty}, expected >= 0")
        if self.stopping not in STOPPING_RULES:
            raise DecodeError(
                f"stopping: got {self.stopping!r}, expected one of {', '.join(STOPPING_RULES)}"
            )

    def replace(self, **changes: object) -> DecodeOptions:
        """A copy with the given fields changed (None values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass
class PairScore:
    """The model's score of one (source, target) pair under forced decoding.

    log_prob: sum of the log-probabilities of the target tokens and of the final EOS.
    tokens: number of scored tokens (target subwords + EOS).
    score: log_prob / GNMT length penalty of `tokens`, as beam search ranks its hypotheses.
    """

    log_prob: float
    tokens: int
    score: float


def truncate(ids: list[list[int]], limit: int, what: str, first: int = 1) -> list[list[int]]:
    """Cut every id list to at most `limit` tokens, warning for each cut one.

    what: how a warning names an item ("input line", "target line"); first: the number of
    the first item (1-based line numbers).
    """
    out = []
    for n, seq in enumerate(ids):
        if len(seq) > limit:
            logger.warning(
                "%s %d: %d subword tokens, more than the model's maximum of %d; "
                "truncated to its first %d",
                what,
                first + n,
                len(seq),
                limit,
                limit,
            )
            seq = seq[:limit]
        out.append(seq)
    return out


def model_device(model) -> torch.device:
    """The device of the model's parameters (the CPU for a model without any)."""
    param = next(iter(model.parameters()), None)
    return param.device if param is not None else torch.device("cpu")


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices of the non-empty items sorted by length, cut into batches of `batch_size`."""
    order = sorted((i for i, n in enumerate(lengths) if n), key=lambda i: lengths[i])
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def decode_ids(
    model,
    src_ids: Sequence[Sequence[int]],
    options: DecodeOptions,
    *,
    batch_size: int,
    autocast: Autocast = contextlib.nullcontext,
    need_weights: bool = False,
    prefix_ids: Sequence[Sequence[int]] | None = None,
    map_batches: Callable[..., Iterable[Any]] = map,
) -> list[list[Hypothesis]]:
    """Hypotheses for each source (ids without EOS, at most ``model.max_positions - 1``).

    prefix_ids: per source, target ids (no BOS/EOS) its outputs must start with ([] for
    none); the output limit grows to fit them. map_batches: how the batches are decoded,
    ``map(fn, batches)`` in order (the default) or a thread pool's ``map`` to decode several
    at once; sampling draws from one generator in input order, so it always decodes one batch
    at a time. Returns, in input order, up to ``options.n_best`` hypotheses per sentence, best
    first; an empty source gives one empty hypothesis of score 0 without touching the model.
    """
    if batch_size < 1:
        raise DecodeError(f"batch size: got {batch_size}, expected an integer >= 1")
    if prefix_ids is not None and len(prefix_ids) != len(src_ids):
        raise DecodeError(f"prefix: got {len(prefix_ids)} prefixes for {len(src_ids)} sources")
    samples = options.n_best if options.sampling is not None else 1
    if samples > 1:  # each sentence is decoded `samples` times, side by side
        src_ids = [ids for ids in src_ids for _ in range(samples)]
        prefix_ids = None if prefix_ids is None else [p for p in prefix_ids for _ in range(samples)]
    generator = None
    if options.sampling is not None:
        generator = torch.Generator(model_device(model)).manual_seed(options.seed)
    out: list[list[Hypothesis]] = [
        [Hypothesis(tokens=[], score=0.0, log_prob=0.0)] for _ in src_ids
    ]

    def decode(batch: list[int]) -> list[list[Hypothesis]]:
        prefix = None if prefix_ids is None else [prefix_ids[i] for i in batch]
        sources = [src_ids[i] for i in batch]
        return _decode_batch(model, sources, prefix, options, generator, need_weights, autocast)

    batches = length_batches([len(s) for s in src_ids], batch_size)
    for batch, found in zip(
        batches, (map if generator else map_batches)(decode, batches), strict=True
    ):
        for i, hyps in zip(batch, found, strict=True):
            out[i] = hyps
    if samples > 1:
        groups = [out[i : i + samples] for i in range(0, len(out), samples)]
        out = [sorted((h for hyps in g for h in hyps), key=lambda h: -h.score) for g in groups]
    return out


def _decode_batch(model, src_ids, prefix_ids, options, generator, need_weights, autocast):
    """The hypotheses of one batch of non-empty sources (see `decode_ids`)."""
    device = model_device(model)
    src = collate_src(src_ids).to(device)
    limit = max_output_lengths(
        src,
        ratio=options.max_len_ratio,
        offset=options.max_len_offset,
        max_positions=model.max_positions,
    )
    prefix = None
    if prefix_ids is not None and any(prefix_ids):
        prefix = pad_ids(prefix_ids).to(device)
        lengths = torch.tensor([len(p) for p in prefix_ids], device=device)
        limit = torch.maximum(limit, lengths + 1).clamp(max=model.max_positions)
    with autocast():
        if options.beam == 1:
            hyps = greedy_search(
                model,
                src,
                max_len=limit,
                need_weights=need_weights,
                prefix=prefix,
                sampler=options.sampling,
                generator=generator,
            )
            return [[h] for h in hyps]
        return beam_search(
            model,
            src,
            beam=options.beam,
            n_best=options.n_best,
            length_penalty=options.length_penalty,
            max_len=limit,
            need_weights=need_weights,
            prefix=prefix,
            stopping=options.stopping,
        )


@torch.inference_mode()
def score_ids(
    model,
    src_ids: Sequence[Sequence[int]],
    tgt_ids: Sequence[Sequence[int]],
    *,
    alpha: float,
    batch_size: int,
    autocast: Autocast = contextlib.nullcontext,
    map_batches: Callable[..., Iterable[Any]] = map,
) -> list[PairScore]:
    """Forced-decoding scores of (source, target) id pairs (no BOS/EOS), in input order.

    The target is scored with its final EOS, as a finished hypothesis of beam search is: the
    log-probabilities are float32 log-softmax values summed in float32 per step order, and the
    length-normalised score uses the same GNMT penalty (exponent `alpha`). A pair with an empty
    source scores 0 over 0 tokens (the translators give empty sources an empty output).
    map_batches: as in `decode_ids`.
    """
    if len(src_ids) != len(tgt_ids):
        raise DecodeError(f"score: got {len(src_ids)} sources but {len(tgt_ids)} targets")
    device = model_device(model)
    out = [PairScore(log_prob=0.0, tokens=0, score=0.0) for _ in src_ids]
    lengths = [len(s) + len(t) if s else 0 for s, t in zip(src_ids, tgt_ids, strict=True)]

    @torch.inference_mode()  # grad mode is per thread: also in the workers' threads
    def score(batch: list[int]) -> list[PairScore]:
        data = collate([(src_ids[i], tgt_ids[i]) for i in batch]).to(device)
        with autocast():
            logits, _ = model(data.src, data.tgt_in)
        log_probs = logits.float().log_softmax(dim=-1)
        picked = log_probs.gather(-1, data.tgt_out.clamp(min=0)[..., None])[..., 0]
        real = data.tgt_out != PAD_ID
        # summed step by step, in the order beam search accumulates them
        total = torch.zeros(len(batch), device=device)
        for t in range(picked.size(1)):
            total = total + picked[:, t].masked_fill(~real[:, t], 0.0)
        counts = real.sum(dim=1).tolist()
        return [
            PairScore(log_prob=log_prob, tokens=n, score=log_prob / length_penalty(float(n), alpha))
            for log_prob, n in zip(total.tolist(), counts, strict=True)
        ]

    was_training = model.training
    model.eval()
    try:
        batches = length_batches(lengths, batch_size)
        for batch, scores in zip(batches, map_batches(score, batches), strict=True):
            for i, pair in zip(batch, scores, strict=True):
                out[i] = pair
    finally:
        model.train(was_training)
    return out
