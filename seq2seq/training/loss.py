"""Label-smoothed cross entropy, computed in float32 on the non-padding target positions.

Label smoothing: Szegedy et al., "Rethinking the Inception Architecture", arXiv:1512.00567.
The smoothed target puts ``1 - eps`` on the reference token and spreads ``eps`` uniformly over
the whole vocabulary, the same convention as ``torch.nn.functional.cross_entropy(...,
label_smoothing=eps)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from seq2seq.vocab import PAD_ID


def label_smoothed_cross_entropy(
    logits: Tensor, target: Tensor, smoothing: float = 0.0, ignore_index: int = PAD_ID
) -> tuple[Tensor, int]:
    """Summed label-smoothed cross entropy over the target tokens that are not ``ignore_index``.

    Args:
        logits: raw scores ``[B, T, V]`` (any float dtype; the log-softmax runs in float32).
        target: reference ids ``[B, T]``.
        smoothing: ``eps`` in ``[0, 1)``; 0 gives the plain negative log-likelihood.

    Returns:
        ``(loss_sum, n_tokens)``: a float32 scalar tensor summed over the counted positions,
        and the number of counted positions. Divide the first by the second for a mean.
        A batch with no counted position gives a zero loss.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"label smoothing must be in [0, 1), got {smoothing}")
    if logits.shape[:-1] != target.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and target {tuple(target.shape)} disagree: "
            "expected logits [B, T, V] and target [B, T]"
        )
    # One fused library call over all positions (padding rows are ignored by the kernel):
    # cheaper than selecting the non-padding rows first, whose copy and scatter-back cost more
    # than the few padding rows save (docs/performance.md).
    scores = logits.reshape(-1, logits.size(-1))  # [B*T, V]
    scores = scores.to(torch.promote_types(scores.dtype, torch.float32))
    loss = F.cross_entropy(
        scores,
        target.reshape(-1),
        ignore_index=ignore_index,
        label_smoothing=smoothing,
        reduction="sum",
    )
    return loss, int((target != ignore_index).sum())
