"""The files of a comparison: report.md, results.json, bleu_vs_time.png, alignments.png."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from seq2seq.checkpoint import load_run
from seq2seq.experiments.variants import Comparison
from seq2seq.fileio import write_atomic
from seq2seq.training.progress import format_duration
from seq2seq.vocab import EOS

logger = logging.getLogger(__name__)

COLUMNS = (
    "variant",
    "model",
    "parameters",
    "steps",
    "tgt tok/s",
    "valid BLEU (best)",
    "test BLEU",
    "test BLEU (lc)",
    "test chrF",
    "peak RSS",
    "peak GPU",
    "train time",
)
SCORES = (("bleu", "BLEU"), ("bleu_lowercase", "BLEU, lowercased"), ("chrf", "chrF"))

METHODS = """\
How the columns are measured:

- **steps**: optimizer updates done (the `step` of the run's `last.pt`). A variant may stop
  before the budget when its config's `train.max_steps` or `train.max_epochs` comes first (see
  `stop_reason` in results.json).
- **tgt tok/s**: median over the `train` lines of the run's `metrics.jsonl` of target tokens
  per second (each line averages the updates since the line before; the few lines whose
  interval holds a validation are slower, which the median ignores).
- **valid BLEU (best)**: the best greedy BLEU of the validations during training (sacrebleu,
  cased, on the first `train.valid_max_sentences` validation sentences).
- **test BLEU / chrF**: sacrebleu on the detokenized translations of the test set (`data.test`)
  by the run's `best.pt` (best validation BLEU) on the variant's training device, beam search
  as listed above; "lc" is BLEU on lowercased text (sacrebleu `--lowercase`). The same numbers
  as `seq2seq evaluate RUN_DIR` on that device.
- **peak RSS**: the high-water mark of the resident memory (`VmHWM`) of the `seq2seq train`
  process of the variant, read when it exits. Every variant trains in a process of its own, so
  the number is the variant's alone (the largest over its processes when it was resumed).
- **peak GPU**: on CUDA, the peak memory allocated by tensors on the training GPU
  (`torch.cuda.max_memory_allocated`) in the same process(es), read when it exits: what the
  training needed, without the allocator's cache and the CUDA context that `nvidia-smi` adds;
  "-" for a variant trained on the CPU.
- **train time**: wall-clock time of the variant's training process(es) from start to exit:
  start-up, subword model, training, validations and checkpoints. The budget (`train.max_time`)
  is checked by the trainer from the start of its loop, so this exceeds it a little; the
  x axis of `bleu_vs_time.png` is the trainer's own clock (`elapsed` of the validation lines).
- **resumed variants**: a comparison interrupted during a variant's training resumes it from
  its `last.pt` when run again with the same arguments, with the budget left after the
  training time that produced that checkpoint (the work since the last checkpoint is lost).
  Finished variants (with `compare_result.json` in their run directory) are not retrained.
