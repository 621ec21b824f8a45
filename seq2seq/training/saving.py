"""The trainer's side of checkpoints: what goes in, when best.pt changes, and how to resume."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import seq2seq
from seq2seq.checkpoint import (
    FORMAT_VERSION,
    STEP_CHECKPOINT,
    SUBWORD_KEY,
    CheckpointError,
    check_finite,
    check_subword_models,
    load_checkpoint,
    prune_step_checkpoints,
    save_checkpoint,
    serialize_checkpoint,
    step_checkpoint_name,
    subword_files,
)
from seq2seq.config import config_to_dict
from seq2seq.training import distributed
from seq2seq.training.rundir import RunDirError, check_resume_config, check_run_dir
from seq2seq.training.state import restore_rng, seed_everything

if TYPE_CHECKING:
    from seq2seq.config import Config
    from seq2seq.training.session import Session

logger = logging.getLogger(__name__)


#: What a checkpoint needs besides ``config`` and ``model`` to be resumed from.
_TRAINING_STATE = ("optimizer", "scheduler", "sampler", "rng", "best", "step")


def check_start(cfg: Config, run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Raises unless the run may start in ``run_dir`` (or resume from one of its checkpoints)."""
    check_run_dir(run_dir, resume=resume, overwrite=overwrite)
    if resume:
        path, checkpoint = _resumable(run_dir)
        check_resume_config(config_to_dict(cfg), checkpoint["config"], path)
        check_subword_models(checkpoint, path, run_dir)


def resume_path(run_dir: Path) -> Path:
    """The checkpoint ``--resume`` continues from: last.pt, else (with a warning naming it)
    the newest usable step_N.pt or best.pt by recorded step, when last.pt is missing, cannot
    be read or holds non-finite parameters (a crash or a damaged disk)."""
    path, _ = _resumable(run_dir, warn=True)
    return path


def _resumable(run_dir: Path, *, warn: bool = False) -> tuple[Path, dict[str, Any]]:
    last = run_dir / "last.pt"
    try:
        return last, _load_resumable(last)
    except (FileNotFoundError, CheckpointError) as e:
        problems = [str(e)]
    found = run_dir.iterdir() if run_dir.is_dir() else ()
    others = sorted(p for p in found if STEP_CHECKPOINT.match(p.name))
    best: tuple[int, Path, dict[str, Any]] | None = None
    for path in [*others, run_dir / "best.pt"]:
        try:
            checkpoint = _load_resumable(path)
        except (FileNotFoundError, CheckpointError) as e:
            problems.append(str(e))
            continue
        if best is None or int(checkpoint["step"]) > best[0]:
            best = (int(checkpoint["step"]), path, checkpoint)
    if best is None:
        raise RunDirError(
            f"--resume: {run_dir} holds no checkpoint to resume from:\n  " + "\n  ".join(problems)
        )
    step, path, checkpoint = best
    if warn:
        logger.warning(
            "--resume: %s; resuming from %s (step %d), the newest usable checkpoint",
            problems[0],
            path,
            step,
        )
    return path, checkpoint


def _load_resumable(path: Path) -> dict[str, Any]:
    checkpoint = load_checkpoint(path)
    missing = [key for key in _TRAINING_STATE if key not in checkpoint]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} holds no training state ({', '.join(missing)}; an averaged "
            "checkpoint?): it can be translated, not resumed"
        )
    check_finite(checkpoint["model"], path)
    return checkpoint


def checkpoint_dict(s: Session, rng_states: list[dict[str, Any]]) -> dict[str, Any]:
    """The full training state (see ``seq2seq.checkpoint`` for the format)."""
    st = s.state
    return {
        "format_version": FORMAT_VERSION,
        "seq2seq_version": seq2seq.__version__,
        "config": config_to_dict(s.cfg),
        "model": distributed.unwrap(s.model).state_dict(),
        "optimizer": s.optimizer.state_dict(),
        "scheduler": s.schedule.state_dict(),
        "scaler": s.scaler.state_dict() if s.scaler.is_enabled() else {},
        "step": st.step,
        "train_seconds": st.seconds,
        SUBWORD_KEY: subword_files(s.run_dir),
        "epoch": s.data_position["epoch"],
        "sampler": dict(s.data_position),
        "rng": {"world_size": s.info.world_size, "ranks": rng_states},
        "best": {
            "bleu": st.best_bleu,
            "step": st.best_step,
            "metric": st.best_metric,
            "bad_validations": st.bad_validations,
            "validated_step": st.validated_step,
        },
    }


