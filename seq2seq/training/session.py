"""The training session: the run directory, data, model and optimizer the loop works with.

:mod:`seq2seq.training.startup` builds it; :mod:`seq2seq.training.saving` saves and
restores it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from seq2seq.config import Config
from seq2seq.data import TokenBatchSampler, Tokenizer
from seq2seq.data.loader import BatchLoader
from seq2seq.data.prepared import PreparedData
from seq2seq.runtime.precision import Precision
from seq2seq.training.distributed import DistInfo
from seq2seq.training.rundir import MetricsLog
from seq2seq.training.schedules import LRSchedule
from seq2seq.training.state import TrainState
from seq2seq.training.validation import ValidSet


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
    data: PreparedData
    valid: ValidSet
    metrics: MetricsLog
    state: TrainState
    started: float = field(default_factory=time.perf_counter)  # "elapsed" counts from here
    # The sampler position after the last batch trained on (the loader runs ahead of it).
    data_position: dict[str, int] = field(default_factory=lambda: {"epoch": 0, "position": 0})
    loader: BatchLoader | None = None  # while the loop runs