"""


def write_report(
    comparison: Comparison, *, max_time: str, budget: float, sentence: str | None, command: str
) -> None:
    """Figures, results.json and report.md in ``comparison.out_dir``."""
    from seq2seq.viz.panels import plot_bleu_vs_time

    out = comparison.out_dir
    out.mkdir(parents=True, exist_ok=True)
    curves = {}
    for r in comparison.results:
        points = [(p["seconds"], p["bleu"]) for p in r["valid_curve"] if p["seconds"] is not None]
        curves[r["variant"]] = ([t for t, _ in points], [b for _, b in points])
    plot_bleu_vs_time(
        curves,
        out / "bleu_vs_time.png",
        budget_seconds=budget,
        title=f"validation BLEU, {max_time} budget per variant",
    )
    sentence = sentence if sentence is not None else _first_test_sentence(comparison)
    outputs = _alignment_figure(comparison, sentence, out / "alignments.png")
    results = {
        "command": command,
        "max_time": max_time,
        "budget_seconds": budget,
        "alignment_sentence": sentence,
        "alignment_outputs": outputs,
        "variants": comparison.results,
    }
    write_atomic(json.dumps(results, indent=1) + "\n", out / "results.json")
    write_atomic(
        report_markdown(
            comparison.results,
            max_time=max_time,
            sentence=sentence,
            outputs=outputs,
            command=command,
        ),
        out / "report.md",
    )


def _first_test_sentence(comparison: Comparison) -> str:
    from seq2seq.data import read_lines

    test = comparison.variants[0].config.data.test
    line = next((line for line in read_lines(test.src) if line.strip()), None)
    if line is None:
        raise ValueError(f"{test.src}: no non-empty sentence to plot the alignments of")
    return line


def _alignment_figure(comparison: Comparison, sentence: str, path: Path) -> dict[str, str]:
    """alignments.png: cross-attention (last layer, mean of heads) of every variant's greedy
    translation of ``sentence``; returns {variant: that translation}."""
    from seq2seq.inference.translate import Translator
    from seq2seq.viz.panels import AlignmentPanel, plot_alignment_panels

    panels, outputs = [], {}
    for variant in comparison.variants:
        run = load_run(variant.run_dir)
        example = Translator.from_run(run, beam=1, precision="fp32").attention(sentence)
        rows, cols = example.labels("cross")
        weights = example.matrices("cross")[-1].mean(axis=0)  # [Tt, Ts]
        panels.append(AlignmentPanel(variant.name, weights, src_labels=cols, tgt_labels=rows))
        outputs[variant.name] = "".join(p for p in rows if p != EOS).replace("\u2581", " ").strip()
    plot_alignment_panels(
        panels,
        path,
        title=f"cross-attention (last layer, mean of heads), greedy translation of: {sentence}",
    )
    return outputs


def _number(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table_row(r: dict[str, Any]) -> list[str]:
    """The report's cells of one variant's result."""
    scores = r["scores"]
    peak = r["peak_rss_kib"]
    gpu_peak = r.get("peak_gpu_mib")  # absent from results of older comparisons
    return [
        r["variant"],
        r["model"],
        f"{r['parameters']:,}",
        str(r["steps"]),
        _number(r["tgt_tok_per_s_median"], ",.0f"),
        _number(r["valid_bleu_best"], ".2f"),
        f"{scores['bleu']['score']:.2f}",
        f"{scores['bleu_lowercase']['score']:.2f}",
        f"{scores['chrf']['score']:.2f}",
        "-" if peak is None else f"{peak / 1024:,.0f} MiB",
        "-" if gpu_peak is None else f"{gpu_peak:,.0f} MiB",
        format_duration(r["train_wall_seconds"]),
    ]


def report_markdown(
    results: list[dict[str, Any]],
    *,
    max_time: str,
    sentence: str,
    outputs: dict[str, str],
    command: str,
) -> str:
    """The text of report.md."""
    lines = [
        "# Attention variants compared",
        "",
        "Produced by:",
        "",
        f"    {command}",
        "",
        f"Each variant trained for at most {max_time} of wall-clock time (`train.max_time`), "
        "one after another on the same machine, then translated its test set:",
        "",
    ]
    for r in results:
        test = r["test"]
        lines.append(
            f"- {r['variant']}: `{r['config_path']}`, test `{test['src']}` "
            f"({test['sentences']} sentences), beam {r['beam']}, "
            f"{r.get('device', 'cpu')} {r['precision']}, stopped: {r['stop_reason'] or 'unknown'}"
        )
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += [
        "| " + " | ".join(c.replace("|", "\\|") for c in table_row(r)) + " |" for r in results
    ]
    lines += ["", "sacrebleu signatures:", ""]
    for key, label in SCORES:
        signatures = sorted({r["scores"][key]["signature"] for r in results})
        lines += [f"- {label}: `{s}`" for s in signatures]
    lines += [
        "",
        METHODS,
        "## Validation BLEU against training time",
        "",
        "![validation BLEU against wall-clock time](bleu_vs_time.png)",
        "",
        "## Alignments",
        "",
        "Cross-attention of the last decoder layer (mean of the heads) while each variant "
        f"translates, greedily, the sentence: {sentence}",
        "",
        "![cross-attention of every variant](alignments.png)",
        "",
    ]
    lines += [f"- {name}: {text}" for name, text in outputs.items()]
    return "\n".join(lines) + "\n"
