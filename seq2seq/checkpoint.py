"""Checkpoints and run directories: atomic saving, safe loading, and loading a trained run.

A checkpoint is a dict ``{"format_version": 1, "seq2seq_version", "config", "model",
"optimizer", "scheduler", "scaler", "step", "epoch", "sampler", "rng", "best",
"train_seconds", "subword_sha256"}`` (``train_seconds``, the training time up to ``step`` over
every session of a resumed run, may be missing from older checkpoints: 0 is assumed;
``subword_sha256`` maps each subword model file the run uses to its SHA-256, and loading a run
refuses a subword model with another hash; older checkpoints lack it and are not checked). Files are
written to a temporary file in the same directory and renamed over the target, so a crash
during a save leaves the previous checkpoint intact. Loading uses ``torch.load(...,
weights_only=True)``: a checkpoint can hold tensors and plain data, never code. A run loaded for
inference must have finite parameters (a flipped byte can turn one into NaN or Inf).
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from seq2seq.fileio import write_atomic

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
STEP_CHECKPOINT = re.compile(r"^step_(\d+)\.pt$")
SUBWORD_KEY = "subword_sha256"
# How torch's weights-only unpickler names an object it refuses to build (a class, a function).
_FOREIGN_OBJECT = re.compile(
    r"GLOBAL (\S+) was not an allowed global|unsupported GLOBAL (\S+)|"
    r"(unrecognized function .*?)(?: which belongs|$)|(Can only create new object)",
    re.MULTILINE,
)


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
    except pickle.UnpicklingError as e:
        raise CheckpointError(_unpickling_error_text(path, str(e))) from None
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


def _unpickling_error_text(path: Path, message: str) -> str:
    """The refusal of torch's weights-only unpickler, without its advice to load unsafely."""
    match = _FOREIGN_OBJECT.search(message)
    if match is not None:
        what = next(g for g in match.groups() if g is not None)
        return (
            f"checkpoint {path} holds objects other than tensors and plain data ({what}); it "
            "is not loaded, for safety: loading it could run code stored in it. A seq2seq "
            "checkpoint never holds such objects"
        )
    reason = message.rpartition("WeightsUnpickler error:")[2].strip() or "unpickling failed"
    if "weights_only" in reason:  # only torch's advice is left: say nothing more
        reason = "unpickling failed"
    return f"checkpoint {path} cannot be read (corrupt, truncated or not a torch file): {reason}"


def check_finite(model: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Raises CheckpointError naming the first parameter of ``model`` holding NaN or Inf."""
    for name, tensor in model.items():
        if not (isinstance(tensor, torch.Tensor) and tensor.is_floating_point()):
            continue
        finite = torch.isfinite(tensor)
        if not bool(finite.all()):
            nan = int(torch.isnan(tensor).sum())
            inf = int((~finite).sum()) - nan
            raise CheckpointError(
                f"checkpoint {path}: parameter {name!r} holds {nan} NaN and {inf} infinite "
                f"value(s) out of {tensor.numel()}; the file is damaged (or was written by a "
                "diverged run) and cannot be used"
            )


def subword_files(directory: str | os.PathLike[str]) -> dict[str, str]:
    """SHA-256 of the subword model file(s) a run directory's tokenizer loads, by file name."""
    from seq2seq.data.prepared import subword_hashes
    from seq2seq.data.tokenizer import JOINT_MODEL

    hashes = subword_hashes(Path(directory))
    if JOINT_MODEL in hashes:  # Tokenizer.load prefers it to a pair of per-side models
        return {JOINT_MODEL: hashes[JOINT_MODEL]}
    return hashes


def check_subword_models(
    checkpoint: Mapping[str, Any], path: str | os.PathLike[str], directory: str | os.PathLike[str]
) -> None:
    """Refuses a checkpoint whose recorded subword model(s) differ from those in ``directory``.

    Checkpoints of an older seq2seq record none: they are loaded with a warning.
    """
    recorded = checkpoint.get(SUBWORD_KEY)
    if recorded is None:
        logger.warning(
            "checkpoint %s does not record its subword model (an older seq2seq): cannot check "
            "that the one in %s is the one it was trained with",
            path,
            directory,
        )
        return
    present = subword_files(directory)
    if present == recorded:
        return
    directory = Path(directory)
    for name in sorted(set(recorded) | set(present)):
        if recorded.get(name) == present.get(name):
            continue
        if name not in present:
            found = ", ".join(sorted(present)) or "no subword model"
            problem = f"{directory / name} is missing (found {found})"
        elif name not in recorded:
            problem = f"it was trained with {', '.join(sorted(recorded))}, not {directory / name}"
        else:
            problem = (
                f"{directory / name} has SHA-256 {present[name][:12]}..., the checkpoint "
                f"records {recorded[name][:12]}..."
            )
        raise CheckpointError(
            f"checkpoint {path} does not belong to the subword model in {directory}: {problem}. "
            "It was trained with another subword model and would translate into nonsense; "
            "use the checkpoint with the subword model of its run"
        )


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
    tokenizer of the directory it lies in, which must be the subword model the checkpoint
    records. The config is the one stored in the checkpoint; every parameter must be finite.
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
    check_subword_models(state, checkpoint_path, checkpoint_path.parent)
    check_finite(state["model"], checkpoint_path)
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
