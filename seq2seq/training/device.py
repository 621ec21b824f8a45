"""Device choice (``auto`` | ``cpu`` | ``cuda``), CPU thread count and CPU feature probing."""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device for ``train.device``; ``auto`` is CUDA when present, else the CPU.

    Under ``torchrun`` each process on a multi-GPU node takes the GPU of its local rank.
    """
    if name not in DEVICES:
        raise ValueError(f"train.device: got {name!r}, expected one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "train.device: 'cuda' was asked for but torch sees no CUDA device; use 'auto' or 'cpu'"
        )
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    index = local_rank % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The feature flags of the first processor in ``/proc/cpuinfo`` (empty off Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 matrix products natively (AVX512-BF16 or AMX-BF16)."""
    if not torch.backends.mkldnn.is_available():
        return False
    return any(flag in cpu_flags() for flag in _BF16_CPU_FLAGS)


def configure_threads(threads: int | None, processes_per_node: int = 1) -> int:
    """Sets torch's intra-op thread count: ``threads``, or the cores shared by local processes."""
    if threads is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        cores = cores or os.cpu_count() or 1
        threads = max(1, cores // max(1, processes_per_node))
    if threads < 1:
        raise ValueError(f"train.threads: got {threads}, expected an integer >= 1")
    torch.set_num_threads(threads)
    return threads
