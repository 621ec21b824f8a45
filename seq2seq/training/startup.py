"""Starting a training session (:class:`~seq2seq.training.session.Session`): the run directory,
data, model and optimizer the loop works with.

:func:`start_run_dir` checks the run directory and prepares the training data (subword model
and memory-mapped ids, reused when they are up to date; on ``--resume`` only checked);
:func:`build_session` then assembles tokenizer, data, model, optimizer and schedule, restoring
them from ``last.pt`` on ``--resume``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from seq2seq.config import Config, save_config
from seq2seq.data import Tokenizer
from seq2seq.data.prepared import PREPARED_DIR, PreparedData, prepare, stale_reason
from seq2seq.models import build_model
from seq2seq.runtime.precision import Precision, resolve_precision
from seq2seq.training import distributed, saving
from seq2seq.training.corpus import Corpora, make_sampler, validation_set
from seq2seq.training.distributed import DistInfo
from seq2seq.training.rundir import MetricsLog, RunDirError, clear_run_dir, remove_temporaries
from seq2seq.training.schedules import build_schedule
from seq2seq.training.session import Session
from seq2seq.training.state import TrainState, seed_everything
from seq2seq.training.validation import ValidSet

logger = logging.getLogger(__name__)


def start_run_dir(
    cfg: Config, run_dir: Path, *, resume: bool, overwrite: bool, progress: bool = True
) -> None:
    """Checks the run directory, prepares (or on ``--resume`` checks) the training data, then
    writes the config (a resume writes it in :func:`build_session`, once restored).

    A refused run or bad data change nothing: ``prepare`` reads every training line before its
    first write, and ``--overwrite`` removes the old run's files only after that.
    """
    saving.check_start(cfg, run_dir, resume=resume, overwrite=overwrite)
    if resume:
        check_prepared_for_resume(cfg, run_dir)
    else:
        prepare(cfg, run_dir, progress=progress)
        clear_run_dir(run_dir)  # --overwrite, or the leftovers of a run without a checkpoint
    for path in remove_temporaries(run_dir):
        logger.info("removed %s, left by an interrupted write", path)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        save_config(cfg, run_dir / "config.yaml")  # a resume writes it once restored


def check_prepared_for_resume(cfg: Config, run_dir: Path) -> None:
    """Refuses to resume on data other than those the run was trained on, naming what changed.

    A run of an earlier seq2seq, which has no prepared data, gets them encoded with its own
    subword model (the batch order then differs from the one it started with).
    """
    if not (run_dir / PREPARED_DIR).exists():
        logger.warning(
            "%s has no prepared data (a run of an earlier seq2seq): encoding the training data"
            " with its subword model; the batches of the resumed run are not those it would"
            " have seen",
            run_dir,
        )
        prepare(cfg, run_dir, tokenizer=Tokenizer.load(run_dir), progress=False)
        return
    reason = stale_reason(cfg, run_dir)
    if reason is not None:
        raise RunDirError(
            f"--resume: {reason}; the run cannot continue on other data. Restore the data, or"
            " start a new run (without --resume), which prepares them again"
        )


def build_session(
    cfg: Config,
    run_dir: Path,
    info: DistInfo,
    device: torch.device,
    corpora: Corpora,
    *,
    resume: bool,
) -> Session:
    """Tokenizer, encoded data, model, optimizer and schedule; restored from last.pt on resume."""
    precision = resolve_precision(cfg.train.precision, device)
    tokenizer = Tokenizer.load(run_dir)
    data = PreparedData(run_dir / PREPARED_DIR)
    logger.info(
        "data: %s training pairs (%s; of %s read, dropped %s longer than data.max_len=%d and"
        " %s with an empty source), %d validation pairs%s; subword vocabularies %d/%d",
        f"{len(data):,}",
        cfg.data.train.src,
        f"{data.header['pairs']['read']:,}",
        f"{data.header['pairs']['dropped']['too_long']:,}",
        cfg.data.max_len,
        f"{data.header['pairs']['dropped']['empty_source']:,}",
        len(corpora.valid_src),
        f", gold alignments {corpora.gold_path}" if corpora.gold_path else "",
        tokenizer.src_vocab_size,
        tokenizer.tgt_vocab_size,
    )
    session = new_session(
        cfg,
        run_dir=run_dir,
        info=info,
        device=device,
        precision=precision,
        tokenizer=tokenizer,
        data=data,
        valid=validation_set(cfg, corpora, tokenizer),
        metrics=MetricsLog(run_dir / "metrics.jsonl" if info.is_main else None),
    )
    model = session.model
    if resume:
        saving.restore(session, saving.resume_path(run_dir))
    elif info.enabled:
        seed_everything(cfg.train.seed + 1000 * info.rank)  # distinct dropout per process
    if resume and info.is_main:
        save_config(cfg, run_dir / "config.yaml")  # every check has passed
    session.data_position = session.sampler.state_dict()
    session.model = distributed.wrap_model(model, info, device)
    logger.info(
        "batches: %d per epoch per process, %d target tokens each at most, padding %.1f%% (in"
        " the first 1,000)",
        len(session.sampler),
        cfg.train.batch_tokens,
        100 * session.sampler.padding_fraction(max_batches=1000),
    )
    n_params = sum(p.numel() for p in model.parameters())
    logger.info(
        "model: %s, %s parameters; device %s, precision %s, %d thread(s), %d process(es)",
        cfg.model.arch,
        f"{n_params:,}",
        device,
        precision.name,
        torch.get_num_threads(),
        info.world_size,
    )
    return session


def new_session(
    cfg: Config,
    *,
    run_dir: Path,
    info: DistInfo,
    device: torch.device,
    precision: Precision,
    tokenizer: Tokenizer,
    data: PreparedData,
    valid: ValidSet,
    metrics: MetricsLog,
) -> Session:
    """A session at step 0: the model initialised from ``train.seed``, a fresh optimizer,
    schedule, loss scaler and batch sampler (the training loop and ``scripts/bench_train.py``)."""
    seed_everything(cfg.train.seed)
    model = build_model(cfg.model, tokenizer.src_vocab_size, tokenizer.tgt_vocab_size).to(device)
    optimizer = build_optimizer(model, cfg)
    return Session(
        cfg=cfg,
        run_dir=run_dir,
        info=info,
        device=device,
        precision=precision,
        tokenizer=tokenizer,
        model=model,
        optimizer=optimizer,
        schedule=build_schedule(optimizer, cfg.train),
        scaler=precision.grad_scaler(),
        sampler=make_sampler(cfg, data, info),
        data=data,
        valid=valid,
        metrics=metrics,
        state=TrainState(),
    )


def build_optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """Adam or AdamW (Kingma & Ba, arXiv:1412.6980; Loshchilov & Hutter, arXiv:1711.05101)."""
    t = cfg.train
    optimizer_class = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(
        model.parameters(), lr=t.lr, betas=(t.betas[0], t.betas[1]), weight_decay=t.weight_decay
    )
