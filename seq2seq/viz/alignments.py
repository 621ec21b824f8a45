"""Glue between a trained model and the plots: the attention of one sentence pair.

`attention_for_pair` runs a model on one sentence (translating it, or forcing a given target)
and returns its attention matrices with their subword labels; `plot_example` draws one slot of
such an example; `save_validation_plots` is what the trainer calls at each validation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seq2seq.viz.common import PlotError
from seq2seq.viz.example import SLOT_TITLES, AttentionExample
from seq2seq.viz.heatmap import plot_alignment, plot_attention_grid
from seq2seq.vocab import EOS

logger = logging.getLogger(__name__)

__all__ = [
    "AttentionExample",
    "attention_for_pair",
    "plot_example",
    "save_validation_plots",
    "select_layers_heads",
]

_AXES = {
    "cross": ("target", "source"),
    "encoder_self": ("source", "source"),
    "decoder_self": ("target", "target input"),
}


def attention_for_pair(
    model: Any,
    tokenizer: Any,
    src: str,
    tgt: str | None = None,
    *,
    beam: int = 1,
    length_penalty: float = 0.6,
    max_len_ratio: float = 1.5,
    max_len_offset: int = 10,
) -> AttentionExample:
    """The attention of `model` on one sentence, with the subword pieces as labels.

    Without `tgt` the sentence is translated (greedy search for beam=1, else beam search; the
    weights of the best hypothesis follow the beam's back-pointers) and the example shows what
    the model attended to while producing its output. With `tgt` that target is forced
    (teacher forcing) and the example shows the alignment of the given pair.
    Returns weights {slot: [L, H, Tq, Tk]} (float32, CPU) for every slot of the model; the
    source pieces end with "</s>", which the encoder reads after the sentence; the target
    pieces end with "</s>" when the output (or the forced target) was terminated.
    Sources longer than `model.max_positions - 1` pieces are truncated with a warning.
    """
    # imported here: the plotting functions stay importable without the model stack
    from seq2seq.data.batching import collate_src
    from seq2seq.inference.search import forced_attention

    src_ids = _truncate(tokenizer.encode_src(src), model.max_positions - 1, "source")
    if not src_ids:
        raise PlotError(f"source sentence {src!r} is empty: nothing to attend to")
    device = next(model.parameters()).device
    src_batch = collate_src([src_ids]).to(device)  # [1, S]: the pieces + EOS
    if tgt is None:
        search = {"ratio": max_len_ratio, "offset": max_len_offset, "alpha": length_penalty}
        tgt_ids, weights = _translate(model, src_batch, beam, **search)
    else:
        tgt_ids = _truncate(tokenizer.encode_tgt(tgt), model.max_positions - 1, "target")
        tgt_tensor = torch.tensor(tgt_ids, dtype=torch.long, device=device)
        weights = forced_attention(model, src_batch[0], tgt_tensor)
    weights = {slot: w.detach().float().cpu() for slot, w in weights.items()}
    steps = next((w.shape[-2] for s, w in weights.items() if s != "encoder_self"), len(tgt_ids))
    tgt_pieces = tokenizer.tgt_pieces(tgt_ids)
    if steps == len(tgt_ids) + 1:  # the last decoder step produced (or was forced to) EOS
        tgt_pieces.append(EOS)
    return AttentionExample(
        src_pieces=[*tokenizer.src_pieces(src_ids), EOS],
        tgt_pieces=tgt_pieces,
        weights=weights,
        title=src,
    )


def select_layers_heads(
    weights: Any, layer: int | str, head: int | str, slot: str = "cross"
) -> tuple[np.ndarray, list[str], list[str]]:
    """Pick layers and heads of a [L, H, Tq, Tk] array.

    layer/head: an index (negative counts from the end), "all" or "mean".
    Returns ([L', H', Tq, Tk] array, L' row titles, H' column titles).
    """
    array = np.asarray(weights)
    array, rows = _select(array, 0, layer, "layer", slot)
    array, cols = _select(array, 1, head, "head", slot)
    return array, rows, cols


def plot_example(
    example: AttentionExample,
    out_path: str | os.PathLike[str],
    *,
    slot: str = "cross",
    layer: int | str = -1,
    head: int | str = "mean",
    title: str | None = None,
) -> Path:
    """Static figure of one slot of `example` (layer/head: index, "all" or "mean").

    One heatmap when the selection leaves one matrix, else a grid of the selected layers x
    heads (e.g. layer="all", head="all" for every head of every layer).
    """
    rows, cols = example.labels(slot)
    weights = example.matrices(slot)  # [L, H, Tq, Tk]
    array, row_titles, col_titles = select_layers_heads(weights, layer, head, slot)
    ylabel, xlabel = _AXES[slot]
    if array.shape[0] * array.shape[1] == 1:
        # name the layer and the head only where the model has more than one
        choices = ((row_titles[0], weights.shape[0]), (col_titles[0], weights.shape[1]))
        parts = [text for text, count in choices if count > 1]
        heading = ", ".join([SLOT_TITLES[slot], *parts])
        return plot_alignment(
            array[0, 0], cols, rows, out_path, title=title or heading, xlabel=xlabel, ylabel=ylabel
        )
    return plot_attention_grid(
        array,
        cols,
        rows,
        out_path,
        title=title or SLOT_TITLES[slot],
        row_titles=row_titles,
        col_titles=col_titles,
        xlabel=xlabel,
        ylabel=ylabel,
    )


def save_validation_plots(
    examples: Sequence[AttentionExample],
    out_dir: str | os.PathLike[str],
    step: int,
    *,
    slot: str = "cross",
    suffix: str = ".png",
) -> list[Path]:
    """Cross-attention heatmaps (last layer, mean of heads) of fixed validation sentences.

    Writes out_dir/step_{step:06d}_{i}.png for the i-th example and returns the paths.
    """
    paths = []
    for i, example in enumerate(examples):
        title = f"step {step}: {example.title}" if example.title else f"step {step}"
        out = Path(out_dir) / f"step_{step:06d}_{i}{suffix}"
        paths.append(
            plot_example(example, out, slot=slot, layer=-1, head="mean", title=_shorten(title))
        )
    return paths


def _translate(model, src, beam: int, *, ratio: float, offset: int, alpha: float):
    """(token ids, {slot: [L, H, T_out, Tk]}) of the best hypothesis for src [1, S]."""
    from seq2seq.inference.search import beam_search, greedy_search, max_output_lengths

    limit = max_output_lengths(src, ratio=ratio, offset=offset, max_positions=model.max_positions)
    if beam == 1:
        hyp = greedy_search(model, src, max_len=limit, need_weights=True)[0]
    else:
        hyp = beam_search(
            model, src, beam=beam, length_penalty=alpha, max_len=limit, need_weights=True
        )[0][0]
    return hyp.tokens, hyp.attention or {}


def _select(array: np.ndarray, axis: int, choice: int | str, name: str, slot: str):
    count = array.shape[axis]
    if choice == "all":
        return array, [f"{name} {i}" for i in range(count)]
    if choice == "mean":
        plural = f"{count} {name}s" if count > 1 else f"the only {name}"
        return array.mean(axis=axis, keepdims=True), [f"mean of {plural}"]
    if isinstance(choice, bool) or not isinstance(choice, int | np.integer):
        raise PlotError(f"{name}: expected an index, 'all' or 'mean', got {choice!r}")
    if not -count <= choice < count:
        raise PlotError(
            f"{name} {choice} does not exist: the {slot} attention has {count} {name}s "
            f"(0..{count - 1}, negative indices count from the end)"
        )
    index = choice % count
    return np.take(array, [index], axis=axis), [f"{name} {index}"]


def _truncate(ids: list[int], limit: int, side: str) -> list[int]:
    if len(ids) > limit:
        logger.warning(
            "%s of %d pieces truncated to the model's maximum of %d", side, len(ids), limit
        )
        return ids[:limit]
    return ids


def _shorten(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"
