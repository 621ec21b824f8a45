"""Attention type names -> score classes, and ``build_attention``, the one place reading specs."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol, TypeAlias

from torch import nn

from .module import Attention
from .scores import AdditiveScore, DotScore, GeneralScore, ScaledDotScore

__all__ = [
    "ATTENTION_TYPES",
    "HEADS_REQUIRED",
    "AttentionSpec",
    "AttentionSpecError",
    "build_attention",
    "check_spec",
    "register_attention",
]

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


class SpecLike(Protocol):
    """An object with the fields of a spec, such as ``seq2seq.config.AttentionConfig``."""

    type: str
    heads: int | None
    dropout: float
    hidden_dim: int | None


#: What :func:`build_attention` and :func:`check_spec` take: a mapping as read from YAML, or an
#: ``AttentionConfig`` (any object with a ``type`` field; missing fields take their defaults).
AttentionSpec: TypeAlias = "Mapping[str, Any] | SpecLike"


class AttentionSpecError(ValueError):
    """A spec that cannot be built; ``field`` is the spec key at fault ("type", "heads", ...)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def register_attention(name: str, score_cls: type[nn.Module]) -> None:
    """Make ``type: name`` build ``score_cls`` (a class following the protocol of scores.py)."""
    if name in _TYPES:
        raise ValueError(f"attention type {name!r} is already registered")
    _TYPES[name] = score_cls


def _read_spec(spec: AttentionSpec) -> dict[str, Any]:
    """Fields of a mapping or an AttentionConfig-like object, with defaults for missing ones."""
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - set(_SPEC_KEYS), key=str)
        if unknown:
            raise AttentionSpecError(
                f"attention spec has unknown key(s) {unknown}; allowed keys: {list(_SPEC_KEYS)}"
            )
        if "type" not in spec:
            raise AttentionSpecError(f"attention spec {dict(spec)} has no 'type' key", "type")
        fields = {key: spec.get(key) for key in _SPEC_KEYS}
    else:
        if not hasattr(spec, "type"):
            raise AttentionSpecError(
                f"attention spec must be a mapping or a config object with a 'type' field, "
                f"got {type(spec).__name__}"
            )
        fields = {key: getattr(spec, key, None) for key in _SPEC_KEYS}
    if fields["dropout"] is None:
        fields["dropout"] = 0.0
    return fields


def check_spec(
    spec: AttentionSpec,
    query_dim: int | None = None,
    *,
    key: str = "attention",
    width: str = "query_dim",
) -> dict[str, Any]:
    """The fields of ``spec`` once every fact about them holds; raises AttentionSpecError.

    The one check of a spec, for :func:`build_attention` and for the config (which passes the
    slot's ``key``, e.g. ``model.attention.cross``, and the name of the query ``width``). With
    ``query_dim``, multi-head attention needs ``heads`` to divide it.
    """
    fields = _read_spec(spec)
    name, heads = fields["type"], fields["heads"]
    if not isinstance(name, str) or name not in _TYPES:
        close = difflib.get_close_matches(name, list(_TYPES), n=1) if isinstance(name, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise AttentionSpecError(
            f"{key}.type: {name!r} is not an attention type{hint}; choose one of "
            + ", ".join(repr(t) for t in _TYPES),
            "type",
        )
    for field in ("heads", "hidden_dim"):
        value = fields[field]
        valid = value is None or (isinstance(value, int) and not isinstance(value, bool))
        if not valid or (value is not None and value < 1):
            raise AttentionSpecError(
                f"{key}.{field} must be a positive integer or None, got {value!r}", field
            )
    dropout = fields["dropout"]
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
        raise AttentionSpecError(
            f"{key}.dropout must be a number in [0, 1), got {dropout!r}", "dropout"
        )
    if not 0.0 <= dropout < 1.0:
        raise AttentionSpecError(f"{key}.dropout must be in [0, 1), got {dropout}", "dropout")
    if heads is None and name in HEADS_REQUIRED:
        raise AttentionSpecError(
            f"{key}.heads: attention type {name!r} exists only in multi-head form and needs "
            f"heads (for example heads: 4); type 'scaled_dot' is the plain score",
            "heads",
        )
    if fields["hidden_dim"] is not None and not getattr(_TYPES[name], "has_hidden_dim", False):
        raise AttentionSpecError(
            f"{key}: hidden_dim={fields['hidden_dim']} only applies to additive attention, "
            f"not to type {name!r}",
            "hidden_dim",
        )
    if heads is not None and query_dim is not None and query_dim % heads:
        raise AttentionSpecError(
            f"{key}.heads: {heads} does not divide {width} ({query_dim}); allowed: a divisor of it",
            "heads",
        )
    return fields


def build_attention(
    spec: AttentionSpec, query_dim: int, key_dim: int, value_dim: int | None = None
) -> Attention:
    """Build an attention module from a spec, checked by :func:`check_spec`.

    Args:
        spec: mapping ``{"type": T, "heads": h?, "dropout": p?, "hidden_dim": a?}`` (as read
            from YAML) or an ``AttentionConfig``.
        query_dim, key_dim: feature sizes of queries and keys.
        value_dim: feature size of values (default: ``key_dim``).
    """
    value_dim = key_dim if value_dim is None else value_dim
    for arg, dim in (("query_dim", query_dim), ("key_dim", key_dim), ("value_dim", value_dim)):
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"build_attention: {arg} must be a positive integer, got {dim!r}")
    fields = check_spec(spec, query_dim)
    heads = fields["heads"]
    score_dims = (query_dim, key_dim) if heads is None else (query_dim // heads,) * 2
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
