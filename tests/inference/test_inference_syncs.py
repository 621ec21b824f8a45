"""Greedy and beam search read the device from the host at most once per decoding step.

On CUDA every such read (``.item()``, ``.tolist()``, ``bool(t)``, ``int(t)``, ``nonzero``)
waits for all queued work. A spy counts them on the CPU; a model that never produces EOS
decodes to the length limit, so a per-step read beyond the one allowed shows up many times.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from seq2seq.inference.search import beam_search, greedy_search
from seq2seq.vocab import EOS_ID

_spec = importlib.util.spec_from_file_location(
    "models_util", Path(__file__).parents[1] / "models" / "models_util.py"
)
models_util = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(models_util)

STEPS = 15
BEFORE_AND_AFTER = 9  # limits, token checks, padding test, source lengths, results, and
# whether the first step of a beam reads one token per sentence (the Transformer computes it once)
READS = ("item", "tolist", "nonzero", "__bool__", "__int__", "__float__", "__index__")


@pytest.fixture
def host_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the device-to-host reads made while the fixture is active."""
    reads: list[str] = []

    def spy(name, real):
        def counting(*args, **kwargs):
            reads.append(name)
            return real(*args, **kwargs)

        return counting

    for name in READS:
        monkeypatch.setattr(torch.Tensor, name, spy(name, getattr(torch.Tensor, name)))
    monkeypatch.setattr(torch, "nonzero", spy("torch.nonzero", torch.nonzero))
    return reads


def _never_ending_model():
    cfg = models_util.tiny_config("transformer", attention=("scaled_dot", 2))
    model = models_util.make_model(cfg, dtype=torch.float32)
    with torch.no_grad():
        model.output.bias[EOS_ID] = -1e4
    steps = []
    step = model.step

    def counted_step(*args, **kwargs):
        steps.append(1)
        return step(*args, **kwargs)

    model.step = counted_step
    return model, steps


@pytest.mark.parametrize("beam", [None, 1, 4], ids=["greedy", "beam1", "beam4"])
def test_one_host_read_per_step(host_reads, beam):
    model, steps = _never_ending_model()
    src, _ = models_util.random_batch(batch=4, src_len=6, seed=3)
    limit = torch.tensor([STEPS, STEPS - 4, STEPS, 3])  # rows finish at different steps
    if beam is None:
        hyps = greedy_search(model, src, max_len=limit)
    else:
        hyps = [h[0] for h in beam_search(model, src, beam=beam, max_len=limit)]
    assert [len(h.tokens) for h in hyps] == limit.tolist()
    assert len(steps) == STEPS
    assert len(host_reads) <= STEPS + BEFORE_AND_AFTER, host_reads
