"""Numeric precision: ``auto`` | ``fp32`` | ``bf16`` | ``fp16`` autocast and the gradient scaler.

``auto`` on CUDA is bf16 autocast where the GPU supports it, else fp16 with a gradient scaler
(Micikevicius et al., "Mixed Precision Training", arXiv:1710.03740). On a CPU with native bf16
matrix products (AVX512-BF16 / AMX) it is bf16 autocast, elsewhere float32. Parameters and
optimizer state stay in float32; the loss is computed in float32 (see ``loss.py``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from seq2seq.training.device import cpu_has_native_bf16

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
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


def resolve_precision(name: str, device: torch.device) -> Precision:
    """The precision for ``train.precision`` on ``device``."""
    if name not in PRECISIONS:
        raise ValueError(f"train.precision: got {name!r}, expected one of {', '.join(PRECISIONS)}")
    if name == "auto":
        name = _auto_precision(device)
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("train.precision: 'bf16' is not supported by this GPU; use fp16 or auto")
    return Precision(name=name, dtype=_DTYPES[name], device_type=device.type)


def _auto_precision(device: torch.device) -> str:
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"
