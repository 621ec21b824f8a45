"""Batches collated off the training thread: a bounded queue filled by a background thread.

The training loop only takes finished batches from the queue; the thread walks the sampler
(epoch after epoch), gathers each batch's ids from the memory-mapped corpus into padded
tensors and, when the batches go to a GPU, pins them so that the copy can run asynchronously
(``Batch.to(device, non_blocking=True)``). Gathering is vectorised numpy, which spends most of
its time outside the interpreter lock, so one thread keeps up with the model; the time the
loop still waits for data is measured (``wait_seconds``, and the ``data wait`` label of the
profiler's phase table).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
from torch.profiler import record_function

from seq2seq.data.batching import Batch, TokenBatchSampler

__all__ = ["BatchLoader", "Fed"]


class Fed(NamedTuple):
    """One item of the loader: a batch and the sampler position after it (what a checkpoint
    must record once the batch has been trained on), or ``batch=None`` at an epoch's end."""

    batch: Batch | None
    epoch: int
    position: int


_DONE = object()


class BatchLoader:
    """Iterates ``collate(indices)`` over ``sampler`` from a background thread, ``depth`` ahead.

    Stops after epoch ``max_epochs - 1`` (None: never). Use as a context manager, or call
    ``close()``, so that the thread stops with the loop.
    """

    def __init__(
        self,
        sampler: TokenBatchSampler,
        collate: Callable[[np.ndarray], Batch],
        *,
        max_epochs: int | None = None,
        pin_memory: bool = False,
        depth: int = 8,
    ) -> None:
        self.sampler, self.collate = sampler, collate
        self.max_epochs, self.pin_memory = max_epochs, pin_memory
        self.wait_seconds = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, name="seq2seq-batches", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self) -> None:
        try:
            sampler = self.sampler
            while self.max_epochs is None or sampler.epoch < self.max_epochs:
                epoch = sampler.epoch
                for indices in sampler:
                    batch = self.collate(indices)
                    if self.pin_memory:
                        batch = batch.pin_memory()
                    if not self._put(Fed(batch, epoch, sampler.position)):
                        return
                if not self._put(Fed(None, epoch, sampler.position)):
                    return
            self._put(_DONE)
        except BaseException as e:  # handed to the training thread, which raises it
            self._put(e)

    def __iter__(self) -> Iterator[Fed]:
        while True:
            started = time.perf_counter()
            with record_function("data wait"):
                item = self._queue.get()
            self.wait_seconds += time.perf_counter() - started
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def take_wait_seconds(self) -> float:
        """Seconds the loop has waited for batches since the last call."""
        seconds, self.wait_seconds = self.wait_seconds, 0.0
        return seconds

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> BatchLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
