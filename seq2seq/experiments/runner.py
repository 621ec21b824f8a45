"""Training one variant of a comparison in a process of its own, and resuming it.

Each training run is one *segment*: a ``seq2seq train`` process started through
:mod:`seq2seq.measure`. Segments are logged in ``RUN_DIR/compare_train.json`` (exit
code, wall time, peak memory, peak GPU memory, the step it started from). A variant is trained when
its last segment exited with 0. Otherwise the next comparison continues it: with ``--resume`` from
its ``last.pt`` and the budget that is left, i.e. ``--max-time`` minus the training time that
produced ``last.pt`` (the trainer counts ``train.max_time`` over resumed sessions from the
checkpoint's ``train_seconds``; the time since the last checkpoint was lost with the interruption);
with ``--overwrite`` when the run never reached its first checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import seq2seq
from seq2seq.checkpoint import load_checkpoint
from seq2seq.experiments.variants import CompareError, Variant
from seq2seq.fileio import write_atomic
from seq2seq.training.rundir import run_entries

logger = logging.getLogger(__name__)

TRAIN_LOG = "compare_train.json"
_STATS = ".compare_segment.json"
_MIN_SECONDS = 1.0  # a resumed variant with less budget left than this counts as trained


def read_segments(run_dir: Path) -> list[dict[str, Any]]:
    """The segments logged in ``run_dir`` (oldest first; empty for a new variant)."""
    path = run_dir / TRAIN_LOG
    if not path.is_file():
        return []
    try:
        return list(json.loads(path.read_text(encoding="utf-8"))["segments"])
    except (ValueError, KeyError, TypeError) as e:
        raise CompareError(
            f"{path} is damaged ({e}); delete {run_dir} to train the variant afresh"
        ) from None


def _append_segment(run_dir: Path, segment: dict[str, Any]) -> None:
    segments = [*read_segments(run_dir), segment]
    write_atomic(json.dumps({"segments": segments}, indent=1) + "\n", run_dir / TRAIN_LOG)


def is_trained(run_dir: Path) -> bool:
    segments = read_segments(run_dir)
    return bool(segments) and segments[-1]["exit_code"] == 0


def valid_times(
    records: Sequence[dict[str, Any]], segments: Sequence[dict[str, Any]]
) -> list[tuple[int, float | None, float]]:
    """``(step, training seconds, BLEU)`` of every validation record, in file order.

    The trainer's ``elapsed`` counts from the start of its process; after a resume at step k
    it restarts from 0, so the time of the validation at step k is added to later records.
    Records without ``elapsed`` (older trainers) get None.
    """
    resumes = sorted(s["start_step"] for s in segments if s.get("resumed"))
    points: list[tuple[int, float | None, float]] = []
    offset, next_resume = 0.0, 0
    for record in records:
        if record.get("split") != "valid":
            continue
        step = record["step"]
        while next_resume < len(resumes) and step > resumes[next_resume]:
            at = [t for s, t, _ in points if s == resumes[next_resume] and t is not None]
            offset = at[-1] if at else offset
            next_resume += 1
        elapsed = record.get("elapsed")
        points.append((step, None if elapsed is None else elapsed + offset, record.get("bleu")))
    return points


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of ``run_dir/metrics.jsonl`` (empty when it does not exist)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def _seconds_used(run_dir: Path, step: int) -> float:
    """Training seconds that produced the checkpoint at ``step`` (0 when unknown)."""
    points = valid_times(read_metrics(run_dir), read_segments(run_dir))
    times = [t for s, t, _ in points if s == step and t is not None]
    if not times:
        logger.warning(
            "%s: no validation time recorded for step %d; the resumed run gets the "
            "full time budget",
            run_dir,
            step,
        )
    return times[-1] if times else 0.0


def train_variant(variant: Variant, budget: float) -> None:
    """Trains ``variant`` (or continues it) until its last segment ended well."""
    run_dir = variant.run_dir
    if is_trained(run_dir):
        return
    overrides, mode, start_step = list(variant.overrides), None, 0
    max_time = variant.config.train.max_time  # the budget of this segment
    if (run_dir / "last.pt").is_file():
        checkpoint = load_checkpoint(run_dir / "last.pt")
        start_step = int(checkpoint.get("step", 0))
        mode = "--resume"
        if "train_seconds" in checkpoint:  # the trainer counts max_time over resumed sessions
            left = budget - float(checkpoint["train_seconds"])
            max_time = f"{budget:.3f}s"
        else:  # a checkpoint of an older trainer, whose clock restarts: give it what is left
            left = budget - _seconds_used(run_dir, start_step)
            max_time = f"{left:.3f}s"
        if left < _MIN_SECONDS:
            logger.info("%s: the time budget was used up before the interruption", variant.name)
            _append_segment(run_dir, _segment(mode, start_step, "0s", 0, 0.0, {}))
            return
        overrides.append(f"train.max_time={max_time}")
        logger.info(
            "%s: resuming from step %d with %.0f s of the budget left",
            variant.name,
            start_step,
            left,
        )
    elif run_entries(run_dir):
        mode = "--overwrite"  # stopped before its first checkpoint: nothing to resume
        logger.info("%s: restarting (the interrupted run wrote no checkpoint)", variant.name)
    started = time.perf_counter()
    try:
        code, stats = _run_train_process(variant, overrides, mode)
    except KeyboardInterrupt:  # the next comparison resumes it; its time still counts
        _append_segment(
            run_dir, _segment(mode, start_step, max_time, 130, time.perf_counter() - started, {})
        )
        raise
    wall = time.perf_counter() - started
    _append_segment(run_dir, _segment(mode, start_step, max_time, code, wall, stats))
    if code != 0:
        raise CompareError(
            f"training variant {variant.name} ({variant.config_path}) failed with exit code "
            f"{code}; its messages are above and in {run_dir / 'train.log'}. Running the same "
            f"comparison again continues it; delete {run_dir} to start it afresh"
        )


def _segment(
    mode: str | None,
    start_step: int,
    max_time: str | None,
    code: int,
    wall: float,
    stats: dict[str, Any],
) -> dict[str, Any]:
    return {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "resumed": mode == "--resume",
        "start_step": start_step,
        "max_time": max_time,
        "exit_code": code,
        "wall_seconds": wall,
        "peak_rss_kib": stats.get("peak_rss_kib"),
        "memory_source": stats.get("memory_source"),
        "peak_gpu_mib": stats.get("peak_gpu_mib"),
    }


def _run_train_process(
    variant: Variant, overrides: Sequence[str], mode: str | None
) -> tuple[int, dict[str, Any]]:
    """Runs ``seq2seq train`` for ``variant`` in a new process: (exit code, measured stats)."""
    run_dir = variant.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    stats_path = run_dir / _STATS
    stats_path.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "seq2seq.measure",
        str(stats_path),
        "train",
        str(variant.config_path),
        "--run-dir",
        str(run_dir),
    ]
    for item in overrides:
        command += ["--set", item]
    if mode:
        command.append(mode)
    env = dict(os.environ)
    package_root = str(Path(seq2seq.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    logger.info("training %s: %s", variant.name, " ".join(command[1:]))
    code = subprocess.run(command, env=env, check=False).returncode
    stats: dict[str, Any] = {}
    if stats_path.is_file():
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
        stats_path.unlink()
    return code, stats
