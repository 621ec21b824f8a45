"""Shared helpers of the plotting modules: output formats, atomic figure files, arrays."""

from __future__ import annotations

import os
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
