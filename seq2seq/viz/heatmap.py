"""Static attention heatmaps (PNG, SVG, PDF) drawn with matplotlib's Agg backend.

Pure functions of matrices and labels: nothing here knows about models or training.
Matplotlib is imported inside the functions and figures are built from
`matplotlib.figure.Figure` directly, so no global pyplot state is touched.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seq2seq.viz.common import check_labels, new_figure, output_format, save_figure, to_numpy

CMAP = "viridis"
_CELL = 0.32  # inches per matrix cell in a single heatmap
_GRID_CELL = 0.2  # inches per cell in a layers x heads grid
_MAX_PANEL = 14.0  # inches: larger matrices get smaller cells
_LITERAL = {"parse_math": False}  # text from the data is shown as is, "$" never starts math


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
    cell = _cell_size(_CELL, tt, ts)
    font = _font_size(cell)
    width = ts * cell + _label_extent(rows, font) + 1.6
    height = tt * cell + _label_extent(cols, font) + 0.8
    title, width, height = _fit_title(title, width, height)
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    image = _draw(ax, matrix, vmax=float(matrix.max()))
    _ticks(ax, cols, rows, font, show_x=True, show_y=True)
    ax.set_xlabel(xlabel, **_LITERAL)
    ax.set_ylabel(ylabel, **_LITERAL)
    colorbar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03)
    colorbar.set_label("attention weight")
    if title:
        fig.suptitle(title, **_LITERAL)
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
    cell = _cell_size(_GRID_CELL, tt, ts)
    font = _font_size(cell)
    width = n_cols * (ts * cell + 0.25) + _label_extent(rows, font) + 1.8
    height = n_rows * (tt * cell + 0.35) + _label_extent(cols, font) + 0.9
    title, width, height = _fit_title(title, width, height)
    fig = new_figure(width, height)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    vmax = float(grid.max())
    for i in range(n_rows):
        for j in range(n_cols):
            ax = axes[i, j]
            image = _draw(ax, grid[i, j], vmax=vmax)
            _ticks(ax, cols, rows, font, show_x=i == n_rows - 1, show_y=j == 0)
            if i == 0:
                ax.set_title(col_titles[j], fontsize=font + 2, **_LITERAL)
            if j == 0:
                ax.set_ylabel(f"{row_titles[i]}\n{ylabel}", fontsize=font + 2, **_LITERAL)
            if i == n_rows - 1:
                ax.set_xlabel(xlabel, fontsize=font + 2, **_LITERAL)
    colorbar = fig.colorbar(image, ax=axes, fraction=0.03, pad=0.02)
    colorbar.set_label("attention weight")
    if title:
        fig.suptitle(title, **_LITERAL)
    return fig


def _draw(ax, matrix, vmax: float):
    # vmin 0 and vmax the largest weight: diffuse attention still shows its structure.
    return ax.imshow(
        matrix, cmap=CMAP, vmin=0.0, vmax=max(vmax, 1e-9), aspect="equal", interpolation="nearest"
    )


def _ticks(
    ax, cols: list[str], rows: list[str], font: float, *, show_x: bool, show_y: bool
) -> None:
    ax.set_xticks(range(len(cols)))
    ax.set_yticks(range(len(rows)))
    ax.set_xticklabels(cols if show_x else [], rotation=90, fontsize=font, **_LITERAL)
    ax.set_yticklabels(rows if show_y else [], fontsize=font, **_LITERAL)
    ax.tick_params(length=0)


def _cell_size(base: float, tt: int, ts: int) -> float:
    return min(base, _MAX_PANEL / max(tt, ts))


def _font_size(cell: float) -> float:
    return max(4.0, min(10.0, cell * 30.0))


def _label_extent(labels: list[str], font: float) -> float:
    """Approximate extent in inches of the longest label at `font` points."""
    return max((len(label) for label in labels), default=1) * font * 0.62 / 72.0


def _fit_title(title: str | None, width: float, height: float) -> tuple[str | None, float, float]:
    """Wrap a long suptitle (12 pt) to the figure width, growing the figure to make room."""
    if not title:
        return title, width, height
    width = max(width, 4.0)
    chars = max(20, int((width - 0.4) / _label_extent(["x"], 12.0)))
    lines = textwrap.wrap(title, chars, max_lines=3, placeholder=" \u2026") or [title]
    return "\n".join(lines), width, height + 0.3 + 0.2 * len(lines)
