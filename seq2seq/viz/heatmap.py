"""Static attention heatmaps (PNG, SVG, PDF) drawn with matplotlib's Agg backend.

Pure functions of matrices and labels: nothing here knows about models or training.
Matplotlib is imported inside the functions and figures are built from
`matplotlib.figure.Figure` directly, so no global pyplot state is touched.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seq2seq.viz.common import (
    LITERAL,
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

_CELL = 0.32  # inches per matrix cell in a single heatmap
_GRID_CELL = 0.2  # inches per cell in a layers x heads grid


def plot_alignment(
    weights: Any,
    src_labels: Sequence[str],
    tgt_labels: Sequence[str],
    out_path: str | os.PathLike[str],
    title: str | None = None,
    *,
    xlabel: str = "source",
    ylabel: str = "target",
) -> Path:
    """Draw one attention matrix as a heatmap with a colour bar and write it to `out_path`.

    weights: [Tt, Ts] tensor or array; row i is what target token i attended to.
    src_labels: Ts column labels; tgt_labels: Tt row labels.
    The format comes from the suffix (.png, .svg, .pdf). The file is written atomically.
    """
    fmt = output_format(out_path)
    fig = alignment_figure(weights, src_labels, tgt_labels, title, xlabel=xlabel, ylabel=ylabel)
    return save_figure(fig, out_path, fmt)


def plot_attention_grid(
    weights: Any,
    src_labels: Sequence[str],
    tgt_labels: Sequence[str],
    out_path: str | os.PathLike[str],
    title: str | None = None,
    *,
    row_titles: Sequence[str] | None = None,
    col_titles: Sequence[str] | None = None,
    xlabel: str = "source",
    ylabel: str = "target",
) -> Path:
    """Draw a layers x heads grid of attention heatmaps sharing one colour scale and colour bar.

    weights: [L, H, Tt, Ts] tensor or array. row_titles (L) and col_titles (H) default to
    "layer i" and "head j". Tick labels are drawn on the outer panels only.
    The format comes from the suffix (.png, .svg, .pdf). The file is written atomically.
    """
    fmt = output_format(out_path)
    fig = attention_grid_figure(
        weights, src_labels, tgt_labels, title,
        row_titles=row_titles, col_titles=col_titles, xlabel=xlabel, ylabel=ylabel,
    )  # fmt: skip
    return save_figure(fig, out_path, fmt)


def alignment_figure(
    weights: Any,
    src_labels: Sequence[str],
    tgt_labels: Sequence[str],
    title: str | None = None,
    *,
    xlabel: str = "source",
    ylabel: str = "target",
):
    """The matplotlib Figure of `plot_alignment` (axes 0: the heatmap, axes 1: colour bar)."""
    matrix = to_numpy(weights, ndim=2)
    tt, ts = matrix.shape
    cols = check_labels(src_labels, ts, "src_labels")
    rows = check_labels(tgt_labels, tt, "tgt_labels")
    cell = cell_size(_CELL, tt, ts)
    font = font_size(cell)
    width = ts * cell + label_extent(rows, font) + 1.6
    height = tt * cell + label_extent(cols, font) + 0.8
    title, width, height = fit_title(title, width, height)
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    image = draw_matrix(ax, matrix, vmax=float(matrix.max()))
    set_ticks(ax, cols, rows, font, show_x=True, show_y=True)
    ax.set_xlabel(xlabel, **LITERAL)
    ax.set_ylabel(ylabel, **LITERAL)
    colorbar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03)
    colorbar.set_label("attention weight")
    if title:
        fig.suptitle(title, **LITERAL)
    return fig


def attention_grid_figure(
    weights: Any,
    src_labels: Sequence[str],
    tgt_labels: Sequence[str],
    title: str | None = None,
    *,
    row_titles: Sequence[str] | None = None,
    col_titles: Sequence[str] | None = None,
    xlabel: str = "source",
    ylabel: str = "target",
):
    """The matplotlib Figure of `plot_attention_grid` (L x H heatmap axes, row-major, then the
    colour bar)."""
    grid = to_numpy(weights, ndim=4)
    n_rows, n_cols, tt, ts = grid.shape
    cols = check_labels(src_labels, ts, "src_labels")
    rows = check_labels(tgt_labels, tt, "tgt_labels")
    row_titles = check_labels(
        row_titles or [f"layer {i}" for i in range(n_rows)], n_rows, "row_titles"
    )
    col_titles = check_labels(
        col_titles or [f"head {j}" for j in range(n_cols)], n_cols, "col_titles"
    )
    cell = cell_size(_GRID_CELL, tt, ts)
    font = font_size(cell)
    width = n_cols * (ts * cell + 0.25) + label_extent(rows, font) + 1.8
    height = n_rows * (tt * cell + 0.35) + label_extent(cols, font) + 0.9
    title, width, height = fit_title(title, width, height)
    fig = new_figure(width, height)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    vmax = float(grid.max())
    for i in range(n_rows):
        for j in range(n_cols):
            ax = axes[i, j]
            image = draw_matrix(ax, grid[i, j], vmax=vmax)
            set_ticks(ax, cols, rows, font, show_x=i == n_rows - 1, show_y=j == 0)
            if i == 0:
                ax.set_title(col_titles[j], fontsize=font + 2, **LITERAL)
            if j == 0:
                ax.set_ylabel(f"{row_titles[i]}\n{ylabel}", fontsize=font + 2, **LITERAL)
            if i == n_rows - 1:
                ax.set_xlabel(xlabel, fontsize=font + 2, **LITERAL)
    colorbar = fig.colorbar(image, ax=axes, fraction=0.03, pad=0.02)
    colorbar.set_label("attention weight")
    if title:
        fig.suptitle(title, **LITERAL)
    return fig
