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
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.profiler import record_function

from seq2seq.checkpoint import save_checkpoint, serialize_checkpoint
from seq2seq.config import Config, parse_duration
from seq2seq.data import Batch
from seq2seq.data.loader import BatchLoader
from seq2seq.runtime.device import configure_threads, peak_memory_mib, resolve_device, set_tf32
from seq2seq.training import distributed, saving
from seq2seq.training.corpus import read_corpora
from seq2seq.training.distributed import DistInfo
from seq2seq.training.loss import label_smoothed_cross_entropy
from seq2seq.training.progress import Progress, Window, format_duration
from seq2seq.training.rundir import log_to_file
from seq2seq.training.session import Session
from seq2seq.training.startup import build_session, start_run_dir
from seq2seq.training.state import capture_rng
from seq2seq.training.validation import save_plots, validate

logger = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss outside fp16 loss scaling)."""


@dataclass
class StepStats:
    """One optimizer update. ``sums`` and ``checks`` are tensors on the training device, read
    only at log intervals (see :class:`~seq2seq.training.progress.Window`)."""

    sums: torch.Tensor  # [loss sum, target tokens, sentences] of this process
    checks: torch.Tensor  # [loss sum, gradient norm]: both finite in a good update
    padding: float
    lr: float
    skipped: bool  # fp16 only: the loss scaler found an overflow and skipped the update


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    stop_reason: str
    best_bleu: float | None
    last_valid: dict[str, Any] | None
    signal: int | None = None  # SIGINT or SIGTERM that stopped training (last.pt written)


def train(
    cfg: Config, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False
) -> TrainResult:
    """Trains ``cfg`` into ``run_dir`` (new, ``overwrite`` an old run, or ``resume`` it)."""
    run_dir = Path(run_dir)
    info = distributed.detect()
    max_seconds = parse_duration(cfg.train.max_time) if cfg.train.max_time else None
    corpora = read_corpora(cfg.data)  # bad data fails here, before anything is written
    device = resolve_device(cfg.train.device, info.local_rank)
    set_tf32(cfg.train.tf32)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        configure_threads(cfg.train.threads, info.local_world_size)
    owns_group = distributed.init_process_group(
        info, device, timeout=parse_duration(cfg.train.dist_timeout)
    )
    try:
        show_progress = info.is_main and not cfg.train.quiet
        distributed.run_on_main(
            lambda: start_run_dir(
                cfg, run_dir, resume=resume, overwrite=overwrite, progress=show_progress
            ),
            info,
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
    shown = {"loss": math.nan, "tok_per_s": math.nan}  # of the latest log line
    signals = contextlib.ExitStack()  # SIGINT / SIGTERM: stop after the update, save last.pt
    received = signals.enter_context(stop_on_signals())
    try:
        for batches in update_batches(s) if reason is None else ():
            stats = train_update(s, batches, budget_used(s, clock(), max_seconds))
            window.add(stats, len(batches), s.state.step + 1)
            if not stats.skipped:
                s.state.step += 1
                if s.state.step % t.log_every == 0:
                    shown = log_train(s, window, progress.eta(s.state.step))
                    window = Window()
                progress.update(step=s.state.step, lr=stats.lr, **shown)
                if s.state.step % t.validate_every == 0:
                    check_finite(s, window)
                    started = time.perf_counter()
                    stop = validate_and_save(s)
                    window.started += time.perf_counter() - started  # tok/s: training time only
                    if stop:
                        reason = (
                            f"early stopping: valid {t.early_stopping_metric} did not "
                            f"improve in {t.patience} validations"
                        )
                        break
            if signal_agreed(s, received):
                reason = f"{signal.Signals(received['signal']).name} received"
                break
            reason = limit_reached(s, clock(), max_seconds)
            if reason:
                break
        else:
            reason = reason or f"max_epochs={t.max_epochs} reached"
    finally:
        progress.close()
        signals.close()
    check_finite(s, window)
    stopped_by = received.get("signal") if reason.endswith(" received") else None
    if stopped_by is not None:
        save_last(s)
    elif s.state.step > 0 and s.state.validated_step != s.state.step:
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
        signal=stopped_by,
    )


@contextlib.contextmanager
def stop_on_signals() -> Iterator[dict[str, int]]:
    """While active, SIGINT (Ctrl-C) and SIGTERM ask the loop to stop after the current update
    (the dict gets ``signal``); a second signal of the same kind acts as it normally does.
    Only the main thread can install handlers: elsewhere nothing changes."""
    received: dict[str, int] = {}
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    kinds = (signal.SIGINT, signal.SIGTERM)
    previous = {kind: signal.getsignal(kind) for kind in kinds}

    def handler(signum: int, frame: Any) -> None:
        received.setdefault("signal", signum)
        signal.signal(signum, previous[signum])
        logger.warning(
            "%s received: stopping after this update and writing last.pt (again to stop now)",
            signal.Signals(signum).name,
        )

    for kind in kinds:
        signal.signal(kind, handler)
    try:
        yield received
    finally:
        for kind in kinds:
            signal.signal(kind, previous[kind])


def signal_agreed(s: Session, received: dict[str, int]) -> bool:
    """Whether to stop for a signal now. Under torchrun the processes agree at log intervals
    (every process must stop after the same update; asking them every update would cost a
    synchronisation per step)."""
    if not s.info.enabled:
        return "signal" in received
    if s.state.step % s.cfg.train.log_every:
        return False
    return distributed.all_reduce_sum([float("signal" in received)], s.info)[0] > 0


def save_last(s: Session) -> None:
    """Writes last.pt (only) with the state after the latest update, on rank 0."""
    rng_states = distributed.gather_objects(capture_rng(), s.info)
    if s.info.is_main:
        data = serialize_checkpoint(saving.checkpoint_dict(s, rng_states))
        save_checkpoint(data, s.run_dir / "last.pt")
    distributed.barrier(s.info)


def update_batches(s: Session) -> Iterator[list[Batch]]:
    """Groups of ``train.accum_steps`` batches (fewer at an epoch's end), epoch after epoch,
    collated by a background thread; ``s.data_position`` follows the batches handed out."""
    t = s.cfg.train
    group: list[Batch] = []
    loader = BatchLoader(
        s.sampler,
        s.data.collate,
        max_epochs=t.max_epochs,
        pin_memory=s.device.type == "cuda",
    )
    s.loader = loader
    shape = s.sampler.state_dict()  # the budget and number of processes of the positions
    with loader:
        for fed in loader:  # continues mid-epoch after a resume
            if fed.batch is not None:
                group.append(to_device(fed.batch, s.device))
                s.data_position = {**shape, "epoch": fed.epoch, "position": fed.position}
            else:
                s.data_position = {**shape, "epoch": fed.epoch + 1, "position": 0}
            if group and (len(group) == t.accum_steps or fed.batch is None):
                yield group
                group = []
            if fed.batch is None:
                logger.info("epoch %d done at step %d", fed.epoch, s.state.step)


def to_device(batch: Batch, device: torch.device) -> Batch:
    """The batch on ``device``; pinned batches are copied to a GPU asynchronously."""
    return batch.to(device, non_blocking=device.type == "cuda")


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

    Nothing here waits for the device: the token count is summed over processes on the
    device, and the loss and gradient norm are returned as tensors that the loop reads at log
    intervals (fp16 is the exception: the loss scaler reads its overflow flag every step).
    """
    t = s.cfg.train
    lr = s.schedule.set_step(s.state.step + 1, budget)
    # The counts are known on the host (collate); a fill puts them on the device without a copy.
    local = torch.stack(  # of this process
        [
            torch.full(
                (), sum(b.tgt_tokens for b in batches), dtype=torch.float64, device=s.device
            ),
            torch.full((), sum(b.size for b in batches), dtype=torch.float64, device=s.device),
        ]
    )
    counts = distributed.all_reduce_(local.clone(), s.info)  # of all processes
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
                s.scaler.scale(loss * (s.info.world_size / counts[0].float())).backward()
        loss_sum += loss.detach()
    s.scaler.unscale_(s.optimizer)
    with record_function("clip_grad_norm"):
        grad_norm = nn.utils.clip_grad_norm_(s.model.parameters(), t.clip_norm or math.inf)
    skipped = False
    if s.scaler.is_enabled():  # fp16: GradScaler skips an update whose gradients overflowed
        scale = s.scaler.get_scale()
        s.scaler.step(s.optimizer)
        s.scaler.update()
        skipped = s.scaler.get_scale() < scale
        if skipped:
            logger.warning(
                "step %d: non-finite loss under fp16 loss scaling; update skipped, loss scale"
                " now %g",
                s.state.step + 1,
                s.scaler.get_scale(),
            )
    else:
        s.optimizer.step()
    padding = sum(b.padding for b in batches) / len(batches)
    return StepStats(
        sums=torch.cat([loss_sum.double().reshape(1), local]),
        checks=torch.stack([loss_sum.float(), grad_norm.float()]),
        padding=padding,
        lr=lr,
        skipped=skipped,
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


def check_finite(s: Session, window: Window) -> float | None:
    """Raises TrainingError if an update of ``window`` had a non-finite loss or gradient norm
    (outside fp16 loss scaling); called before every log line and checkpoint, so that no
    checkpoint holds the parameters of such an update. Returns the latest gradient norm."""
    if not window.checks:
        return None
    values = torch.stack(window.checks).tolist()
    for step, (loss, norm) in zip(window.steps, values, strict=True):
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise TrainingError(
                f"non-finite loss at step {step} (loss {loss}, gradient norm {norm}); training"
                f" stopped. {saving.last_good_note(s)} Try a lower train.lr, a longer"
                " train.warmup_steps or train.clip_norm."
            )
    window.checks.clear()
    window.steps.clear()
    return values[-1][1]


def log_train(s: Session, window: Window, eta: float | None) -> dict[str, float]:
    """A ``train`` line in metrics.jsonl and train.log for the updates since the last one;
    returns the loss and tokens/s that the progress bar shows until the next line."""
    grad_norm = check_finite(s, window)
    seconds = window.seconds
    loss_sum = tokens = sentences = 0.0
    if window.device_sums is not None:
        sums = distributed.all_reduce_(window.device_sums, s.info)
        loss_sum, tokens, sentences = sums.tolist()
    loader = s.loader
    record = {
        "step": s.state.step,
        "split": "train",
        "epoch": s.data_position["epoch"],
        "loss": loss_sum / tokens if tokens else float("nan"),
        "lr": window.lr,
        "grad_norm": grad_norm,
        "tgt_tok_per_s": tokens / seconds,
        "sent_per_s": sentences / seconds,
        "padding": window.padding,
        "data_wait": loader.take_wait_seconds() / seconds if loader is not None else 0.0,
        "skipped": window.skipped,
    }
    peak = peak_memory_mib(s.device)
    if peak is not None:
        record["peak_gpu_mib"] = peak
    if s.info.is_main:
        s.metrics.append(record)
    logger.info(
        "step %d | loss %.4f | lr %.3g | %.0f tgt tok/s | padding %.1f%% | data wait %.1f%%%s"
        " | left %s%s",
        s.state.step,
        record["loss"],
        window.lr,
        record["tgt_tok_per_s"],
        100 * window.padding,
        100 * record["data_wait"],
        "" if peak is None else f" | peak GPU {peak:,.0f} MiB",
        "?" if eta is None else format_duration(eta),
        f" | {window.skipped} skipped" if window.skipped else "",
    )
    return {"loss": record["loss"], "tok_per_s": record["tgt_tok_per_s"]}


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
        improved, stop = saving.update_best(s, record)
        saving.save(s, rng_states, best=improved)
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
