"""The run directory: refusing to clobber a run, comparing configs on resume, metrics, logging.

Layout: ``config.yaml``, ``best.pt``, ``last.pt``, ``step_N.pt``, ``metrics.jsonl``,
``train.log``, ``curves.png``, ``alignments/`` (the run), and the prepared data it trains on:
``spm*.model`` and ``prepared/`` (see ``seq2seq.data.prepared``), which ``--overwrite`` keeps
and reuses while they match the config and the source files.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from seq2seq.checkpoint import STEP_CHECKPOINT
from seq2seq.fileio import write_atomic

logger = logging.getLogger(__name__)

RUN_FILES = ("config.yaml", "best.pt", "last.pt", "metrics.jsonl", "train.log", "curves.png")
RUN_DIRS = ("alignments",)


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (already holds a run, nothing to resume)."""


def run_entries(run_dir: Path) -> list[Path]:
    """The files and folders in ``run_dir`` that belong to a run (not its prepared data), with
    every ``*.pt`` file: a checkpoint left from an old run would not match the new subword model."""
    if not run_dir.is_dir():
        return []
    found = []
    for path in sorted(run_dir.iterdir()):
        name = path.name
        if name in RUN_FILES or name in RUN_DIRS or name.endswith(".pt"):
            found.append(path)  # every checkpoint: step_N.pt, an averaged one, ...
    return found


def check_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Raises :class:`RunDirError` unless ``run_dir`` may be used; changes nothing."""
    if resume and overwrite:
        raise RunDirError("--resume and --overwrite exclude each other: choose one")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} exists and is not a directory")
    if resume:
        if not any(_is_checkpoint(p) for p in run_entries(run_dir)):
            raise RunDirError(
                f"--resume: {run_dir} holds no last.pt, best.pt or step_N.pt to resume from"
            )
        return
    entries = run_entries(run_dir)
    if not overwrite and any(p.name.endswith(".pt") for p in entries):
        # A directory without any checkpoint holds only the leftovers of a run that stopped
        # before its first one (config.yaml, train.log): a new run may replace them.
        names = ", ".join(p.name for p in entries[:5])
        raise RunDirError(
            f"run directory {run_dir} already holds a run ({names}); use --resume to "
            "continue it, --overwrite to replace it, or --run-dir to choose another directory"
        )


def _is_checkpoint(path: Path) -> bool:
    return path.name in ("last.pt", "best.pt") or bool(STEP_CHECKPOINT.match(path.name))


def remove_temporaries(run_dir: Path) -> list[Path]:
    """Removes the ``.*.tmp`` files and folders that an interrupted write left in ``run_dir``
    (never following a link); returns them."""
    found = sorted(run_dir.glob(".*.tmp")) if run_dir.is_dir() else []
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return found


def clear_run_dir(run_dir: Path) -> None:
    """Deletes a previous run's files (only those, never anything else in the folder).

    A symbolic link is removed, never followed: what it points to is left alone.
    """
    for path in run_entries(run_dir):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _section(tree: Mapping[str, Any], dotted: str) -> Mapping[str, Any]:
    for key in dotted.split("."):
        tree = tree.get(key) or {}
    return tree


def config_differences(new: Mapping[str, Any], old: Mapping[str, Any], section: str) -> list[str]:
    """``"key: checkpoint X, config Y"`` for each key under the dotted ``section`` that differs."""
    new_flat = flatten(_section(new, section), section + ".")
    old_flat = flatten(_section(old, section), section + ".")
    missing = object()
    lines = []
    for key in sorted(set(new_flat) | set(old_flat)):
        a, b = old_flat.get(key, missing), new_flat.get(key, missing)
        if a != b:
            shown_a = "(absent)" if a is missing else repr(a)
            shown_b = "(absent)" if b is missing else repr(b)
            lines.append(f"{key}: checkpoint {shown_a}, config {shown_b}")
    return lines


def check_resume_config(new: Mapping[str, Any], old: Mapping[str, Any], path: Path) -> None:
    """Refuses to resume when the model or tokenizer settings changed since the checkpoint."""
    lines = config_differences(new, old, "model") + config_differences(new, old, "data.tokenizer")
    if lines:
        raise RunDirError(
            f"--resume: the config differs from the one in {path} in settings a resumed run "
            "cannot change:\n  " + "\n  ".join(lines)
        )


class MetricsLog:
    """``metrics.jsonl``: one JSON object per line, rewritten atomically on every append."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []

    def load(self, up_to_step: int) -> None:
        """Reads an existing file, keeping the records of steps <= ``up_to_step`` (resume)."""
        if self.path is None or not self.path.is_file():
            return
        records = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            record = _parse_record(line)
            if record is None:
                shown = line if len(line) <= 80 else line[:77] + "..."
                logger.warning(
                    "%s:%d is not a JSON record (cut short by a crash?): dropped: %s",
                    self.path,
                    number,
                    shown,
                )
                continue
            records.append(record)
        self.records = [r for r in records if _step(r) <= up_to_step]
        self._write()

    def append(self, record: dict[str, Any]) -> None:
        self.records.append({k: _json_number(v) for k, v in record.items()})
        self._write()

    def _write(self) -> None:
        if self.path is None:
            return
        text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in self.records)
        write_atomic(text, self.path)


def _parse_record(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:  # json.JSONDecodeError, or invalid UTF-8 escapes
        return None
    return record if isinstance(record, dict) else None


def _step(record: dict[str, Any]) -> float:
    step = record.get("step", 0)
    return step if isinstance(step, (int, float)) else 0


def _json_number(value: Any) -> Any:
    """NaN and infinities become null, so every line is valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@contextmanager
def log_to_file(path: Path | None, level: int = logging.INFO) -> Iterator[None]:
    """Copies the ``seq2seq`` loggers' records to ``path`` (``train.log``) while active."""
    if path is None:
        yield
        return
    logger = logging.getLogger("seq2seq")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(level)
    old_level = logger.level
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        handler.close()
