"""The training loop behind ``seq2seq train``.

Reading order: :func:`train` checks the data and the run directory before anything is written
and assembles a :class:`~seq2seq.training.session.Session` (tokenizer, data, model, optimizer;
restored on ``--resume``), then :func:`fit` runs the loop: :func:`train_update` per optimizer step,
:func:`log_train` every ``train.log_every`` steps and :func:`validate_and_save` every
``train.validate_every`` steps, until ``max_steps``, ``max_epochs``, ``max_time`` or early
stopping ends it. Under ``torchrun`` every process runs this code on its shard of each global
batch; only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.profiler import record_function

from seq2seq.config import Config, parse_duration
from seq2seq.data import Batch, collate
from seq2seq.training import checkpointing, distributed
from seq2seq.training.corpus import read_corpora
from seq2seq.training.device import configure_threads, resolve_device
from seq2seq.training.distributed import DistInfo
from seq2seq.training.loss import label_smoothed_cross_entropy
from seq2seq.training.progress import Progress, Window, format_duration
from seq2seq.training.rundir import log_to_file
from seq2seq.training.session import Session, build_session, start_run_dir
from seq2seq.training.state import capture_rng
from seq2seq.training.validation import save_plots, validate

logger = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss outside fp16 loss scaling)."""


@dataclass
class StepStats:
    """One optimizer update, summed over all processes."""

    loss_sum: float
    tgt_tokens: float
    sentences: float
    padding: float
    lr: float
    grad_norm: float
    skipped: bool


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    stop_reason: str
    best_bleu: float | None
    last_valid: dict[str, Any] | None


def train(
    cfg: Config, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False
) -> TrainResult:
    """Trains ``cfg`` into ``run_dir`` (new, ``overwrite`` an old run, or ``resume`` it)."""
    run_dir = Path(run_dir)
    info = distributed.detect()
    max_seconds = parse_duration(cfg.train.max_time) if cfg.train.max_time else None
    corpora = read_corpora(cfg.data)  # bad data fails here, before anything is written
    device = resolve_device(cfg.train.device, info.local_rank)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        configure_threads(cfg.train.threads, info.local_world_size)
    owns_group = distributed.init_process_group(info, device)
    try:
        distributed.run_on_main(
            lambda: start_run_dir(cfg, run_dir, corpora, resume=resume, overwrite=overwrite), info
        )
        distributed.barrier(info)
        with log_to_file(run_dir / "train.log" if info.is_main else None), _quiet_unless_main(info):
            session = build_session(cfg, run_dir, info, device, corpora, resume=resume)
            return fit(session, max_seconds)
    finally:
        torch.set_num_threads(threads)
        if owns_group:
            distributed.shutdown()


def fit(s: Session, max_seconds: float | None) -> TrainResult:
    """The loop: updates, log lines, validations and checkpoints until a limit is reached."""
    t = s.cfg.train
    progress = Progress(
        start_step=s.state.step,
        max_steps=t.max_steps,
        max_seconds=None if max_seconds is None else max(0.0, max_seconds - s.state.seconds),
        enabled=s.info.is_main and not t.quiet,
    )
    window = Window()
    seconds_before = s.state.seconds  # of earlier sessions of a resumed run

    def clock() -> float:
        s.state.seconds = seconds_before + progress.elapsed
        return s.state.seconds

    reason = limit_reached(s, clock(), max_seconds)
    try:
        for batches in update_batches(s) if reason is None else ():
            stats = train_update(s, batches, budget_used(s, clock(), max_seconds))
            window.add(stats, len(batches))
            if not stats.skipped:
                s.state.step += 1
                progress.update(
                    step=s.state.step,
                    loss=window.loss,
                    lr=stats.lr,
                    tok_per_s=window.tgt_tokens / window.seconds,
                )
                if s.state.step % t.log_every == 0:
                    log_train(s, window, progress.eta(s.state.step))
                    window = Window()
                if s.state.step % t.validate_every == 0:
                    started = time.perf_counter()
                    stop = validate_and_save(s)
                    window.started += time.perf_counter() - started  # tok/s: training time only
                    if stop:
                        reason = (
                            f"early stopping: valid {t.early_stopping_metric} did not "
                            f"improve in {t.patience} validations"
                        )
                        break
            reason = limit_reached(s, clock(), max_seconds)
            if reason:
                break
        else:
            reason = reason or f"max_epochs={t.max_epochs} reached"
    finally:
        progress.close()
    if s.state.step > 0 and s.state.validated_step != s.state.step:
        validate_and_save(s)
    logger.info(
        "stopped at step %d (%s) after %s; best valid BLEU %s at step %s",
        s.state.step,
        reason,
        format_duration(progress.elapsed),
        _fmt(s.state.best_bleu),
        s.state.best_step,
    )
    last_valid = next((r for r in reversed(s.metrics.records) if r["split"] == "valid"), None)
    return TrainResult(
        run_dir=s.run_dir,
        step=s.state.step,
        stop_reason=reason,
        best_bleu=s.state.best_bleu,
        last_valid=last_valid,
    )


