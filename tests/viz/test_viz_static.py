"""Static heatmaps and training curves: formats, shapes, labels, atomic writes, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seq2seq.viz import (
    load_metrics,
    plot_alignment,
    plot_attention_grid,
    plot_training_curves,
)
from seq2seq.viz.heatmap import alignment_figure, attention_grid_figure


def _rows_softmax(shape, seed=0):
    x = np.random.default_rng(seed).normal(size=shape)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def _labels(n, prefix):
    return [f"{prefix}{i}" for i in range(n)]


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_alignment_every_static_format(tmp_path, suffix):
    out = plot_alignment(
        _rows_softmax((3, 4)),
        _labels(4, "s"),
        _labels(3, "t"),
        tmp_path / f"a{suffix}",
        title="cross",
    )
    data = out.read_bytes()
    magic = {".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF"}[suffix]
    assert data.startswith(magic) and len(data) > 1000
    assert [p.name for p in tmp_path.iterdir()] == [f"a{suffix}"]  # no temporary file left


def test_png_decodes_with_the_matrix_aspect(tmp_path):
    from matplotlib.image import imread

    wide = imread(
        plot_alignment(
            _rows_softmax((3, 14)), _labels(14, "s"), _labels(3, "t"), tmp_path / "wide.png"
        )
    )
    tall = imread(
        plot_alignment(
            _rows_softmax((14, 3)), _labels(3, "s"), _labels(14, "t"), tmp_path / "tall.png"
        )
    )
    assert wide.ndim == 3 and wide.shape[2] in (3, 4)
    assert wide.shape[1] > 1.5 * wide.shape[0]  # width > height for 3 x 14
    assert tall.shape[0] > 1.3 * tall.shape[1]


def test_alignment_figure_holds_the_matrix_and_labels():
    w = torch.tensor(_rows_softmax((2, 3)), dtype=torch.float32)
    fig = alignment_figure(w, ["▁I", "▁love", "</s>"], ["je", "</s>"], "t")
    ax, colorbar = fig.axes
    np.testing.assert_allclose(ax.images[0].get_array(), w.numpy(), rtol=1e-6)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["▁I", "▁love", "</s>"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["je", "</s>"]
    assert colorbar.get_ylabel() == "attention weight"


def test_grid_has_layers_times_heads_panels_with_a_shared_scale(tmp_path):
    w = _rows_softmax((2, 3, 4, 5))
    w[1, 2, 0, 0] = 3.0  # the largest value anywhere sets the common colour scale
    fig = attention_grid_figure(w, _labels(5, "s"), _labels(4, "t"))
    panels, colorbar = fig.axes[:-1], fig.axes[-1]
    assert len(panels) == 6
    for k, ax in enumerate(panels):
        np.testing.assert_allclose(ax.images[0].get_array(), w[k // 3, k % 3])
        assert ax.images[0].get_clim() == (0.0, 3.0)
    assert [ax.get_title() for ax in panels[:3]] == ["head 0", "head 1", "head 2"]
    assert panels[3].get_ylabel().startswith("layer 1")
    assert colorbar.get_ylabel() == "attention weight"
    out = plot_attention_grid(w, _labels(5, "s"), _labels(4, "t"), tmp_path / "g.png")
    assert out.stat().st_size > 0


@pytest.mark.parametrize("name", ["a.jpg", "a", "a.html", "a.PNG.txt"])
def test_bad_suffix_lists_supported(tmp_path, name):
    with pytest.raises(ValueError, match=r"\.png, \.svg, \.pdf"):
        plot_alignment(np.eye(2), "ab", "xy", tmp_path / name)
    assert not list(tmp_path.iterdir())


def test_label_count_and_shape_errors(tmp_path):
    with pytest.raises(ValueError, match="src_labels: got 2 labels for a matrix axis of size 3"):
        plot_alignment(np.ones((2, 3)), ["a", "b"], ["x", "y"], tmp_path / "a.png")
    with pytest.raises(ValueError, match="expected 4 dimensions"):
        plot_attention_grid(np.ones((2, 3)), "abc", "xy", tmp_path / "g.png")
    with pytest.raises(ValueError, match="NaN"):
        plot_alignment(np.full((1, 1), np.nan), "a", "x", tmp_path / "a.png")


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    out = plot_alignment(np.eye(2), "ab", "xy", tmp_path / "a.png")
    before = out.read_bytes()
    from matplotlib.figure import Figure

    def broken(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        plot_alignment(np.eye(3), "abc", "xyz", out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def _records():
    records = []
    for step in range(10, 110, 10):
        records.append({"step": step, "split": "train", "loss": 5.0 / step**0.5, "lr": 1e-3})
        if step % 50 == 0:
            records.append(
                {
                    "step": step,
                    "split": "valid",
                    "loss": 4.0 / step**0.5,
                    "bleu": step / 4,
                    "entropy": 2.0 - step / 100,
                    "aer": 0.5,
                }
            )
    return records


def test_training_curves_panels_and_series(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    figures = []
    original = Figure.savefig

    def spy(self, *args, **kwargs):
        figures.append(self)
        return original(self, *args, **kwargs)

    records = _records()
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "\n")
    assert load_metrics(path) == records
    monkeypatch.setattr(Figure, "savefig", spy)
    out = plot_training_curves(load_metrics(path), tmp_path / "curves.png")
    assert out.read_bytes().startswith(b"\x89PNG")
    axes = figures[0].axes
    assert [ax.get_ylabel() for ax in axes] == [
        "loss",
        "BLEU",
        "attention entropy (nats)",
        "alignment error rate",
    ]
    lines = {line.get_label(): line for line in axes[0].lines}
    assert set(lines) == {"train", "valid"}
    np.testing.assert_allclose(lines["valid"].get_xdata(), [50, 100])
    np.testing.assert_allclose(
        lines["train"].get_ydata(), [5.0 / s**0.5 for s in range(10, 110, 10)]
    )
    np.testing.assert_allclose(axes[1].lines[0].get_ydata(), [12.5, 25.0])


def test_training_curves_without_diagnostics_and_in_svg(tmp_path):
    records = [r for r in _records() if r["split"] == "train"]
    out = plot_training_curves(records, tmp_path / "curves.svg", title="run")
    assert b"<svg" in out.read_bytes()


def test_training_curves_bad_input(tmp_path):
    with pytest.raises(ValueError, match="none of the 1 records"):
        plot_training_curves([{"step": 1, "split": "train"}], tmp_path / "c.png")
    with pytest.raises(ValueError, match="suffix"):
        plot_training_curves(_records(), tmp_path / "c.gif")
    bad = tmp_path / "metrics.jsonl"
    bad.write_text('{"step": 1}\n{oops\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl, line 2: not valid JSON"):
        load_metrics(bad)


def test_text_from_the_data_is_never_math(tmp_path):
    # matplotlib would parse "$...$" as mathtext and fail on "$\frac{$"
    labels = ["$\\frac{$", "$5"]
    fig = alignment_figure(np.eye(2), labels, ["x", "$y$"], title="costs $5 and $6")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == labels
    out = plot_alignment(np.eye(2), labels, ["x", "$y$"], tmp_path / "a.png", title="$a$")
    assert out.stat().st_size > 0
    grid = plot_attention_grid(np.ones((1, 2, 2, 2)), labels, ["$", "$"], tmp_path / "g.svg")
    assert grid.stat().st_size > 0
