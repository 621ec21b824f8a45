"""Checkpoints and run directories: atomic saving, safe loading, and loading a trained run.

A checkpoint is a dict ``{"format_version": 1, "seq2seq_version", "config", "model",
"optimizer", "scheduler", "scaler", "step", "epoch", "sampler", "rng", "best",
"train_seconds"}`` (``train_seconds``, the training time up to ``step`` over every session of
a resumed run, may be missing from older checkpoints: 0 is assumed). Files are
written to a temporary file in the same directory and renamed over the target, so a crash
during a save leaves the previous checkpoint intact. Loading uses ``torch.load(...,
weights_only=True)``: a checkpoint can hold tensors and plain data, never code.
"""

from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from seq2seq.fileio import write_atomic

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
STEP_CHECKPOINT = re.compile(r"^step_(\d+)\.pt$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: corrupt, not ours, or from an incompatible version."""


class Run(NamedTuple):
    """A trained model ready for inference."""

    config: Any  # seq2seq.config.Config
    tokenizer: Any  # seq2seq.data.Tokenizer
    model: nn.Module  # seq2seq.models.Seq2Seq, in eval mode on the requested device
    checkpoint_path: Path


def serialize_checkpoint(obj: dict[str, Any]) -> bytes:
    """The bytes ``torch.save`` writes for ``obj`` (to write one state to several files)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def save_checkpoint(obj: dict[str, Any] | bytes, path: str | os.PathLike) -> None:
    """Saves a checkpoint dict (or bytes from :func:`serialize_checkpoint`) atomically."""
    data = obj if isinstance(obj, bytes) else serialize_checkpoint(obj)
    write_atomic(data, path)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Loads a checkpoint without executing anything stored in it.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: unreadable/corrupt file, not a seq2seq checkpoint, or another format.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # the unpickler fails in many ways on damaged or foreign files
        raise CheckpointError(
            f"checkpoint {path} cannot be read (corrupt, truncated or not a torch file): {e}"
        ) from e
    if not isinstance(obj, dict) or "format_version" not in obj:
        raise CheckpointError(
            f"checkpoint {path} is not a seq2seq checkpoint (no 'format_version' entry)"
        )
    version = obj["format_version"]
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format_version {version!r}; this version of seq2seq "
            f"reads format_version {FORMAT_VERSION}"
        )
    missing = [key for key in ("config", "model") if key not in obj]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks the entries {', '.join(missing)}")
    return obj


def find_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint a path names: the file itself, or a run dir's best.pt, else last.pt."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"run directory {path} holds no best.pt or last.pt")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: expected a run directory or a .pt file")
    return path


def load_run(path: str | os.PathLike, device: str | torch.device = "cpu") -> Run:
    """Loads the config, tokenizer and model of a run directory or one of its checkpoints.

    A run directory gives its ``best.pt`` (else ``last.pt``); a ``.pt`` file is read with the
    tokenizer of the directory it lies in. The config is the one stored in the checkpoint.
    """
    from seq2seq.config import ConfigError, config_from_dict
    from seq2seq.data import Tokenizer
    from seq2seq.models import build_model

    checkpoint_path = find_checkpoint(path)
    state = load_checkpoint(checkpoint_path)
    try:
        config = config_from_dict(state["config"], source=f"{checkpoint_path} (stored config)")
    except ConfigError as e:
        raise CheckpointError(
            f"checkpoint {checkpoint_path} holds a config this version cannot read: {e}"
        ) from e
    tokenizer = Tokenizer.load(checkpoint_path.parent)
    model = build_model(config.model, tokenizer.src_vocab_size, tokenizer.tgt_vocab_size)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(
            f"checkpoint {checkpoint_path} does not fit the model its config and the tokenizer "
            f"in {checkpoint_path.parent} describe: {e}"
        ) from e
    model.to(device).eval()
    return Run(config=config, tokenizer=tokenizer, model=model, checkpoint_path=checkpoint_path)


def step_checkpoint_name(step: int) -> str:
    return f"step_{step}.pt"


def prune_step_checkpoints(run_dir: str | os.PathLike, keep: int) -> list[Path]:
    """Deletes all but the ``keep`` newest ``step_N.pt`` files; returns the deleted paths."""
    found = []
    for path in Path(run_dir).iterdir():
        match = STEP_CHECKPOINT.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    found.sort()
    doomed = [path for _, path in found[: max(0, len(found) - keep)]]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed
