"""Argument checks that a loop can run once instead of at every iteration.

The models and attention modules check the shapes and types of what they are given; a search
calls the same decoder step hundreds of times with tensors of one layout. It runs the first step
checked and the others inside :func:`checked` ``(False)``, so the checks run once per call.
A context variable (not a global) keeps another thread's checks on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["checked", "checks_enabled"]

_ENABLED: ContextVar[bool] = ContextVar("seq2seq_checks_enabled", default=True)


def checks_enabled() -> bool:
    """Whether argument checks run here (True unless inside ``checked(False)``)."""
    return _ENABLED.get()


@contextlib.contextmanager
def checked(enabled: bool) -> Iterator[None]:
    """Run the block with argument checks on or off (restored afterwards)."""
    token = _ENABLED.set(enabled)
    try:
        yield
    finally:
        _ENABLED.reset(token)
