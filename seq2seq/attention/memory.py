"""The query-independent half of attention, computed once and handed back explicitly."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["AttentionMemory"]


class AttentionMemory(NamedTuple):
    """Prepared keys and values of one attention module; time is dim -2 of both.

    Plain attention: keys [B, Tk, Dp], values [B, Tk, Dv].
    Multi-head attention: keys [B, H, Tk, Dp], values [B, H, Tk, Dv / H]
    (Dp is the score's prepared key size, e.g. A for additive).
    Built by ``Attention.memory(keys, values)``; never stored on the module.
    """

    keys: Tensor
    values: Tensor

    def extend(self, other: AttentionMemory) -> AttentionMemory:
        """Append ``other`` along time (dim -2), e.g. one decoder step of self-attention."""
        for name, mine, theirs in (
            ("keys", self.keys, other.keys),
            ("values", self.values, other.values),
        ):
            if mine.dim() != theirs.dim() or (
                mine.shape[:-2] != theirs.shape[:-2] or mine.shape[-1] != theirs.shape[-1]
            ):
                raise ValueError(
                    f"AttentionMemory.extend: {name} of shape {list(theirs.shape)} cannot be "
                    f"appended to {name} of shape {list(mine.shape)} "
                    f"(all dims but time, dim -2, must match)"
                )
        return AttentionMemory(
            torch.cat([self.keys, other.keys], dim=-2),
            torch.cat([self.values, other.values], dim=-2),
        )

    def select(self, index: Tensor) -> AttentionMemory:
        """Pick batch entries (dim 0): beam reordering or batch pruning. index: LongTensor [N]."""
        return AttentionMemory(self.keys.index_select(0, index), self.values.index_select(0, index))
