"""Attention: one interface for dot, scaled_dot, general and additive scores, plain or multi-head.

Example (query [B, Tq, 8], keys/values [B, S, 6], src_mask [B, S] bool, True = real token)::

    attn = build_attention({"type": "additive"}, query_dim=8, key_dim=6)
    context, weights = attn(query, keys, values, mask=src_mask[:, None, :], need_weights=True)
    # context [B, Tq, 6], weights [B, 1, Tq, S]

    memory = attn.memory(keys, values)  # key-side work, once per source
    context, _ = attn(query, mask=src_mask[:, None, :], memory=memory)
"""

from __future__ import annotations

from .kernel import causal_mask
from .memory import AttentionMemory
from .module import Attention
from .registry import (
    ATTENTION_TYPES,
    HEADS_REQUIRED,
    AttentionSpec,
    AttentionSpecError,
    build_attention,
    check_spec,
    register_attention,
)
from .scores import AdditiveScore, DotScore, GeneralScore, ScaledDotScore

__all__ = [
    "ATTENTION_TYPES",
    "HEADS_REQUIRED",
    "AdditiveScore",
    "Attention",
    "AttentionMemory",
    "AttentionSpec",
    "AttentionSpecError",
    "DotScore",
    "GeneralScore",
    "ScaledDotScore",
    "build_attention",
    "causal_mask",
    "check_spec",
    "register_attention",
]
