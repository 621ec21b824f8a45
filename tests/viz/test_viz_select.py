"""Choosing layers and heads, one-slot figures and the validation plots of the trainer."""

from __future__ import annotations

import numpy as np
import pytest
from viz_cases import viewer_examples

from seq2seq.viz import PlotError, plot_example, save_validation_plots, select_layers_heads


def test_select_layers_heads():
    w = np.random.default_rng(0).random((3, 4, 2, 5))
    array, rows, cols = select_layers_heads(w, "all", "all")
    assert array.shape == w.shape and rows == ["layer 0", "layer 1", "layer 2"] and len(cols) == 4
    array, rows, cols = select_layers_heads(w, -1, "mean")
    np.testing.assert_allclose(array[0, 0], w[2].mean(0))
    assert (rows, cols) == (["layer 2"], ["mean of 4 heads"])
    array, rows, cols = select_layers_heads(w, "mean", 1)
    np.testing.assert_allclose(array[0, 0], w[:, 1].mean(0))
    array, _, _ = select_layers_heads(w, "all", 3)
    np.testing.assert_allclose(array[:, 0], w[:, 3])
    with pytest.raises(PlotError, match=r"head 4 does not exist: the cross attention has 4 heads"):
        select_layers_heads(w, 0, 4)
    with pytest.raises(PlotError, match="layer -4 does not exist"):
        select_layers_heads(w, -4, 0)
    with pytest.raises(PlotError, match="expected an index, 'all' or 'mean', got 'max'"):
        select_layers_heads(w, "max", 0)


def _capture(monkeypatch):
    from matplotlib.figure import Figure

    figures = []
    original = Figure.savefig

    def spy(self, *args, **kwargs):
        figures.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    return figures


def test_plot_example_single_and_grid(tmp_path, monkeypatch):
    figures = _capture(monkeypatch)
    example = viewer_examples()[0]  # cross [2, 3, 5, 4], encoder_self [2, 3, 4, 4]
    plot_example(example, tmp_path / "one.png", slot="encoder_self", layer=0, head=2)
    ax = figures[-1].axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), example.weights["encoder_self"][0, 2])
    assert (
        figures[-1].get_suptitle().replace("\n", " ") == "encoder self-attention, layer 0, head 2"
    )
    assert [t.get_text() for t in ax.get_xticklabels()] == example.src_pieces
    plot_example(example, tmp_path / "grid.svg", layer="all", head="mean")
    assert len(figures[-1].axes) == 2 + 1  # two layers, one colour bar
    assert figures[-1].axes[0].get_title() == "mean of 3 heads"
    with pytest.raises(PlotError, match="no 'decoder_self' attention for this sentence"):
        plot_example(example, tmp_path / "x.png", slot="decoder_self")


def test_save_validation_plots(tmp_path, monkeypatch):
    figures = _capture(monkeypatch)
    examples = viewer_examples()
    paths = save_validation_plots(examples, tmp_path / "alignments", 500)
    assert [p.name for p in paths] == ["step_000500_0.png", "step_000500_1.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
    assert figures[0].get_suptitle().replace("\n", " ") == "step 500: I love you"
    # last layer, mean of heads, of the cross-attention
    expected = examples[0].weights["cross"][-1].mean(0)
    np.testing.assert_allclose(figures[0].axes[0].images[0].get_array(), expected)