def update_batches(s: Session) -> Iterator[list[Batch]]:
    """Groups of ``train.accum_steps`` batches (fewer at an epoch's end), epoch after epoch."""
    t = s.cfg.train
    while t.max_epochs is None or s.sampler.epoch < t.max_epochs:
        group: list[Batch] = []
        for indices in s.sampler:  # continues mid-epoch after a resume
            group.append(to_device(collate([s.pairs[i] for i in indices]), s.device))
            if len(group) == t.accum_steps:
                yield group
                group = []
        if group:
            yield group
        logger.info("epoch %d done at step %d", s.sampler.epoch, s.state.step)


def to_device(batch: Batch, device: torch.device) -> Batch:
    if device.type == "cuda":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


def budget_used(s: Session, seconds: float, max_seconds: float | None) -> float:
    """The share of the training budget used so far (0 to 1): the larger of the shares of
    ``max_steps`` and ``max_time``, the same in every process. Only the linear schedule reads it."""
    t = s.cfg.train
    if t.schedule != "linear":
        return 0.0
    shares = [0.0]
    if t.max_steps is not None:
        shares.append(s.state.step / t.max_steps)
    if max_seconds is not None:
        time_share = seconds / max_seconds
        if s.info.enabled:  # the mean over processes, so that they all take the same rate
            time_share = distributed.all_reduce_sum([time_share], s.info)[0] / s.info.world_size
        shares.append(time_share)
    return min(1.0, max(shares))


def train_update(s: Session, batches: list[Batch], budget: float = 0.0) -> StepStats:
    """One optimizer step on ``batches``: forward, backward, clip, step; ``budget`` is the
    share of the training budget used before it (see :func:`budget_used`).

    The loss is the label-smoothed cross entropy summed over the target tokens of the whole
    global batch (all micro-batches of all processes) and divided by their number, so that
    gradient accumulation and DDP give the gradient of one big batch.
    """
    t = s.cfg.train
    lr = s.schedule.set_step(s.state.step + 1, budget)
    local = [sum(b.tgt_tokens for b in batches), sum(b.size for b in batches)]
    tokens, sentences = distributed.all_reduce_sum(local, s.info)
    s.model.train()
    s.optimizer.zero_grad(set_to_none=True)
    loss_sum = torch.zeros((), device=s.device)
    for i, batch in enumerate(batches):
        with distributed.no_sync(s.model, skip_sync=i < len(batches) - 1):
            with record_function("forward"), s.precision.autocast():
                logits, _ = s.model(batch.src, batch.tgt_in)
            with record_function("loss"):
                loss, _ = label_smoothed_cross_entropy(logits, batch.tgt_out, t.label_smoothing)
            with record_function("backward"):
                s.scaler.scale(loss * (s.info.world_size / tokens)).backward()
        loss_sum += loss.detach()
    (total,) = distributed.all_reduce_sum([float(loss_sum)], s.info)
    s.scaler.unscale_(s.optimizer)
    with record_function("clip_grad_norm"):
        grad_norm = float(nn.utils.clip_grad_norm_(s.model.parameters(), t.clip_norm or math.inf))
    finite = math.isfinite(total) and math.isfinite(grad_norm)
    if not finite and not s.scaler.is_enabled():
        raise TrainingError(
            f"non-finite loss at step {s.state.step + 1} (loss {total}, gradient norm "
            f"{grad_norm}); training stopped. {checkpointing.last_good_note(s)} Try a lower "
            "train.lr, a longer train.warmup_steps or train.clip_norm."
        )
    if finite:
        s.scaler.step(s.optimizer)
        s.scaler.update()
    else:  # fp16 overflow: skip the update and lower the loss scale
        scale = s.scaler.get_scale() * s.scaler.get_backoff_factor()
        s.scaler.update(scale)
        logger.warning(
            "step %d: non-finite loss under fp16 loss scaling; update skipped, loss scale now %g",
            s.state.step + 1,
            scale,
        )
    padding = sum(b.padding for b in batches) / len(batches)
    return StepStats(
        loss_sum=total,
        tgt_tokens=tokens,
        sentences=sentences,
        padding=padding,
        lr=lr,
        grad_norm=grad_norm,
        skipped=not finite,
    )


