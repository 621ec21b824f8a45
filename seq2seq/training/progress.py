"""Training progress: a tqdm bar (step, loss, lr, target tokens/s, time left) or log lines."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

logger = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    """``3725`` -> ``"1h02m05s"``; ``65`` -> ``"1m05s"``; ``7`` -> ``"7s"``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def time_left(
    *, step: int, start_step: int, elapsed: float, max_steps: int | None, max_seconds: float | None
) -> float | None:
    """Seconds until the first of ``max_steps`` (at the current pace) or ``max_seconds``."""
    candidates = []
    if max_steps is not None and step > start_step and elapsed > 0:
        pace = elapsed / (step - start_step)
        candidates.append(max(0, max_steps - step) * pace)
    if max_seconds is not None:
        candidates.append(max(0.0, max_seconds - elapsed))
    return min(candidates) if candidates else None


@dataclass
class Window:
    """Sums over the updates since the last log line.

    The loss, token and sentence counts and gradient norms stay where the step computed them
    (on the GPU when training there) until :meth:`totals` reads them all at once, so that a
    training step never waits for the device; padding, the learning rate and the fp16 skip
    flag are known on the host.
    """

    device_sums: Any = None  # tensor [loss sum, target tokens, sentences], this process
    padding_sum: float = 0.0
    batches: int = 0
    updates: int = 0
    skipped: int = 0
    lr: float = 0.0  # of the latest update
    steps: list[int] = field(default_factory=list)  # the step of each update that was applied
    checks: list[Any] = field(default_factory=list)  # per update: [loss sum, grad norm]
    started: float = field(default_factory=time.perf_counter)

    def add(self, stats: Any, n_batches: int, step: int) -> None:
        """Adds one update's StepStats (its padding is the mean over its n_batches)."""
        if not stats.skipped:
            sums = stats.sums
            self.device_sums = sums if self.device_sums is None else self.device_sums + sums
            self.steps.append(step)
            self.checks.append(stats.checks)
        self.padding_sum += stats.padding * n_batches
        self.batches += n_batches
        self.updates += 1
        self.skipped += int(stats.skipped)
        self.lr = stats.lr

    @property
    def seconds(self) -> float:
        return max(time.perf_counter() - self.started, 1e-9)

    @property
    def padding(self) -> float:
        return self.padding_sum / self.batches if self.batches else 0.0


class Progress:
    """A tqdm bar on rank 0 in interactive mode; nothing (the log lines suffice) when quiet."""

    def __init__(
        self,
        *,
        start_step: int,
        max_steps: int | None,
        max_seconds: float | None,
        enabled: bool,
    ) -> None:
        self.start_step = start_step
        self.max_steps = max_steps
        self.max_seconds = max_seconds
        self.started = time.perf_counter()
        self._stack = contextlib.ExitStack()
        self.bar = None
        if enabled:
            self._stack.enter_context(logging_redirect_tqdm())
            self.bar = tqdm(
                total=max_steps,
                initial=start_step,
                unit="step",
                dynamic_ncols=True,
                smoothing=0.1,
                leave=True,
            )

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def eta(self, step: int) -> float | None:
        return time_left(
            step=step,
            start_step=self.start_step,
            elapsed=self.elapsed,
            max_steps=self.max_steps,
            max_seconds=self.max_seconds,
        )

    def update(self, *, step: int, loss: float, lr: float, tok_per_s: float) -> None:
        if self.bar is None:
            return
        self.bar.n = step
        eta = self.eta(step)
        left = "?" if eta is None else format_duration(eta)
        self.bar.set_postfix_str(
            f"loss {loss:.3f} lr {lr:.2e} {tok_per_s:,.0f} tgt tok/s left {left}", refresh=False
        )
        self.bar.update(0)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self._stack.close()
