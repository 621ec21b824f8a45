"""Dropout (Srivastava et al., 2014, JMLR 15) with a cheaper mask on the CPU.

``torch.nn.functional.dropout`` draws its CPU mask with ``bernoulli_``, far slower than
``rand_like``: in a training profile the masks were the single most expensive operator
(measurements: docs/performance.md, "Training step: the tiny Transformer recipe"). Here the CPU
mask is ``rand >= p``, kept as the scale ``1 / (1 - p)`` or 0, which is the same distribution;
other devices keep the library's fused kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Dropout", "dropout"]


def _check_rate(p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``."""
    _check_rate(p)
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, training=True)
    mask = torch.rand_like(x).ge_(p).mul_(1.0 / (1.0 - p))
    return x * mask


class Dropout(nn.Module):
    """Drop-in for ``nn.Dropout`` that uses :func:`dropout`."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        _check_rate(p)
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
