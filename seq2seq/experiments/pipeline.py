"""``seq2seq compare``: train several configs under one time budget and compare them.

Reading order: :func:`run_comparison` plans the variants (every config is checked before any
training starts), trains each in turn (:func:`seq2seq.experiments.runner.train_variant`, one
process per variant), evaluates it on its test set (:func:`evaluate_variant`) and records the
result in ``RUN_DIR/compare_result.json``, written atomically: a variant with that file is
finished and skipped by later comparisons into the same directory. Then
:func:`seq2seq.experiments.report.write_report` writes report.md, results.json and the figures.
"""

from __future__ import annotations

import json
import logging
import os
import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seq2seq.checkpoint import load_checkpoint, load_run
from seq2seq.config import config_to_dict
from seq2seq.experiments.report import write_report
from seq2seq.experiments.runner import read_metrics, read_segments, train_variant, valid_times
from seq2seq.experiments.variants import (
    CompareError,
    Comparison,
    Variant,
    budget_seconds,
    describe_model,
    plan_variants,
)
from seq2seq.fileio import write_atomic
from seq2seq.training.rundir import flatten

logger = logging.getLogger(__name__)

RESULT_FILE = "compare_result.json"
PRECISION = "auto"  # as `seq2seq evaluate`: bf16 where the hardware has it, else fp32


def run_comparison(
    config_paths: Sequence[str | os.PathLike[str]],
    *,
    out_dir: str | os.PathLike[str],
    max_time: str,
    overrides: Sequence[str] = (),
    beam: int | None = None,
    sentence: str | None = None,
    command: str = "",
) -> Comparison:
    """Trains and evaluates every config (skipping finished ones), then writes the report."""
    out_dir = Path(out_dir)
    variants = plan_variants(config_paths, out_dir=out_dir, max_time=max_time, overrides=overrides)
    budget = budget_seconds(max_time)
    results = []
    for n, variant in enumerate(variants, 1):
        variant_beam = beam or variant.config.decode.beam
        result = finished_result(variant)
        if result is not None and result["beam"] == variant_beam:
            logger.info(
                "variant %d/%d %s: finished earlier, skipped", n, len(variants), variant.name
            )
        else:
            logger.info("variant %d/%d %s", n, len(variants), variant.name)
            train_variant(variant, budget)
            result = evaluate_variant(variant, beam=variant_beam)
            write_atomic(json.dumps(result, indent=1) + "\n", variant.run_dir / RESULT_FILE)
        results.append(result)
    comparison = Comparison(variants=variants, results=results, out_dir=out_dir)
    write_report(comparison, max_time=max_time, budget=budget, sentence=sentence, command=command)
    return comparison


def finished_result(variant: Variant) -> dict[str, Any] | None:
    """The stored result of a finished variant, None when it is not finished.

    Raises CompareError when the variant was finished with another config (another
    --max-time or --set, or an edited config file): its numbers would not belong here.
    """
    path = variant.run_dir / RESULT_FILE
    if not path.is_file():
        return None
    result = json.loads(path.read_text(encoding="utf-8"))
    old, new = flatten(result["config"]), flatten(config_to_dict(variant.config))
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if changed:
        detail = "; ".join(f"{k}: {old.get(k)!r} then, {new.get(k)!r} now" for k in changed[:6])
        raise CompareError(
            f"variant {variant.name} in {variant.run_dir} was finished with another config "
            f"({detail}); use another --out, or delete {variant.run_dir} to train it again"
        )
    return result


def evaluate_variant(variant: Variant, *, beam: int) -> dict[str, Any]:
    """Test scores of the variant's best.pt and the numbers of its training run.

    The test set is translated on the device the variant trained on (its ``train.device``,
    resolved as the trainer does: ``auto`` is CUDA when present).
    """
    from seq2seq.data import read_parallel
    from seq2seq.evaluation.metrics import corpus_scores
    from seq2seq.inference.translate import Translator
    from seq2seq.runtime.device import resolve_device

    run_dir = variant.run_dir
    test = variant.config.data.test
    src, refs = read_parallel(test.src, test.tgt)
    device = resolve_device(variant.config.train.device)
    run = load_run(run_dir, device=device)
    translator = Translator.from_run(run, beam=beam, n_best=1, precision=PRECISION)
    hyps = [t.text for t in translator.translate(src)]
    scores = corpus_scores(hyps, refs)
    records = read_metrics(run_dir)
    segments = read_segments(run_dir)
    curve = valid_times(records, segments)
    tok_per_s = [
        r["tgt_tok_per_s"]
        for r in records
        if r.get("split") == "train" and r.get("tgt_tok_per_s") is not None
    ]
    bleus = [b for _, _, b in curve if b is not None]
    peaks = [s["peak_rss_kib"] for s in segments if s.get("peak_rss_kib") is not None]
    gpu_peaks = [s["peak_gpu_mib"] for s in segments if s.get("peak_gpu_mib") is not None]
    last = load_checkpoint(run_dir / "last.pt")
    return {
        "variant": variant.name,
        "config_path": str(variant.config_path),
        "run_dir": str(run_dir),
        "model": describe_model(variant.config.model),
        "parameters": sum(p.numel() for p in run.model.parameters()),
        "steps": int(last["step"]),
        "stop_reason": _stop_reason(run_dir),
        "tgt_tok_per_s_median": statistics.median(tok_per_s) if tok_per_s else None,
        "valid_bleu_best": max(bleus) if bleus else None,
        "valid_curve": [{"step": s, "seconds": t, "bleu": b} for s, t, b in curve],
        "test": {
            "src": test.src,
            "ref": test.tgt,
            "sentences": len(src),
            "checkpoint": str(run.checkpoint_path),
        },
        "beam": beam,
        "device": device.type,
        "precision": translator.precision,
        "scores": {
            name: {"score": s.score, "signature": s.signature} for name, s in scores.items()
        },
        "peak_rss_kib": max(peaks) if peaks else None,
        "memory_source": next(
            (s["memory_source"] for s in segments if s.get("memory_source")), None
        ),
        "peak_gpu_mib": max(gpu_peaks) if gpu_peaks else None,
        "train_wall_seconds": sum(s["wall_seconds"] for s in segments),
        "train_seconds": next((t for _, t, _ in reversed(curve) if t is not None), None),
        "segments": segments,
        "config": config_to_dict(variant.config),
    }


_STOPPED = re.compile(r"stopped at step \d+ \((?P<reason>.*)\) after ")


def _stop_reason(run_dir: Path) -> str | None:
    """Why the last training segment stopped, from the trainer's train.log."""
    log = run_dir / "train.log"
    if not log.is_file():
        return None
    reasons = _STOPPED.findall(log.read_text(encoding="utf-8", errors="replace"))
    return reasons[-1] if reasons else None
