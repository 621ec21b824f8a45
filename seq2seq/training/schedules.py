"""Learning-rate schedules: Noam (inverse square root with warmup), linear decay to zero over the
training budget, constant, reduce-on-plateau.

The learning rate of update ``n`` (1-based) is ``peak_lr * factor(n, progress) * plateau_scale``,
where ``progress`` in [0, 1] is the share of the training budget used before the update: the
larger of ``(n - 1) / max_steps`` and ``elapsed / max_time`` (whichever limit is set):

- noam: ``factor(n) = min(n / warmup, sqrt(warmup / n))``, linear warmup to ``peak_lr`` at
  ``n = warmup``, then inverse square root decay (Vaswani et al., arXiv:1706.03762, eq. 3,
  rescaled so that the peak is the configured learning rate);
- linear: ``factor(n, progress) = min(1, n / warmup) * (1 - progress)``, linear warmup, then a
  straight line to zero at the end of the budget, whichever of ``max_steps`` and ``max_time``
  ends it. A schedule that ends at zero anneals the model into a minimum at the end of a fixed
  budget, which the inverse square root, still at half its peak after a few warmups, does not
  (Li et al., "Budgeted Training", ICLR 2020, arXiv:1905.04753; Bergsma et al., "Straight to
  Zero", ICLR 2025, arXiv:2502.15938). As the budget is partly in seconds, its updates depend
  on the machine's speed;
- constant: ``factor(n) = min(1, n / warmup)`` (no warmup when ``warmup == 0``);
- plateau: the constant factor, times a scale that shrinks by ``plateau_factor`` whenever the
  validation metric has not improved for more than ``plateau_patience`` validations in a row
  (the rule of ``torch.optim.lr_scheduler.ReduceLROnPlateau``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import torch


def noam_factor(step: int, warmup_steps: int) -> float:
    """Multiplier of the peak learning rate at update ``step`` (1-based) under Noam."""
    step = max(step, 1)
    if warmup_steps <= 0:
        return 1.0 / math.sqrt(step)
    return min(step / warmup_steps, math.sqrt(warmup_steps / step))


def linear_factor(step: int, progress: float, warmup_steps: int) -> float:
    """Multiplier of the peak learning rate at update ``step`` (1-based) with ``progress`` of the
    budget used: linear warmup times a linear decay that reaches zero at the budget's end."""
    warm = 1.0 if warmup_steps <= 0 else min(1.0, max(step, 1) / warmup_steps)
    return warm * min(1.0, max(0.0, 1.0 - progress))


def constant_factor(step: int, warmup_steps: int) -> float:
    """Multiplier of the peak learning rate at update ``step``: linear warmup, then 1."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, max(step, 1) / warmup_steps)


class Plateau:
    """Shrinks a scale by ``factor`` after more than ``patience`` validations without progress."""

    def __init__(self, *, factor: float, patience: int, higher_is_better: bool) -> None:
        if not 0.0 < factor < 1.0:
            raise ValueError(f"plateau factor must be in (0, 1), got {factor}")
        if patience < 0:
            raise ValueError(f"plateau patience must be >= 0, got {patience}")
        self.factor = factor
        self.patience = patience
        self.higher_is_better = higher_is_better
        self.scale = 1.0
        self.best: float | None = None
        self.bad_validations = 0

    def update(self, metric: float) -> None:
        """Records one validation result; reduces the scale when progress has stalled."""
        improved = self.best is None or (
            metric > self.best if self.higher_is_better else metric < self.best
        )
        if improved:
            self.best = metric
            self.bad_validations = 0
            return
        self.bad_validations += 1
        if self.bad_validations > self.patience:
            self.scale *= self.factor
            self.bad_validations = 0

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "best": self.best, "bad_validations": self.bad_validations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale = float(state["scale"])
        self.best = None if state["best"] is None else float(state["best"])
        self.bad_validations = int(state["bad_validations"])


class LRSchedule:
    """Sets the optimizer's learning rate before each update.

    Args:
        optimizer: its param groups all get the same learning rate.
        peak_lr: the configured learning rate.
        factor: ``factor(step, progress) -> float`` for 1-based update numbers and the share of
            the training budget used (0 to 1).
        plateau: optional reduce-on-plateau scale, fed by :meth:`validated`.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        peak_lr: float,
        factor: Callable[[int, float], float],
        plateau: Plateau | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.peak_lr = peak_lr
        self.factor = factor
        self.plateau = plateau

    def lr_at(self, step: int, progress: float = 0.0) -> float:
        scale = self.plateau.scale if self.plateau is not None else 1.0
        return self.peak_lr * self.factor(step, progress) * scale

    def set_step(self, step: int, progress: float = 0.0) -> float:
        """Sets and returns the learning rate for update ``step`` (1-based), with ``progress``
        (0 to 1) of the training budget used; only the linear schedule reads ``progress``."""
        lr = self.lr_at(step, progress)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def validated(self, metric: float) -> None:
        """Reports a validation metric (only the plateau schedule uses it)."""
        if self.plateau is not None:
            self.plateau.update(metric)

    def state_dict(self) -> dict[str, Any]:
        return {"plateau": None if self.plateau is None else self.plateau.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.plateau is not None and state.get("plateau") is not None:
            self.plateau.load_state_dict(state["plateau"])


def build_schedule(optimizer: torch.optim.Optimizer, train_cfg: Any) -> LRSchedule:
    """The schedule named by ``train.schedule`` (``noam`` | ``linear`` | ``constant`` |
    ``plateau``)."""
    warmup = train_cfg.warmup_steps
    plateau = None
    factor: Callable[[int, float], float]
    if train_cfg.schedule == "noam":
        factor = _ignore_progress(partial(noam_factor, warmup_steps=warmup))
    elif train_cfg.schedule == "linear":
        factor = partial(linear_factor, warmup_steps=warmup)
    elif train_cfg.schedule in ("constant", "plateau"):
        factor = _ignore_progress(partial(constant_factor, warmup_steps=warmup))
    else:
        raise ValueError(
            f"train.schedule: unknown schedule {train_cfg.schedule!r}; "
            "expected one of 'noam', 'linear', 'constant', 'plateau'"
        )
    if train_cfg.schedule == "plateau":
        plateau = Plateau(
            factor=train_cfg.plateau_factor,
            patience=train_cfg.plateau_patience,
            higher_is_better=train_cfg.early_stopping_metric == "bleu",
        )
    return LRSchedule(optimizer, peak_lr=train_cfg.lr, factor=factor, plateau=plateau)


def _ignore_progress(factor: Callable[[int], float]) -> Callable[[int, float], float]:
    return lambda step, progress=0.0: factor(step)
