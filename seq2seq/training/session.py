"""A training session: the run directory, data, model and optimizer the loop works with.

:func:`start_run_dir` checks the run directory and trains the subword model before it writes
anything; :func:`build_session` then assembles tokenizer, data, model, optimizer and schedule,
restoring them from ``last.pt`` on ``--resume``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from seq2seq.config import Config, save_config
from seq2seq.data import TokenBatchSampler, Tokenizer
from seq2seq.data.batching import Pair
from seq2seq.models import build_model
from seq2seq.training import checkpointing, distributed
from seq2seq.training.corpus import (
    Corpora,
    make_sampler,
    train_tokenizer,
    training_pairs,
    validation_set,
)
from seq2seq.training.distributed import DistInfo
from seq2seq.training.precision import Precision, resolve_precision
from seq2seq.training.rundir import MetricsLog, clear_run_dir
from seq2seq.training.schedules import LRSchedule, build_schedule
from seq2seq.training.state import TrainState, seed_everything
from seq2seq.training.validation import ValidSet

logger = logging.getLogger(__name__)


@dataclass
class Session:
    """Everything the loop works with."""

    cfg: Config
    run_dir: Path
    info: DistInfo
    device: torch.device
    precision: Precision
    tokenizer: Tokenizer
    model: nn.Module  # wrapped in DistributedDataParallel under torchrun
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    scaler: torch.amp.GradScaler
    sampler: TokenBatchSampler
    pairs: list[Pair]
    valid: ValidSet
    metrics: MetricsLog
    state: TrainState
    started: float = field(default_factory=time.perf_counter)  # "elapsed" counts from here


def start_run_dir(
    cfg: Config, run_dir: Path, corpora: Corpora, *, resume: bool, overwrite: bool
) -> None:
    """Checks the run directory and trains the subword model, then writes config and model(s).

    Any error comes before the first write, so a refused run changes nothing on disk.
    """
    checkpointing.check_start(cfg, run_dir, resume=resume, overwrite=overwrite)
    tokenizer = None if resume else train_tokenizer(cfg, corpora)
    if overwrite:
        clear_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    if tokenizer is not None:
        tokenizer.save(run_dir)


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
    logger.info(
        "data: %d training pairs (%s), %d validation pairs%s; subword vocabularies %d/%d%s",
        len(corpora.train_src),
        cfg.data.train.src,
        len(corpora.valid_src),
        f", gold alignments {corpora.gold_path}" if corpora.gold_path else "",
        tokenizer.src_vocab_size,
        tokenizer.tgt_vocab_size,
        " (reused)" if resume else "",
    )
    session = new_session(
        cfg,
        run_dir=run_dir,
        info=info,
        device=device,
        precision=precision,
        tokenizer=tokenizer,
        pairs=training_pairs(cfg, corpora, tokenizer),
        valid=validation_set(cfg, corpora, tokenizer),
        metrics=MetricsLog(run_dir / "metrics.jsonl" if info.is_main else None),
    )
    model = session.model
    if resume:
        checkpointing.restore(session, run_dir / "last.pt")
    elif info.enabled:
        seed_everything(cfg.train.seed + 1000 * info.rank)  # distinct dropout per process
    session.model = distributed.wrap_model(model, info, device)
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
    pairs: list[Pair],
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
        sampler=make_sampler(cfg, pairs, info),
        pairs=pairs,
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
