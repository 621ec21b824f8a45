"""Attention heatmaps, the HTML attention viewer and training curves.

The plotting functions are pure: they take matrices and labels and write files (atomically,
format chosen by the suffix). They take arrays and token strings and import nothing from the
model, data, inference or training packages: `Translator.attention` gathers the attention of a
model on a sentence as an `AttentionExample`.
"""

from __future__ import annotations

from seq2seq.viz.common import STATIC_SUFFIXES, SUPPORTED_SUFFIXES, PlotError
from seq2seq.viz.curves import load_metrics, plot_training_curves
from seq2seq.viz.example import SLOTS, AttentionExample
from seq2seq.viz.figures import (
    plot_example,
    save_validation_plots,
    select_layers_heads,
)
from seq2seq.viz.heatmap import plot_alignment, plot_attention_grid
from seq2seq.viz.html import write_attention_html
from seq2seq.viz.words import merge_labels, merge_to_words, word_ids

__all__ = [
    "SLOTS",
    "STATIC_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "AttentionExample",
    "PlotError",
    "load_metrics",
    "merge_labels",
    "merge_to_words",
    "plot_alignment",
    "plot_attention_grid",
    "plot_example",
    "plot_training_curves",
    "save_validation_plots",
    "select_layers_heads",
    "word_ids",
    "write_attention_html",
]
