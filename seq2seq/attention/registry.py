"""Attention type names -> score classes, and ``build_attention``, the one place reading specs."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from torch import nn

from .module import Attention
from .scores import AdditiveScore, DotScore, GeneralScore, ScaledDotScore

__all__ = ["ATTENTION_TYPES", "HEADS_REQUIRED", "build_attention", "register_attention"]

_TYPES: dict[str, type[nn.Module]] = {
    "dot": DotScore,
    "scaled_dot": ScaledDotScore,
    "general": GeneralScore,
    "additive": AdditiveScore,
    "multiplicative": GeneralScore,  # Luong's "general" under its other common name
    "qkv": ScaledDotScore,  # the Transformer's multi-head scaled dot product
}

#: Every accepted ``type`` name (aliases included) -> its score class. Read-only view.
ATTENTION_TYPES: Mapping[str, type[nn.Module]] = MappingProxyType(_TYPES)
#: Type names that only exist in multi-head form.
HEADS_REQUIRED: frozenset[str] = frozenset({"qkv"})

_SPEC_KEYS = ("type", "heads", "dropout", "hidden_dim")


def register_attention(name: str, score_cls: type[nn.Module]) -> None:
    """Make ``type: name`` build ``score_cls`` (a class following the protocol of scores.py)."""
    if name in _TYPES:
        raise ValueError(f"attention type {name!r} is already registered")
    _TYPES[name] = score_cls


def _read_spec(spec: Any) -> dict[str, Any]:
    """Fields of a mapping or an AttentionConfig-like object, with defaults for missing ones."""
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - set(_SPEC_KEYS), key=str)
        if unknown:
            raise ValueError(
                f"attention spec has unknown key(s) {unknown}; allowed keys: {list(_SPEC_KEYS)}"
            )
        if "type" not in spec:
            raise ValueError(f"attention spec {dict(spec)} has no 'type' key")
        fields = {key: spec.get(key) for key in _SPEC_KEYS}
    else:
        if not hasattr(spec, "type"):
            raise ValueError(
                f"attention spec must be a mapping or a config object with a 'type' field, "
                f"got {type(spec).__name__}"
            )
        fields = {key: getattr(spec, key, None) for key in _SPEC_KEYS}
    if fields["dropout"] is None:
        fields["dropout"] = 0.0
    return fields


def _check_spec(fields: dict[str, Any]) -> None:
    name, heads = fields["type"], fields["heads"]
    if not isinstance(name, str) or name not in _TYPES:
        close = difflib.get_close_matches(name, list(_TYPES), n=1) if isinstance(name, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"unknown attention type {name!r}{hint}; available types: {', '.join(_TYPES)}"
        )
    for key in ("heads", "hidden_dim"):
        value = fields[key]
        valid = value is None or (isinstance(value, int) and not isinstance(value, bool))
        if not valid or (value is not None and value < 1):
            raise ValueError(f"attention {key} must be a positive integer or None, got {value!r}")
    dropout = fields["dropout"]
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
        raise ValueError(f"attention dropout must be a number in [0, 1), got {dropout!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"attention dropout must be in [0, 1), got {dropout}")
    if heads is None and name in HEADS_REQUIRED:
        raise ValueError(
            f"attention type {name!r} is multi-head only: give 'heads' (e.g. heads: 4), "
            f"or use type 'scaled_dot' for the plain score"
        )
    if fields["hidden_dim"] is not None and not getattr(_TYPES[name], "has_hidden_dim", False):
        raise ValueError(
            f"attention hidden_dim={fields['hidden_dim']} only applies to additive attention, "
            f"not to type {name!r}"
        )


def build_attention(
    spec: Any, query_dim: int, key_dim: int, value_dim: int | None = None
) -> Attention:
    """Build an attention module from a spec.

    Args:
        spec: mapping ``{"type": T, "heads": h?, "dropout": p?, "hidden_dim": a?}`` (as read
            from YAML) or an object with those attributes (``AttentionConfig``).
        query_dim, key_dim: feature sizes of queries and keys.
        value_dim: feature size of values (default: ``key_dim``).
    """
    fields = _read_spec(spec)
    _check_spec(fields)
    value_dim = key_dim if value_dim is None else value_dim
    for arg, dim in (("query_dim", query_dim), ("key_dim", key_dim), ("value_dim", value_dim)):
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"build_attention: {arg} must be a positive integer, got {dim!r}")
    heads = fields["heads"]
    if heads is None:
        score_dims = (query_dim, key_dim)
    elif query_dim % heads:
        raise ValueError(
            f"attention heads={heads} must divide query_dim={query_dim} "
            f"(query_dim % heads = {query_dim % heads})"
        )
    else:
        score_dims = (query_dim // heads, query_dim // heads)
    score_cls = _TYPES[fields["type"]]
    extra = {} if fields["hidden_dim"] is None else {"hidden_dim": fields["hidden_dim"]}
    score = score_cls(query_dim=score_dims[0], key_dim=score_dims[1], **extra)
    return Attention(
        score=score,
        query_dim=query_dim,
        key_dim=key_dim,
        value_dim=value_dim,
        num_heads=heads,
        dropout=float(fields["dropout"]),
    )
