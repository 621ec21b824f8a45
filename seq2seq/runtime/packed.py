"""Linear layers with prepacked weights, for float32 inference on the CPU.

``F.linear`` on the CPU calls the BLAS (MKL in the official wheels), which packs the weight
into its blocked layout inside every call. oneDNN can pack the weight once
(``torch.ops.mkldnn._reorder_linear_weight``) and multiply by the packed copy
(``torch.ops.mkldnn._linear_pointwise``), which is what PyTorch's own compiler emits for frozen
CPU models. At decoding sizes on an AMD CPU with AVX2 this was 1.4-4x faster for the vocabulary
projection and 1.0-1.5x for the feed-forward layers, and slower for the small 256 x 256
attention projections, where the fixed cost of the call dominates (docs/performance.md,
"Decoding against CTranslate2"; ``scripts/bench_kernels.py``). So only weights of at least
``MIN_PACKED`` entries are packed; the results equal ``F.linear`` to float32 rounding.

The packed copy is a cache of the weight: a :class:`PackedLinear` keeps ``weight`` and
``bias`` (its state dict is the original layer's), and is made for inference, where the weights
no longer change. Training never packs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["MIN_PACKED", "PackedLinear", "pack_linears", "packing_available"]

#: The smallest weight (out x in entries) worth packing: 256 x 1024.
MIN_PACKED = 1 << 18


def packing_available() -> bool:
    """Whether this torch build has oneDNN and the packed linear operators."""
    ops = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(ops, "_reorder_linear_weight")
        and hasattr(ops, "_linear_pointwise")
    )


class PackedLinear(nn.Module):
    """``F.linear(x, weight, bias)`` through a oneDNN-packed copy of ``weight`` (float32, CPU).

    ``weight`` and ``bias`` stay the module's parameters (shared with the layer it replaces,
    a tied embedding included), so its state dict and parameter count are the original's.
    """

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None) -> None:
        super().__init__()
        if not _packable(weight):
            raise ValueError(
                f"PackedLinear: packs float32 CPU weights, got {weight.dtype} on {weight.device}"
            )
        self.weight, self.bias = weight, bias
        self.out_features, self.in_features = weight.shape
        with torch.no_grad():
            packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach())
        self.register_buffer("packed", packed, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed=oneDNN"


def pack_linears(model: nn.Module, *, min_weight: int | None = None) -> int:
    """Replace, in place, each linear map of ``model`` whose weight has at least
    ``min_weight`` entries (default :data:`MIN_PACKED`) by a :class:`PackedLinear`; returns how
    many were replaced.

    A linear map is an ``nn.Linear`` or a module that says it is one by a ``linear_weights()``
    method returning its (weight, bias) (the models' output projection). Nothing is replaced
    where :func:`packing_available` is False, or off the CPU or float32.
    """
    if not packing_available():
        return 0
    min_weight = MIN_PACKED if min_weight is None else min_weight
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                weight, bias = child.weight, child.bias
            elif hasattr(child, "linear_weights"):
                weight, bias = child.linear_weights()
            else:
                continue
            if weight.numel() < min_weight or not _packable(weight):
                continue
            setattr(parent, name, PackedLinear(weight, bias))
            replaced += 1
    return replaced


def _packable(weight: Tensor) -> bool:
    """Whether oneDNN packs ``weight`` here: float32 on the CPU."""
    return weight.device.type == "cpu" and weight.dtype == torch.float32