def limit_reached(s: Session, elapsed: float, max_seconds: float | None) -> str | None:
    """Why training must stop now (``max_steps`` or ``max_time``), or None; ``elapsed`` is the
    training time of the whole run, earlier sessions of a resumed run included."""
    t = s.cfg.train
    if t.max_steps is not None and s.state.step >= t.max_steps:
        return f"max_steps={t.max_steps} reached"
    if max_seconds is None:
        return None
    time_up = elapsed >= max_seconds
    if s.info.enabled:  # every process must stop at the same step
        time_up = distributed.all_reduce_sum([float(time_up)], s.info)[0] > 0
    return f"max_time={t.max_time} reached" if time_up else None


def log_train(s: Session, window: Window, eta: float | None) -> None:
    """A ``train`` line in metrics.jsonl and train.log for the updates since the last one."""
    record = {
        "step": s.state.step,
        "split": "train",
        "epoch": s.sampler.epoch,
        "loss": window.loss,
        "lr": window.lr,
        "grad_norm": window.grad_norm,
        "tgt_tok_per_s": window.tgt_tokens / window.seconds,
        "sent_per_s": window.sentences / window.seconds,
        "padding": window.padding,
        "skipped": window.skipped,
    }
    if s.info.is_main:
        s.metrics.append(record)
    logger.info(
        "step %d | loss %.4f | lr %.3g | %.0f tgt tok/s | padding %.1f%% | left %s%s",
        s.state.step,
        window.loss,
        window.lr,
        record["tgt_tok_per_s"],
        100 * window.padding,
        "?" if eta is None else format_duration(eta),
        f" | {window.skipped} skipped" if window.skipped else "",
    )


def validate_and_save(s: Session) -> bool:
    """Validation, checkpoints and plots on rank 0; returns True when early stopping fires."""
    rng_states = distributed.gather_objects(capture_rng(), s.info)
    decision = None
    if s.info.is_main:
        record = validate(
            distributed.unwrap(s.model),
            s.valid,
            s.tokenizer,
            cfg=s.cfg,
            precision=s.precision,
            device=s.device,
        )
        record = {
            "step": s.state.step,
            "split": "valid",
            "elapsed": time.perf_counter() - s.started,
            **record,
        }
        s.metrics.append(record)
        improved, stop = checkpointing.update_best(s, record)
        checkpointing.save(s, rng_states, best=improved)
        refresh_plots(s)
        logger.info(
            "valid step %d | loss %.4f | ppl %.2f | BLEU %.2f%s%s",
            s.state.step,
            record["loss"],
            record["ppl"],
            record["bleu"],
            " (best)" if improved else "",
            "".join(
                f" | {k} {record[k]:.3f}"
                for k in ("entropy", "eos_weight", "aer")
                if record.get(k) is not None
            ),
        )
        decision = {
            "stop": stop,
            "state": s.state.state_dict(),
            "schedule": s.schedule.state_dict(),
        }
    decision = distributed.broadcast_object(decision, s.info)
    s.state.load_state_dict(decision["state"])
    s.schedule.load_state_dict(decision["schedule"])
    return bool(decision["stop"])


def refresh_plots(s: Session) -> None:
    """Training curves and alignment heatmaps; a failing plot is reported, not fatal."""
    try:
        save_plots(
            distributed.unwrap(s.model),
            s.tokenizer,
            s.valid,
            run_dir=s.run_dir,
            step=s.state.step,
            records=s.metrics.records,
            num_alignment_plots=s.cfg.train.num_alignment_plots,
        )
    except Exception:
        logger.exception("step %d: could not write the plots; training goes on", s.state.step)


@contextlib.contextmanager
def _quiet_unless_main(info: DistInfo) -> Iterator[None]:
    """Processes other than rank 0 only report warnings and errors."""
    if info.is_main:
        yield
        return
    package_logger = logging.getLogger("seq2seq")
    level = package_logger.level
    package_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        package_logger.setLevel(level)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
