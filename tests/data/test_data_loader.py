"""The background batch loader: the sampler's batches in order, positions, errors, stopping."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from seq2seq.data import TokenBatchSampler
from seq2seq.data.loader import BatchLoader


def sampler(n: int = 200, seed: int = 3) -> TokenBatchSampler:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 30, n)
    return TokenBatchSampler(
        src_lengths=lengths, tgt_lengths=lengths[::-1].copy(), batch_tokens=120, seed=seed
    )


def test_batches_in_sampler_order_with_the_position_after_each():
    reference = sampler()
    expected = [b.tolist() for epoch in (0, 1) for b in reference.batches(epoch)]
    fed = []
    with BatchLoader(sampler(), lambda index: index.tolist(), max_epochs=2, depth=3) as loader:
        fed = list(loader)
    batches = [f for f in fed if f.batch is not None]
    assert [f.batch for f in batches] == expected
    n = len(reference.batches(0))
    assert [(f.epoch, f.position) for f in batches] == [
        (e, p) for e in (0, 1) for p in range(1, n + 1)
    ]
    ends = [f.epoch for f in fed if f.batch is None]
    assert ends == [0, 1]  # one marker after each epoch, then the loader stops
    assert loader.wait_seconds >= 0.0


def test_a_resumed_sampler_continues_mid_epoch():
    full = [b.tolist() for b in sampler().batches(0)]
    resumed = sampler()
    resumed.load_state_dict({"epoch": 0, "position": 4})
    with BatchLoader(resumed, lambda index: index.tolist(), max_epochs=1) as loader:
        rest = [f.batch for f in loader if f.batch is not None]
    assert rest == full[4:]


def test_an_error_while_collating_reaches_the_training_thread():
    def collate(index):
        raise ValueError("bad batch")

    with BatchLoader(sampler(), collate) as loader, pytest.raises(ValueError, match="bad batch"):
        next(iter(loader))


def test_close_stops_the_thread_while_it_waits_on_a_full_queue():
    loader = BatchLoader(sampler(), lambda index: index.tolist(), depth=1)  # endless epochs
    next(iter(loader))
    time.sleep(0.2)  # the thread fills the queue and blocks
    loader.close()
    assert not any(t.name == "seq2seq-batches" and t.is_alive() for t in threading.enumerate())
