"""Drawing the attention of sentence pairs: choosing layers and heads, figures of one example.

`plot_example` draws one slot of an `AttentionExample` (from `Translator.attention`);
`save_validation_plots` is what the trainer calls at each validation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq.viz.common import PlotError
from seq2seq.viz.example import SLOT_TITLES, AttentionExample
from seq2seq.viz.heatmap import plot_alignment, plot_attention_grid

logger = logging.getLogger(__name__)

__all__ = [
    "AttentionExample",
    "plot_example",
    "save_validation_plots",
    "select_layers_heads",
]

_AXES = {
    "cross": ("target", "source"),
    "encoder_self": ("source", "source"),
    "decoder_self": ("target", "target input"),
}


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


def _shorten(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"
