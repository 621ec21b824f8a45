"""Training curves from the records of a run's metrics.jsonl."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from seq2seq.viz.common import PlotError, new_figure, output_format, save_figure

# Optional attention diagnostics drawn when some record carries them: key -> axis label.
DIAGNOSTICS: dict[str, str] = {
    "entropy": "attention entropy (nats)",
    "eos_weight": "attention on </s>",
    "aer": "alignment error rate",
}
_STYLES = {"train": {"alpha": 0.6, "linewidth": 1.0}, "valid": {"marker": "o", "markersize": 3}}


def load_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a metrics.jsonl file (one JSON object per line; blank lines are skipped)."""
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise PlotError(f"{path}, line {number}: not valid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise PlotError(
                    f"{path}, line {number}: expected a JSON object, got {line.strip()!r}"
                )
            records.append(record)
    return records


def plot_training_curves(
    records: Sequence[Mapping[str, Any]],
    out_path: str | os.PathLike[str],
    title: str | None = None,
) -> Path:
    """Plot loss (per split) and validation BLEU against step, plus attention diagnostics.

    records: metrics.jsonl objects with "step", "split" ("train"/"valid") and "loss"; valid
    records may carry "bleu", any record "entropy", "eos_weight" or "aer" (one panel each,
    drawn only when present). Records lacking a value are skipped for that panel.
    The format comes from the suffix (.png, .svg, .pdf); the file is written atomically.
    """
    fmt = output_format(out_path)
    panels = [("loss", "loss"), ("bleu", "BLEU"), *DIAGNOSTICS.items()]
    series = {key: _series(records, key) for key, _ in panels}
    if not series["loss"]:
        raise PlotError(
            f"no training curves to plot: none of the {len(records)} records has numeric "
            "'step' and 'loss' values"
        )
    shown = [(key, label) for key, label in panels if series[key]]
    fig = new_figure(7.0, 1.0 + 2.3 * len(shown))
    axes = fig.subplots(len(shown), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (key, label) in zip(axes, shown, strict=True):
        for split, (steps, values) in sorted(series[key].items()):
            ax.plot(steps, values, label=split, **_STYLES.get(split, {}))
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if len(series[key]) > 1 or key == "loss":
            ax.legend(loc="best", fontsize="small")
    axes[-1].set_xlabel("step")
    if title:
        fig.suptitle(title, parse_math=False)
    return save_figure(fig, out_path, fmt)


def _series(records: Sequence[Mapping[str, Any]], key: str) -> dict[str, tuple[list, list]]:
    """{split: (steps, values)} of the records holding a finite number under `key`."""
    series: dict[str, tuple[list, list]] = {}
    for record in records:
        step, value = record.get("step"), record.get(key)
        if _is_number(step) and _is_number(value):
            steps, values = series.setdefault(str(record.get("split", "train")), ([], []))
            steps.append(step)
            values.append(value)
    return series


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
