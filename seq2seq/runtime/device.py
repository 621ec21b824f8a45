"""Device choice (``auto`` | ``cpu`` | ``cuda``), CPU threads, native bf16, TF32, peak GPU memory.

The trainer calls, once per process after :func:`resolve_device`: :func:`set_tf32` with
``train.tf32``. Reports call :func:`peak_memory_mib` with the training device.
"""

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


def cuda_has_native_bf16() -> bool:
    """True when the current CUDA device computes bf16 natively (compute capability >= 8.0, or
    ROCm), not through the emulation ``torch.cuda.is_bf16_supported()`` also accepts.

    The current device is the one :func:`resolve_device` selected for this process.
    """
    return torch.cuda.is_bf16_supported(including_emulation=False)


def set_tf32(enabled: bool) -> None:
    """Lets CUDA float32 matrix products and cuDNN (convolutions, LSTMs) use TF32 tensor cores.

    ``train.tf32``. TF32 keeps float32's range with a 10-bit mantissa: much faster float32
    matmuls on Ampere and later GPUs, at about fp16's precision per product (accumulation stays
    float32); it only matters for ``fp32`` training, as bf16/fp16 autocast runs the products in
    16 bits anyway. Set through the ``fp32_precision`` flags ("tf32" / "ieee"), which replace
    ``allow_tf32`` and ``set_float32_matmul_precision`` since torch 2.9: torch refuses to read
    the state once both APIs have been used, so nothing else here sets the old ones. A no-op
    without CUDA: the flags are process-wide and only CUDA reads them.
    """
    if not torch.cuda.is_available():
        return
    if not hasattr(torch.backends.cudnn, "conv"):  # torch < 2.9: only the old flags exist
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled
        return
    mode = "tf32" if enabled else "ieee"
    torch.backends.cuda.matmul.fp32_precision = mode
    torch.backends.cudnn.conv.fp32_precision = mode
    torch.backends.cudnn.rnn.fp32_precision = mode


def peak_memory_mib(device: torch.device | str) -> float | None:
    """The peak of the CUDA caching allocator's allocated memory on ``device`` in MiB since the
    process started (or since ``torch.cuda.reset_peak_memory_stats``); None off CUDA.

    Counts tensors only, not the allocator's cached free blocks or the CUDA context, so it is
    what the computation needed rather than what ``nvidia-smi`` shows.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


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
