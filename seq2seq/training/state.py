"""What a resumed run needs: the training counters, random number generator states, seeding."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch


@dataclass
class TrainState:
    """Counters and early-stopping bookkeeping saved in every checkpoint."""

    step: int = 0  # optimizer updates done
    best_bleu: float | None = None  # best validation BLEU so far (best.pt)
    best_step: int | None = None
    best_metric: float | None = None  # best value of train.early_stopping_metric
    bad_validations: int = 0  # validations in a row without progress on it
    validated_step: int = -1  # step of the latest validation
    seconds: float = 0.0  # wall-clock seconds of training so far, over every resumed session

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            if hasattr(self, key):
                setattr(self, key, value)


def seed_everything(seed: int) -> None:
    """Seeds Python's and torch's generators (CPU and every CUDA device)."""
    random.seed(seed)
    torch.manual_seed(seed)


def capture_rng() -> dict[str, Any]:
    """The current states of Python's and torch's random number generators."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Puts the generators back into a state from :func:`capture_rng`."""
    random.setstate(_as_tuple(state["python"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _as_tuple(value: Any) -> Any:
    """``random.setstate`` wants tuples where a round trip may have given lists."""
    if isinstance(value, list | tuple):
        return tuple(_as_tuple(v) for v in value)
    return value


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Runs a block (validation, plotting) without changing the training's random streams."""
    state = capture_rng()
    try:
        yield
    finally:
        restore_rng(state)
