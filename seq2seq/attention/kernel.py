"""Softmax, masks and values: the part of attention shared by every score.

Two ways to turn scores into a context, chosen once per score type by the module:

* :func:`explicit_attention` — ``softmax(scores) @ v`` written out, returns the weights;
* :func:`fused_attention` — ``torch.nn.functional.scaled_dot_product_attention`` (the fused
  CPU / flash / memory-efficient kernels), for scores that are a scaled dot product; it never
  materialises the weights.

Both take a mask already shaped by :func:`expand_mask` (``[b, 1, tq, tk]``, True = may attend)
and give a query row whose keys are all masked a zero context (and zero weights), never NaN.

Causality is a flag, not a tensor, until a kernel needs one: with ``causal=True`` and no other
mask the fused path calls SDPA with ``is_causal=True`` and no mask at all, which keeps the flash
kernels eligible on CUDA (any materialised mask rules them out). The explicit path, or a causal
call that also has a padding mask, folds :func:`causal_mask` into the mask (:func:`with_causal`).
SDPA aligns ``is_causal`` to the top left, which is the causal mask only when there are as many
queries as keys, so causal calls must be square; an incremental decoding step (one query
against the cache of the positions so far) may attend every key and needs no mask.

Where the fused kernel is slower, scores that allow it still take the explicit path
(:func:`prefers_fused`): on the CPU without autograd (translation, scoring), the written-out
products beat the CPU's SDPA kernel 1.4-3x at NMT lengths (docs/performance.md, "Decoding
against CTranslate2"; ``scripts/bench_kernels.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from seq2seq.runtime.dropout import dropout as dropout_

__all__ = [
    "causal_mask",
    "expand_mask",
    "explicit_attention",
    "fused_attention",
    "prefers_fused",
    "with_causal",
]

_CPU_SLOW_DTYPES = (torch.bfloat16, torch.float16)


def prefers_fused(query: Tensor) -> bool:
    """Whether SDPA is the faster way for ``query``: always on CUDA and wherever autograd
    records (training), not on the CPU at inference (the module docstring)."""
    return query.device.type != "cpu" or torch.is_grad_enabled()


def causal_mask(size: int, device: torch.device | str | None = None) -> Tensor:
    """Bool mask [size, size], True on and below the diagonal: query t may attend keys <= t."""
    if size < 0:
        raise ValueError(f"causal_mask size must be >= 0, got {size}")
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()


def with_causal(mask: Tensor | None, tq: int, tk: int, device: torch.device) -> Tensor:
    """``mask`` [b, 1, tq, tk] (or None) and the causal mask [tq, tk]: query t attends keys <= t.

    Raises ValueError unless tq == tk (see the module docstring).
    """
    _check_square(tq, tk)
    causal = causal_mask(tq, device=device)
    return causal if mask is None else mask & causal


def _check_square(tq: int, tk: int) -> None:
    if tq != tk:
        raise ValueError(
            f"causal attention needs as many queries as keys, got {tq} queries and {tk} keys; "
            "a decoding step with one query attends its whole cache and needs no causal mask"
        )


def expand_mask(mask: Tensor | None, batch: int, tq: int, tk: int) -> Tensor | None:
    """Check a mask broadcastable to [B, Tq, Tk] and return it as [b, 1, tq, tk].

    The singleton dim 1 broadcasts over heads; b, tq, tk are either the full size or 1.
    """
    if mask is None:
        return None
    expected = f"[{batch}, {tq}, {tk}] ([batch, queries, keys]) or broadcastable to it"
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a bool tensor (True = may attend), got {got}")
    ok = mask.dim() <= 3
    if ok:
        try:
            ok = torch.broadcast_shapes(mask.shape, (batch, tq, tk)) == (batch, tq, tk)
        except RuntimeError:
            ok = False
    if not ok:
        raise ValueError(
            f"mask has shape {list(mask.shape)}, expected {expected}; "
            f"a key padding mask [B, Tk] must be passed as mask[:, None, :]"
        )
    while mask.dim() < 3:
        mask = mask.unsqueeze(0)
    return mask.unsqueeze(1)  # [b, 1, tq, tk]


def _rows_with_keys(mask: Tensor) -> tuple[Tensor, Tensor]:
    """Split a mask into (rows that may attend something [b,1,tq,1], mask safe for softmax).

    Rows with no allowed key are opened to every key so that softmax stays finite; callers
    zero those rows afterwards.
    """
    has_keys = mask.any(dim=-1, keepdim=True)  # [b, 1, tq, 1]
    return has_keys, mask | ~has_keys


def explicit_attention(
    scores: Tensor,
    values: Tensor,
    mask: Tensor | None,
    dropout: float,
    causal: bool = False,
) -> tuple[Tensor, Tensor]:
    """softmax(scores) @ values with masking; softmax statistics in at least float32.

    scores [B, H, Tq, Tk], values [B, H, Tk, Dv], mask [b, 1, tq, tk] or None; ``causal``
    adds the causal mask (Tq == Tk). Returns context [B, H, Tq, Dv] and the weights before
    dropout [B, H, Tq, Tk] (float32, or float64 for float64 scores).
    """
    if causal:
        mask = with_causal(mask, scores.shape[-2], scores.shape[-1], scores.device)
    softmax_dtype = torch.promote_types(scores.dtype, torch.float32)
    scores = scores.to(softmax_dtype)
    has_keys = None
    if mask is not None:
        has_keys, mask = _rows_with_keys(mask)
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # [B, H, Tq, Tk]
    if has_keys is not None:
        weights = weights.masked_fill(~has_keys, 0.0)
    dropped = dropout_(weights, dropout) if dropout > 0.0 else weights
    context = torch.matmul(dropped.to(values.dtype), values)  # [B, H, Tq, Dv]
    return context, weights


def fused_attention(
    query: Tensor,
    keys: Tensor,
    values: Tensor,
    mask: Tensor | None,
    dropout: float,
    scale: float,
    causal: bool = False,
) -> Tensor:
    """``softmax(scale * q kᵀ) v`` through ``F.scaled_dot_product_attention``.

    query [B, H, Tq, D], keys [B, H, Tk, D], values [B, H, Tk, Dv], mask [b, 1, tq, tk] or None;
    ``causal`` (Tq == Tk): SDPA's ``is_causal`` when there is no other mask, else folded into it.
    Returns context [B, H, Tq, Dv].
    """
    if causal:
        _check_square(query.shape[-2], keys.shape[-2])
        if mask is not None:
            mask, causal = with_causal(mask, query.shape[-2], keys.shape[-2], query.device), False
    if query.device.type == "cpu" and query.dtype in _CPU_SLOW_DTYPES:
        # The CPU kernel's bf16/fp16 forward+backward is slower than float32 at NMT lengths
        # (docs/performance.md, "Fused attention on the CPU in bf16"), so it runs in float32,
        # outside autocast (which would cast the inputs straight back).
        with torch.autocast("cpu", enabled=False):
            context = _sdpa(
                query.float(), keys.float(), values.float(), mask, dropout, scale, causal
            )
        return context.to(query.dtype)
    return _sdpa(query, keys, values, mask, dropout, scale, causal)


def _sdpa(
    query: Tensor,
    keys: Tensor,
    values: Tensor,
    mask: Tensor | None,
    dropout: float,
    scale: float,
    causal: bool,
) -> Tensor:
    """SDPA with at most one of ``mask`` and ``causal``; all-masked rows give zeros."""
    if mask is None:
        return F.scaled_dot_product_attention(
            query, keys, values, dropout_p=dropout, is_causal=causal, scale=scale
        )
    has_keys, safe_mask = _rows_with_keys(mask)
    context = F.scaled_dot_product_attention(
        query, keys, values, attn_mask=safe_mask, dropout_p=dropout, scale=scale
    )
    return context.masked_fill(~has_keys, 0.0)
