"""The two figures of ``seq2seq compare``: validation BLEU against wall-clock time, and one
sentence's cross-attention matrix for every variant side by side.

Pure functions of numbers and labels (nothing here loads models or reads run directories).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seq2seq.viz.common import (
    LITERAL,
    PlotError,
    cell_size,
    check_labels,
    draw_matrix,
    fit_title,
    font_size,
    label_extent,
    new_figure,
    output_format,
    save_figure,
    set_ticks,
    to_numpy,
)

__all__ = ["AlignmentPanel", "plot_alignment_panels", "plot_bleu_vs_time"]

_PANEL_CELL = 0.24  # inches per matrix cell
_MAX_COLUMNS = 4  # panels per row


@dataclass
class AlignmentPanel:
    """One variant's attention matrix: ``weights`` ``[Tt, Ts]``, rows = target pieces."""

    name: str
    weights: Any
    src_labels: Sequence[str]
    tgt_labels: Sequence[str]


def plot_bleu_vs_time(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    out_path: str | os.PathLike[str],
    *,
    budget_seconds: float | None = None,
    title: str | None = None,
) -> Path:
    """One line per variant: validation BLEU (y) against training time in minutes (x).

    curves: {variant: (seconds, bleu)} with one point per validation. ``budget_seconds`` draws
    a dashed vertical line at the time budget. Written atomically; format from the suffix.
    """
    fmt = output_format(out_path)
    if not curves:
        raise PlotError("no variants to plot: curves is empty")
    fig = new_figure(7.5, 4.5)
    ax = fig.add_subplot()
    for name, (seconds, bleu) in curves.items():
        if len(seconds) != len(bleu):
            raise PlotError(f"variant {name!r}: {len(seconds)} times but {len(bleu)} BLEU values")
        points = [
            (t / 60.0, b) for t, b in zip(seconds, bleu, strict=True) if _finite(t) and _finite(b)
        ]
        ax.plot(
            [p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, label=name
        )
    if budget_seconds is not None:
        ax.axvline(
            budget_seconds / 60.0, color="grey", linestyle="--", linewidth=1, label="time budget"
        )
    ax.set_xlabel("training time (minutes, wall clock)")
    ax.set_ylabel("validation BLEU")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    if title:
        fig.suptitle(title, **LITERAL)
    return save_figure(fig, out_path, fmt)


def plot_alignment_panels(
    panels: Sequence[AlignmentPanel],
    out_path: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> Path:
    """The panels' heatmaps side by side (up to four per row) on one shared colour scale.

    Each panel keeps its own labels: the variants translate the same source sentence into
    different targets. Written atomically; format from the suffix.
    """
    fmt = output_format(out_path)
    if not panels:
        raise PlotError("no alignment panels to plot")
    matrices = [to_numpy(p.weights, name=f"{p.name} weights", ndim=2) for p in panels]
    labels = [
        (
            check_labels(p.src_labels, m.shape[1], f"{p.name} src_labels"),
            check_labels(p.tgt_labels, m.shape[0], f"{p.name} tgt_labels"),
        )
        for p, m in zip(panels, matrices, strict=True)
    ]
    n_cols = min(len(panels), _MAX_COLUMNS)
    n_rows = math.ceil(len(panels) / n_cols)
    tt = max(m.shape[0] for m in matrices)
    ts = max(m.shape[1] for m in matrices)
    cell = cell_size(_PANEL_CELL, tt, ts)
    font = font_size(cell)
    row_extent = max(label_extent(rows, font) for _, rows in labels)
    col_extent = max(label_extent(cols, font) for cols, _ in labels)
    width = n_cols * (ts * cell + row_extent + 0.4) + 1.2
    height = n_rows * (tt * cell + col_extent + 0.8) + 0.6
    title, width, height = fit_title(title, width, height)
    fig = new_figure(width, height)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    vmax = max(float(m.max()) for m in matrices)
    image = None
    for index, ax in enumerate(axes.flat):
        if index >= len(panels):
            ax.set_axis_off()
            continue
        cols, rows = labels[index]
        image = draw_matrix(ax, matrices[index], vmax=vmax)
        set_ticks(ax, cols, rows, font, show_x=True, show_y=True)
        ax.set_title(panels[index].name, fontsize=font + 3, **LITERAL)
        ax.set_xlabel("source", fontsize=font + 2)
        ax.set_ylabel("target (greedy output)", fontsize=font + 2)
    colorbar = fig.colorbar(image, ax=axes, fraction=0.03, pad=0.02)
    colorbar.set_label("attention weight")
    if title:
        fig.suptitle(title, **LITERAL)
    return save_figure(fig, out_path, fmt)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
