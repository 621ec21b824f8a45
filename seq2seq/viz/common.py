"""Shared helpers of the plotting modules: output formats, atomic figure files, arrays, and the
heatmap drawing (colour map, cell and font sizes, ticks, titles) of every matrix figure."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq.fileio import write_with


class PlotError(ValueError):
    """Input a plot cannot be drawn from: the message names the argument, what was received
    and what was expected."""


STATIC_SUFFIXES: tuple[str, ...] = (".png", ".svg", ".pdf")
SUPPORTED_SUFFIXES: tuple[str, ...] = (*STATIC_SUFFIXES, ".html")

CMAP = "viridis"
MAX_PANEL = 14.0  # inches: larger matrices get smaller cells
LITERAL = {"parse_math": False}  # text from the data is shown as is, "$" never starts math


def output_format(
    out_path: str | os.PathLike[str], allowed: Sequence[str] = STATIC_SUFFIXES
) -> str:
    """Return the output format ("png", "svg", ...) named by the suffix of `out_path`.

    Raises ValueError naming the path, the suffix received and the supported suffixes.
    """
    suffix = Path(out_path).suffix.lower()
    if suffix not in allowed:
        raise PlotError(
            f"unsupported output file {str(out_path)!r}: suffix {suffix or '(none)'!r}, "
            f"expected one of {', '.join(allowed)}"
        )
    return suffix[1:]


def to_numpy(weights: Any, name: str = "weights", ndim: int | None = None) -> np.ndarray:
    """Convert a tensor or array-like to a float64 numpy array (detached, on the CPU).

    `ndim`, when given, is the number of dimensions expected; a ValueError names `name`,
    the shape received and the shape expected. Non-finite values are rejected.
    """
    if hasattr(weights, "detach"):  # torch.Tensor, without importing torch here
        weights = weights.detach().float().cpu().numpy()
    array = np.asarray(weights, dtype=np.float64)
    if ndim is not None and array.ndim != ndim:
        raise PlotError(f"{name}: expected {ndim} dimensions, got shape {tuple(array.shape)}")
    if array.size == 0:
        raise PlotError(f"{name}: empty matrix of shape {tuple(array.shape)}")
    if not np.isfinite(array).all():
        raise PlotError(f"{name}: contains NaN or infinite values")
    return array


def check_labels(labels: Sequence[str], size: int, name: str) -> list[str]:
    """Return `labels` as a list of strings, checking there is one label per matrix row/column."""
    labels = [str(label) for label in labels]
    if len(labels) != size:
        raise PlotError(f"{name}: got {len(labels)} labels for a matrix axis of size {size}")
    return labels


def new_figure(width: float, height: float):
    """A matplotlib Figure on an Agg canvas (no pyplot, no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(width, 3.0), max(height, 2.5)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, out_path: str | os.PathLike[str], fmt: str | None = None) -> Path:
    """Write a Figure atomically in the format `fmt` or the one named by the suffix."""
    fmt = fmt or output_format(out_path)
    return write_with(out_path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=fig.dpi), parents=True)


def draw_matrix(ax, matrix, vmax: float):
    """``matrix`` [rows, cols] as an image on ``ax``; vmin 0 and vmax the largest weight, so that
    diffuse attention still shows its structure."""
    return ax.imshow(
        matrix, cmap=CMAP, vmin=0.0, vmax=max(vmax, 1e-9), aspect="equal", interpolation="nearest"
    )


def set_ticks(
    ax, cols: list[str], rows: list[str], font: float, *, show_x: bool, show_y: bool
) -> None:
    """One tick per column and row, labelled (columns rotated) where ``show_x``/``show_y``."""
    ax.set_xticks(range(len(cols)))
    ax.set_yticks(range(len(rows)))
    ax.set_xticklabels(cols if show_x else [], rotation=90, fontsize=font, **LITERAL)
    ax.set_yticklabels(rows if show_y else [], fontsize=font, **LITERAL)
    ax.tick_params(length=0)


def cell_size(base: float, tt: int, ts: int) -> float:
    """Inches per cell of a [tt, ts] matrix: ``base``, smaller when the panel would exceed
    MAX_PANEL."""
    return min(base, MAX_PANEL / max(tt, ts))


def font_size(cell: float) -> float:
    """Label points for a cell of ``cell`` inches (4 to 10)."""
    return max(4.0, min(10.0, cell * 30.0))


def label_extent(labels: list[str], font: float) -> float:
    """Approximate extent in inches of the longest label at `font` points."""
    return max((len(label) for label in labels), default=1) * font * 0.62 / 72.0


def fit_title(title: str | None, width: float, height: float) -> tuple[str | None, float, float]:
    """Wrap a long suptitle (12 pt) to the figure width, growing the figure to make room."""
    if not title:
        return title, width, height
    width = max(width, 4.0)
    chars = max(20, int((width - 0.4) / label_extent(["x"], 12.0)))
    lines = textwrap.wrap(title, chars, max_lines=3, placeholder=" \u2026") or [title]
    return "\n".join(lines), width, height + 0.3 + 0.2 * len(lines)
