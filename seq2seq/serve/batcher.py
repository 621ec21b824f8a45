"""Dynamic batching: requests that arrive together are translated together.

Worker threads run the model (one by default; several share the cores, each with its own
intra-op threads). Requests queue as jobs; an idle worker takes the oldest job and every queued
job with the same search options (beam, n_best, alignments, attention), oldest first, up to a
token budget, waiting at most `max_wait` seconds for more to come. It translates them in one
call and resolves each job's future with its share of the results. While the workers are busy,
new jobs queue up, so under load each batch takes what arrived during the previous one:
throughput grows with concurrency. One worker at a time gathers a batch, so two never wait for
the same jobs.

The wait is for company, so it happens only under concurrency: when the oldest job arrived
while the worker was busy, or the worker's previous batch held several jobs. It counts from the
later of the oldest job's arrival and the end of that worker's previous batch, so that the
clients that batch has just answered can send their next request and join: with C clients each
batch then holds about C requests (C / workers with several workers), instead of settling into
two alternating halves (the clients answered by one batch arrive while the next one runs, and
only those would be queued). A lone client on an idle server is never delayed.

The cost of a text is its number of source subwords (+1 for the end of sentence) times the
beam, a measure of the decoder's work; a single job over the budget runs alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

#: run(texts, key) -> one result per text, in order.
RunBatch = Callable[[list[str], Any], Sequence[Any]]


class BatcherClosed(RuntimeError):
    """Submitting to a batcher that is shutting down."""


@dataclass
class Job:
    """Texts of one request, the options they share, their cost and the future of results."""

    texts: list[str]
    key: Hashable
    cost: int
    arrived: float = field(default_factory=time.monotonic)
    future: Future = field(default_factory=Future)


@dataclass
class BatcherStats:
    """Counters for /health and the tests."""

    batches: int = 0
    jobs: int = 0
    texts: int = 0
    largest_batch: int = 0


class Batcher:
    """A queue of translation jobs and the worker thread that serves them in batches."""

    def __init__(
        self,
        run: RunBatch,
        *,
        max_tokens: int,
        max_wait: float,
        workers: int = 1,
        on_start: Callable[[], None] | None = None,
    ) -> None:
        """``on_start`` runs first in each worker thread (per-thread settings of the model).
        `run` is called from `workers` threads at once when there are several."""
        if max_tokens < 1 or max_wait < 0 or workers < 1:
            raise ValueError(
                f"batcher: max_tokens {max_tokens} < 1, max_wait {max_wait} < 0 "
                f"or workers {workers} < 1"
            )
        self.run, self.max_tokens, self.max_wait = run, max_tokens, max_wait
        self.on_start = on_start
        self.stats = BatcherStats()
        self._jobs: list[Job] = []
        self._cond = threading.Condition()
        self._closed = False
        self._gathering = False  # a worker is gathering a batch: the others wait their turn
        self._idle = set(range(workers))  # workers not running a batch
        self._threads = [
            threading.Thread(target=self._loop, args=(i,), name=f"seq2seq-batcher-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, texts: list[str], key: Hashable, cost: int) -> Future:
        """Queue `texts` (translated with the options `key`); the future gives their results."""
        job = Job(list(texts), key, max(1, cost))
        with self._cond:
            if self._closed:
                raise BatcherClosed("the server is shutting down")
            self._jobs.append(job)
            self._cond.notify_all()  # the gathering worker may now have a full batch
        return job.future

    @property
    def queued(self) -> int:
        """Jobs waiting for the worker."""
        with self._cond:
            return len(self._jobs)

    def close(self, timeout: float | None = None) -> None:
        """Refuse new jobs, finish the queued ones, and stop the workers."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    # --- the workers --------------------------------------------------------------------------

    def _loop(self, worker: int) -> None:
        if self.on_start is not None:
            self.on_start()
        busy_until, last_jobs = 0.0, 0  # when this worker's last batch ended, its jobs
        while (batch := self._next_batch(worker, busy_until, last_jobs)) is not None:
            self._serve(batch)
            busy_until, last_jobs = time.monotonic(), len(batch)

    def _next_batch(self, worker: int, busy_until: float, last_jobs: int) -> list[Job] | None:
        """The next group of compatible jobs, once full or `max_wait` after the later of its
        oldest job's arrival and the worker's previous batch's end (`busy_until`, holding
        `last_jobs` jobs); None when closed and empty. Of the idle workers the first gathers,
        so a lone client is always served by the same thread."""
        with self._cond:
            self._idle.add(worker)
            while self._gathering or not self._jobs or min(self._idle) < worker:
                if self._closed and not self._jobs:
                    return None
                self._cond.wait()
            self._idle.discard(worker)
            self._gathering = True
            try:
                first = self._jobs[0]
                concurrent = first.arrived < busy_until or last_jobs > 1
                since = max(first.arrived, busy_until)
                deadline = since + self.max_wait if concurrent else first.arrived
                while True:
                    group, full = self._group(first.key)
                    remaining = deadline - time.monotonic()
                    if full or self._closed or remaining <= 0:
                        break
                    self._cond.wait(remaining)
                taken = {id(job) for job in group}
                self._jobs = [job for job in self._jobs if id(job) not in taken]
                return group
            finally:
                self._gathering = False
                self._cond.notify_all()

    def _group(self, key: Hashable) -> tuple[list[Job], bool]:
        """Queued jobs with options `key`, oldest first, within the budget; and whether the
        budget is reached (no further job could join)."""
        group: list[Job] = []
        tokens = 0
        for job in self._jobs:
            if job.key != key:
                continue
            if group and tokens + job.cost > self.max_tokens:
                return group, True
            group.append(job)
            tokens += job.cost
        return group, tokens >= self.max_tokens

    def _serve(self, batch: list[Job]) -> None:
        # a job whose client went away (its future cancelled) is dropped; the others can no
        # longer be cancelled, so resolving them below cannot fail
        batch = [job for job in batch if job.future.set_running_or_notify_cancel()]
        if not batch:
            return
        texts = [text for job in batch for text in job.texts]
        try:
            results = list(self.run(texts, batch[0].key))
            if len(results) != len(texts):
                raise RuntimeError(f"got {len(results)} results for {len(texts)} texts")
        except Exception as e:  # the worker survives; each request gets the error
            logger.exception("translating a batch of %d texts failed", len(texts))
            for job in batch:
                job.future.set_exception(e)
            return
        with self._cond:
            stats = self.stats
            stats.batches += 1
            stats.jobs += len(batch)
            stats.texts += len(texts)
            stats.largest_batch = max(stats.largest_batch, len(texts))
        start = 0
        for job in batch:
            job.future.set_result(results[start : start + len(job.texts)])
            start += len(job.texts)