def save(s: Session, rng_states: list[dict[str, Any]], *, best: bool) -> None:
    """Writes last.pt, best.pt, step_N.pt (keeping the newest ``train.keep_checkpoints``).

    last.pt comes first: a crash during the other writes leaves a run that resumes from it.
    """
    data = serialize_checkpoint(checkpoint_dict(s, rng_states))
    save_checkpoint(data, s.run_dir / "last.pt")
    if best:
        save_checkpoint(data, s.run_dir / "best.pt")
    keep = s.cfg.train.keep_checkpoints
    if keep > 0:
        save_checkpoint(data, s.run_dir / step_checkpoint_name(s.state.step))
        prune_step_checkpoints(s.run_dir, keep)


def restore(s: Session, path: Path) -> None:
    """Continues from a checkpoint: model, optimizer, schedule, scaler, data position, RNGs."""
    ckpt = load_checkpoint(path, map_location=s.device)
    distributed.unwrap(s.model).load_state_dict(ckpt["model"])
    s.optimizer.load_state_dict(ckpt["optimizer"])
    s.schedule.load_state_dict(ckpt["scheduler"])
    if ckpt.get("scaler") and s.scaler.is_enabled():
        s.scaler.load_state_dict(ckpt["scaler"])
    s.sampler.load_state_dict(ckpt["sampler"])
    best = ckpt["best"]
    s.state.step = int(ckpt["step"])
    s.state.seconds = float(ckpt.get("train_seconds", 0.0))
    if "train_seconds" not in ckpt and s.cfg.train.max_time:
        logger.warning(
            "%s does not record how long its run has trained (a checkpoint of an older seq2seq): "
            "train.max_time=%s counts from this session; set it to the time still wanted",
            path,
            s.cfg.train.max_time,
        )
    s.state.best_bleu, s.state.best_step = best["bleu"], best["step"]
    s.state.best_metric, s.state.bad_validations = best["metric"], best["bad_validations"]
    s.state.validated_step = best["validated_step"]
    s.metrics.load(up_to_step=s.state.step)
    rng = ckpt["rng"]
    if rng["world_size"] == s.info.world_size:
        restore_rng(rng["ranks"][s.info.rank])
    else:
        logger.warning(
            "resuming with %d process(es) instead of %d: random streams reseeded",
            s.info.world_size,
            rng["world_size"],
        )
        seed_everything(s.cfg.train.seed + s.state.step + 1000 * s.info.rank)
    logger.info(
        "resumed from %s at step %d (epoch %d, batch %d)",
        path,
        s.state.step,
        s.sampler.epoch,
        s.sampler.position,
    )


def update_best(s: Session, record: dict[str, Any]) -> tuple[bool, bool]:
    """Records a validation: (new best BLEU?, should training stop early?)."""
    st, t = s.state, s.cfg.train
    improved = st.best_bleu is None or record["bleu"] > st.best_bleu
    if improved:
        st.best_bleu, st.best_step = record["bleu"], st.step
    metric = record[t.early_stopping_metric]
    higher_is_better = t.early_stopping_metric == "bleu"
    if st.best_metric is None or (
        metric > st.best_metric if higher_is_better else metric < st.best_metric
    ):
        st.best_metric, st.bad_validations = metric, 0
    else:
        st.bad_validations += 1
    s.schedule.validated(metric)
    st.validated_step = st.step
    return improved, t.patience is not None and st.bad_validations >= t.patience


def last_good_note(s: Session) -> str:
    """Where the last good checkpoint is, for error messages."""
    last = s.run_dir / "last.pt"
    if s.state.validated_step >= 0 and last.is_file():
        return f"The last good checkpoint is {last} (step {s.state.validated_step})."
    return "No checkpoint had been written yet."
