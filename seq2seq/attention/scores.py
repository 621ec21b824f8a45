"""Attention score functions: ``score(q, k)`` for every query/key pair.

Each score is split into two halves so that decoders can cache the query-independent one:

* ``prepare_keys(keys)`` does all key-side work (e.g. ``W k``) once per source; its result is
  what :class:`~seq2seq.attention.memory.AttentionMemory` stores.
* ``forward(query, prepared_keys)`` computes the ``[..., Tq, Tk]`` score matrix.

Leading dimensions are free (``[B, Tq, D]`` for a plain score, ``[B, H, Tq, D]`` inside the
multi-head wrapper). ``fused_scale`` is the ``scale`` to pass to
``torch.nn.functional.scaled_dot_product_attention`` when the score is a (scaled) dot product of
the query with the prepared keys, or ``None`` when it is not (additive).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["AdditiveScore", "DotScore", "GeneralScore", "ScaledDotScore"]


def _require_equal_dims(name: str, query_dim: int, key_dim: int) -> None:
    if query_dim != key_dim:
        raise ValueError(
            f"attention type {name!r} compares queries and keys directly and needs "
            f"query_dim == key_dim, got query_dim={query_dim} and key_dim={key_dim} "
            f"(use 'general' or 'additive', or add 'heads' to project both)"
        )


def _dot(query: Tensor, keys: Tensor) -> Tensor:
    """Batched ``q·k``: query [..., Tq, D], keys [..., Tk, D] -> [..., Tq, Tk]."""
    return torch.matmul(query, keys.transpose(-1, -2))


class DotScore(nn.Module):
    """``score(q, k) = q·k`` — Luong et al. (2015) "dot", arXiv:1508.04025; with ``scaled``
    ``q·k / sqrt(d)`` — Vaswani et al. (2017), arXiv:1706.03762 (:class:`ScaledDotScore`)."""

    has_hidden_dim = False
    scaled = False

    def __init__(self, *, query_dim: int, key_dim: int) -> None:
        super().__init__()
        _require_equal_dims("scaled_dot" if self.scaled else "dot", query_dim, key_dim)
        self.query_dim = query_dim
        self.key_dim = key_dim
        self.prepared_dim = key_dim
        self.fused_scale: float | None = 1.0 / math.sqrt(query_dim) if self.scaled else 1.0

    def prepare_keys(self, keys: Tensor) -> Tensor:
        """keys [..., Tk, Dk] -> [..., Tk, Dk] (nothing to precompute)."""
        return keys

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        """query [..., Tq, D], prepared keys [..., Tk, D] -> scores [..., Tq, Tk]."""
        if not self.scaled:
            return _dot(query, keys)
        # Scaling the query costs Tq*D multiplications instead of Tq*Tk.
        return _dot(query * self.fused_scale, keys)


class ScaledDotScore(DotScore):
    """``score(q, k) = q·k / sqrt(d)``: :class:`DotScore` with the scale (types scaled_dot, qkv)."""

    scaled = True


class GeneralScore(nn.Module):
    """``score(q, k) = qᵀ W k`` — Luong et al. (2015) "general", arXiv:1508.04025.

    ``W k`` does not depend on the query, so it is the prepared key; the score is then a plain
    dot product with it, which also lets the fused kernel run this score.
    """

    has_hidden_dim = False

    def __init__(self, *, query_dim: int, key_dim: int) -> None:
        super().__init__()
        self.query_dim = query_dim
        self.key_dim = key_dim
        self.prepared_dim = query_dim
        self.fused_scale: float | None = 1.0
        self.weight = nn.Linear(key_dim, query_dim, bias=False)  # W: [Dq, Dk]

    def prepare_keys(self, keys: Tensor) -> Tensor:
        """keys [..., Tk, Dk] -> W k [..., Tk, Dq]."""
        return self.weight(keys)

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        """query [..., Tq, Dq], prepared keys [..., Tk, Dq] -> scores [..., Tq, Tk]."""
        return _dot(query, keys)


class AdditiveScore(nn.Module):
    """``score(q, k) = vᵀ tanh(W_q q + W_k k)`` — Bahdanau et al. (2014), arXiv:1409.0473.

    ``W_k k`` (with the single bias of the hidden layer) is the prepared key. The score builds a
    ``[..., Tq, Tk, A]`` hidden tensor, A = ``hidden_dim`` (default: ``key_dim``).
    """

    has_hidden_dim = True

    def __init__(self, *, query_dim: int, key_dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden_dim = key_dim if hidden_dim is None else hidden_dim
        if hidden_dim < 1:
            raise ValueError(f"additive attention hidden_dim must be >= 1, got {hidden_dim}")
        self.query_dim = query_dim
        self.key_dim = key_dim
        self.hidden_dim = hidden_dim
        self.prepared_dim = hidden_dim
        self.fused_scale: float | None = None
        self.query_proj = nn.Linear(query_dim, hidden_dim, bias=False)  # W_q
        self.key_proj = nn.Linear(key_dim, hidden_dim, bias=True)  # W_k (+ hidden bias)
        self.v = nn.Parameter(torch.empty(hidden_dim))
        nn.init.uniform_(self.v, -1.0 / math.sqrt(hidden_dim), 1.0 / math.sqrt(hidden_dim))

    def prepare_keys(self, keys: Tensor) -> Tensor:
        """keys [..., Tk, Dk] -> W_k k + b [..., Tk, A]."""
        return self.key_proj(keys)

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        """query [..., Tq, Dq], prepared keys [..., Tk, A] -> scores [..., Tq, Tk]."""
        projected = self.query_proj(query)  # [..., Tq, A]
        hidden = torch.tanh(projected.unsqueeze(-2) + keys.unsqueeze(-3))  # [..., Tq, Tk, A]
        return torch.matmul(hidden, self.v.to(hidden.dtype))  # [..., Tq, Tk]
