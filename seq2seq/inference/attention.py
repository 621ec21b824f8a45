"""The attention of a model on sentence pairs, as arrays labelled with the subword pieces.

Two ways to get it: from a translation (the weights beam or greedy search recorded while
producing the output, following the beam's back-pointers) and from a given pair (teacher
forcing, :func:`forced_examples`). Both give :class:`~seq2seq.viz.example.AttentionExample`
objects that the plots and the HTML viewer draw.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from seq2seq.data import collate_src, pad_ids
from seq2seq.inference.decode import Autocast, length_batches, model_device
from seq2seq.inference.search import Hypothesis, forced_attention, trim_weights
from seq2seq.viz.example import AttentionExample
from seq2seq.vocab import EOS

__all__ = ["example_of", "forced_examples", "forced_weights", "hypothesis_example"]


def example_of(
    tokenizer: Any,
    src_ids: Sequence[int],
    tgt_ids: Sequence[int],
    weights: dict[str, Any],
    title: str | None = None,
) -> AttentionExample:
    """Label the weights {slot: [L, H, Tq, Tk]} of one pair with its pieces.

    The source pieces end with "</s>", which the encoder reads after the sentence; the target
    pieces end with "</s>" when the decoder took one more step than there are target tokens
    (the output, or the forced target, was terminated).
    """
    arrays = {slot: _array(w) for slot, w in weights.items()}
    steps = next((a.shape[-2] for s, a in arrays.items() if s != "encoder_self"), len(tgt_ids))
    tgt_pieces = tokenizer.tgt_pieces(list(tgt_ids))
    if steps == len(tgt_ids) + 1:
        tgt_pieces.append(EOS)
    return AttentionExample(
        src_pieces=[*tokenizer.src_pieces(list(src_ids)), EOS],
        tgt_pieces=tgt_pieces,
        weights=arrays,
        title=title,
    )


def hypothesis_example(
    tokenizer: Any, src_ids: Sequence[int], hyp: Hypothesis, title: str | None = None
) -> AttentionExample:
    """The attention the search recorded for `hyp` (decoded with ``need_weights=True``)."""
    return example_of(tokenizer, src_ids, hyp.tokens, hyp.attention or {}, title)


def forced_weights(
    model,
    src_ids: Sequence[Sequence[int]],
    tgt_ids: Sequence[Sequence[int]],
    *,
    batch_size: int,
    autocast: Autocast = contextlib.nullcontext,
) -> list[dict[str, torch.Tensor] | None]:
    """The teacher-forced attention {slot: [L, H, Tq, Tk]} (float32, CPU) of given pairs,
    trimmed to each pair's lengths, in input order (None for an empty source or target)."""
    device = model_device(model)
    out: list[dict[str, torch.Tensor] | None] = [None] * len(src_ids)
    lengths = [len(s) + len(t) if s and t else 0 for s, t in zip(src_ids, tgt_ids, strict=True)]
    for batch in length_batches(lengths, batch_size):
        src = collate_src([src_ids[i] for i in batch]).to(device)
        tgt = pad_ids([tgt_ids[i] for i in batch]).to(device)
        with autocast():
            weights = {slot: w.cpu() for slot, w in forced_attention(model, src, tgt).items()}
        for row, i in enumerate(batch):
            s, t = len(src_ids[i]) + 1, len(tgt_ids[i]) + 1
            out[i] = trim_weights({slot: w[row] for slot, w in weights.items()}, s, t)
    return out


def forced_examples(
    model,
    tokenizer: Any,
    src_ids: Sequence[Sequence[int]],
    tgt_ids: Sequence[Sequence[int]],
    *,
    batch_size: int,
    autocast: Autocast = contextlib.nullcontext,
) -> list[AttentionExample | None]:
    """The attention of given pairs under teacher forcing as labelled examples, in input
    order (None for a pair with an empty source or target)."""
    weights = forced_weights(model, src_ids, tgt_ids, batch_size=batch_size, autocast=autocast)
    return [
        None if w is None else example_of(tokenizer, src, tgt, w)
        for src, tgt, w in zip(src_ids, tgt_ids, weights, strict=True)
    ]


def _array(w: Any) -> np.ndarray:
    if isinstance(w, torch.Tensor):
        return w.detach().float().cpu().numpy()
    return np.asarray(w, dtype=np.float32)
