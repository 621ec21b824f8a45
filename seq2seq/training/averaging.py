"""Checkpoint averaging: the element-wise mean of the parameters of several checkpoints.

Averaging the last few checkpoints of one run smooths out the noise of the final updates and
usually gains a fraction of a BLEU point (Vaswani et al. 2017, arXiv:1706.03762, section 6.1;
Junczys-Dowmunt et al. 2016, arXiv:1606.02891). The checkpoints must come from the same model
(same ``model`` and ``data.tokenizer`` config sections, same parameter names and shapes) and the
same subword model. The result has the trainer's checkpoint format without the optimizer,
schedule, sampler and random states: it can be translated and evaluated, not resumed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import seq2seq
from seq2seq.checkpoint import (
    FORMAT_VERSION,
    STEP_CHECKPOINT,
    SUBWORD_KEY,
    check_subword_models,
    load_checkpoint,
    save_checkpoint,
    subword_files,
)
from seq2seq.data import Tokenizer
from seq2seq.training.rundir import flatten

logger = logging.getLogger(__name__)

__all__ = [
    "AveragingError",
    "average_checkpoints",
    "average_state_dicts",
    "last_step_checkpoints",
    "step_checkpoints",
    "write_averaged_checkpoint",
]

#: Config sections that must agree for parameters to mean the same thing.
_SAME_SECTIONS = ("model.", "data.tokenizer.")


class AveragingError(ValueError):
    """Checkpoints that cannot be averaged, or an output that must not be written."""


def step_checkpoints(run_dir: str | os.PathLike[str]) -> list[Path]:
    """The ``step_N.pt`` files of a run directory, oldest (smallest N) first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(2, "not a run directory", str(run_dir))
    found = []
    for path in run_dir.iterdir():
        match = STEP_CHECKPOINT.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def last_step_checkpoints(run_dir: str | os.PathLike[str], n: int) -> list[Path]:
    """The ``n`` newest ``step_N.pt`` files of ``run_dir``, oldest first."""
    if n < 1:
        raise AveragingError(f"--last: got {n}, expected an integer >= 1")
    found = step_checkpoints(run_dir)
    if len(found) < n:
        names = ", ".join(p.name for p in found) or "none"
        raise AveragingError(
            f"--last {n}: {run_dir} holds {len(found)} step checkpoint(s) ({names}); the "
            "trainer keeps the newest train.keep_checkpoints of them, so train with "
            f"--set train.keep_checkpoints={n} (or more) to average {n}"
        )
    return found[-n:]


