"""Numeric precision: ``auto`` | ``fp32`` | ``bf16`` | ``fp16`` autocast and the gradient scaler.

One vocabulary for training (``train.precision``, all four) and decoding (``auto``, ``fp32``,
``bf16``: pass ``allowed=DECODE_PRECISIONS``); ``auto`` only picks among the allowed names.

``auto`` on CUDA is bf16 autocast where the GPU computes bf16 natively (compute capability 8.0
and later: Ampere, Ada, Hopper), else fp16 with a gradient scaler (Micikevicius et al., "Mixed
Precision Training", arXiv:1710.03740): older GPUs only emulate bf16, far slower than fp16, so
an explicit ``bf16`` is refused there. On a CPU with native bf16
matrix products (AVX512-BF16 / AMX) it is bf16 autocast, elsewhere float32. Parameters and
optimizer state stay in float32; the loss is computed in float32 (see ``loss.py``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from seq2seq.runtime.device import cpu_has_native_bf16, cuda_has_native_bf16

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: The names decoding accepts: fp16 needs a gradient scaler's range checks, which decoding lacks.
DECODE_PRECISIONS = ("auto", "fp32", "bf16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """A resolved precision: its name, the autocast dtype and whether a gradient scaler runs."""

    name: str  # "fp32" | "bf16" | "fp16"
    dtype: torch.dtype
    device_type: str  # "cpu" | "cuda"

    @property
    def uses_scaler(self) -> bool:
        return self.dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context for forward passes (a no-op in float32)."""
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, enabled only for fp16."""
        return torch.amp.GradScaler(self.device_type, enabled=self.uses_scaler)


def resolve_precision(
    name: str,
    device: torch.device,
    *,
    allowed: Sequence[str] = PRECISIONS,
    option: str = "train.precision",
) -> Precision:
    """The precision ``name`` (one of ``allowed``) on ``device``; errors name ``option``.

    ``auto`` is bf16 where the device computes it natively, else fp16 on CUDA when ``allowed``
    holds it, else fp32. An explicit bf16 is refused on a GPU that only emulates it, and warned
    about on a CPU without native bf16 (it runs, slower than fp32). Raises ValueError.
    """
    if name not in allowed:
        raise ValueError(f"{option}: got {name!r}, expected one of {', '.join(allowed)}")
    if name == "auto":
        name = _auto_precision(device, allowed)
    if name == "bf16" and device.type == "cuda" and not cuda_has_native_bf16():
        instead = "fp16" if "fp16" in allowed else "fp32"
        raise ValueError(
            f"{option}: 'bf16' needs a GPU with native bf16 (compute capability 8.0 or "
            f"later), and {_gpu_name()} has none (emulated bf16 is slower than fp16); use "
            f"{option}={instead} or auto"
        )
    if name == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        logger.warning(
            "%s: this CPU has no native bf16 arithmetic: bf16 is emulated and slower than fp32",
            option,
        )
    return Precision(name=name, dtype=_DTYPES[name], device_type=device.type)


def _gpu_name() -> str:
    """The current GPU's name and compute capability, for error messages."""
    try:
        index = torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        return f"{torch.cuda.get_device_name(index)} (compute capability {major}.{minor})"
    except (RuntimeError, AssertionError):  # no usable CUDA runtime (e.g. a test's fake GPU)
        return "this GPU"


def _auto_precision(device: torch.device, allowed: Sequence[str]) -> str:
    if device.type == "cuda":
        if cuda_has_native_bf16():
            return "bf16"
        return "fp16" if "fp16" in allowed else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


#: What inference accepts: the autocast precisions and int8 (dynamically quantized linear
#: layers on the CPU: int8 weights, activations quantized per batch).
INT8 = "int8"
INFERENCE_PRECISIONS = (*DECODE_PRECISIONS, INT8)


def quantize_int8(model: torch.nn.Module, *, option: str = "precision") -> torch.nn.Module:
    """``model`` with every ``nn.Linear`` replaced, in place, by a dynamically quantized int8
    one (``torch.ao.quantization.quantize_dynamic``). CPU only; embeddings, layer norms, LSTMs
    and the tied output projection keep float32. Raises ValueError naming ``option``."""
    import warnings

    device = next(iter(model.parameters()), torch.empty(0)).device
    if device.type != "cpu":
        raise ValueError(f"{option}: int8 runs on the CPU only (the model is on {device})")
    with warnings.catch_warnings():  # torch announces a successor API; this one still works
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.ao.quantization.quantize_dynamic(
            model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
        )