def average_state_dicts(
    states: Sequence[dict[str, torch.Tensor]], names: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point tensors (summed in float64, cast back).

    Integer and boolean tensors (counters, fixed masks) must be equal in every state and are
    copied. ``names[i]`` names ``states[i]`` in errors.
    """
    if not states:
        raise AveragingError("no checkpoints to average")
    first, first_name = states[0], names[0]
    sums = {
        key: t.to(torch.float64) if t.is_floating_point() else t.clone() for key, t in first.items()
    }
    for state, name in zip(states[1:], names[1:], strict=True):
        _check_same_tensors(first, state, first_name, name)
        for key, tensor in state.items():
            if tensor.is_floating_point():
                sums[key] += tensor.to(torch.float64)
            elif not torch.equal(tensor, sums[key]):
                raise AveragingError(
                    f"checkpoint {name}: the non-floating-point tensor {key!r} differs from the "
                    f"one in {first_name}; such tensors cannot be averaged"
                )
    n = len(states)
    return {
        key: (value / n).to(first[key].dtype) if first[key].is_floating_point() else value
        for key, value in sums.items()
    }


def _check_same_tensors(
    reference: dict[str, torch.Tensor],
    other: dict[str, torch.Tensor],
    reference_name: str,
    name: str,
) -> None:
    missing = sorted(reference.keys() - other.keys())
    extra = sorted(other.keys() - reference.keys())
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"lacks {_few(missing)}")
        if extra:
            parts.append(f"has extra {_few(extra)}")
        raise AveragingError(
            f"checkpoint {name} has other parameter names than {reference_name}: it "
            + " and ".join(parts)
        )
    for key, tensor in reference.items():
        if other[key].shape != tensor.shape:
            raise AveragingError(
                f"checkpoint {name}: parameter {key!r} has shape {tuple(other[key].shape)}, "
                f"but {tuple(tensor.shape)} in {reference_name}"
            )


def _few(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_same_config(
    reference: dict[str, Any], other: dict[str, Any], reference_name: str, name: str
) -> None:
    ref_flat, other_flat = flatten(reference), flatten(other)
    keys = sorted(
        k
        for k in ref_flat.keys() | other_flat.keys()
        if k.startswith(_SAME_SECTIONS) and ref_flat.get(k) != other_flat.get(k)
    )
    if keys:
        detail = "\n  ".join(
            f"{k}: {other_flat.get(k, '(absent)')!r} in {name}, "
            f"{ref_flat.get(k, '(absent)')!r} in {reference_name}"
            for k in keys[:10]
        )
        raise AveragingError(
            f"checkpoint {name} was trained with another model or tokenizer config than "
            f"{reference_name}; only checkpoints of the same model can be averaged:\n  {detail}"
        )


def _tokenizer_files(checkpoint: Path) -> dict[str, bytes]:
    return Tokenizer.load(checkpoint.parent).to_bytes()


def average_checkpoints(paths: Sequence[str | os.PathLike[str]]) -> dict[str, Any]:
    """The averaged checkpoint dict of ``paths`` (the first one's config, no training state,
    the SHA-256 of the subword model).

    Raises AveragingError naming the checkpoint whose config, subword model, parameter names
    or shapes differ from the first one's, CheckpointError for one whose recorded subword model
    is not the one beside it.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise AveragingError("no checkpoints to average: give at least one .pt file")
    first = load_checkpoint(paths[0])
    check_subword_models(first, paths[0], paths[0].parent)
    tokenizer = _tokenizer_files(paths[0])
    states, steps = [first["model"]], [first.get("step")]
    for path in paths[1:]:
        checkpoint = load_checkpoint(path)
        _check_same_config(first["config"], checkpoint["config"], str(paths[0]), str(path))
        if _tokenizer_files(path) != tokenizer:
            raise AveragingError(
                f"checkpoint {path}: the subword model in {path.parent} differs from the one "
                f"in {paths[0].parent}; only checkpoints of the same run can be averaged"
            )
        check_subword_models(checkpoint, path, path.parent)
        states.append(checkpoint["model"])
        steps.append(checkpoint.get("step"))
        del checkpoint
    model = average_state_dicts(states, [str(p) for p in paths])
    known = [s for s in steps if isinstance(s, int)]
    return {
        "format_version": FORMAT_VERSION,
        "seq2seq_version": seq2seq.__version__,
        "config": first["config"],
        "model": model,
        "step": max(known) if known else None,
        SUBWORD_KEY: subword_files(paths[0].parent),
        "averaged": {"checkpoints": [str(p) for p in paths], "steps": steps},
    }


def write_averaged_checkpoint(
    paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]
) -> dict[str, Any]:
    """Averages ``paths`` into ``out`` (atomically), with the subword model beside it.

    ``out`` may not be one of the inputs, nor a ``last.pt``/``step_N.pt`` file (the trainer
    resumes from and prunes those). When ``out`` lies in another directory, the checkpoints'
    subword model is written there too (refused if a different one is already there), so that
    ``load_run(out)``, ``seq2seq translate`` and ``seq2seq evaluate`` can use it.
    """
    out = Path(out)
    _check_output(out, [Path(p) for p in paths])
    averaged = average_checkpoints(paths)
    tokenizer = _tokenizer_files(Path(paths[0]))
    out.parent.mkdir(parents=True, exist_ok=True)
    present = _existing_tokenizer(out.parent)
    if present is not None and present != tokenizer:
        raise AveragingError(
            f"--out {out}: {out.parent} already holds a different subword model; write the "
            "averaged checkpoint into the run directory of its checkpoints or a new directory"
        )
    if present is None:
        Tokenizer.from_bytes(tokenizer).save(out.parent)
    save_checkpoint(averaged, out)
    logger.info(
        "averaged %d checkpoints (steps %s) into %s", len(paths), averaged["averaged"]["steps"], out
    )
    return averaged


def _existing_tokenizer(directory: Path) -> dict[str, bytes] | None:
    try:
        return Tokenizer.load(directory).to_bytes()
    except ValueError:  # DataError: no subword model there
        return None


def _check_output(out: Path, inputs: list[Path]) -> None:
    if out.is_dir():
        raise AveragingError(f"--out {out} is a directory; expected a checkpoint file name")
    if out.name == "last.pt" or STEP_CHECKPOINT.match(out.name):
        raise AveragingError(
            f"--out {out}: {out.name} is a name the trainer uses for the checkpoints it "
            "resumes from and prunes; choose another name, e.g. averaged.pt"
        )
    resolved = out.resolve()
    for path in inputs:
        if path.resolve() == resolved:
            raise AveragingError(f"--out {out} is one of the checkpoints being averaged")
