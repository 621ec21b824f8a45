"""Strict construction of nested dataclasses from plain (YAML) data.

The dataclasses in :mod:`seq2seq.config` are the schema. This module reads their type hints
generically (nested dataclasses, ``X | None``, ``Literal[...]``, ``list[X]``, ``bool``, ``int``,
``float``, ``str``) plus the bounds declared with :func:`option`, and refuses anything that does
not fit with a message naming the dotted key path, the value received and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

import yaml

_NoneType = type(None)
# YAML 1.1 reads "7e-4" (no dot, unsigned exponent) as a string; float fields accept it anyway.
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_BOUND_SYMBOLS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


class ConfigError(ValueError):
    """An invalid configuration. ``key`` is the dotted key path the message is about, if any."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def bounds(
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> dict[str, Any]:
    """Field metadata: the value (each item of a list; None is exempt) must lie in these bounds."""
    limits = {"ge": ge, "gt": gt, "le": le, "lt": lt}
    return {"bounds": {name: v for name, v in limits.items() if v is not None}}


def option(default: Any, **limits: float) -> Any:
    """A dataclass field with an immutable ``default`` and :func:`bounds` ``limits``."""
    return dataclasses.field(default=default, metadata=bounds(**limits))


def join(prefix: str, name: object) -> str:
    """Dotted key path ``prefix.name`` (just ``name`` at the top level)."""
    return f"{prefix}.{name}" if prefix else str(name)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _union_args(hint: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(hint) in (Union, types.UnionType):
        return typing.get_args(hint)
    return None


def _section(hint: Any) -> type | None:
    """The dataclass behind ``hint`` (also through ``X | None``), or None for a plain value."""
    args = _union_args(hint)
    if args is not None:
        inner = [a for a in args if a is not _NoneType]
        hint = inner[0] if len(inner) == 1 else None
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def describe(hint: Any) -> str:
    """Human-readable name of a schema type, for error messages."""
    args = _union_args(hint)
    if args is not None:
        return " or ".join("null" if a is _NoneType else describe(a) for a in args)
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(c) for c in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        return f"a list of {describe(typing.get_args(hint)[0])}"
    if dataclasses.is_dataclass(hint):
        names = ", ".join(f.name for f in dataclasses.fields(hint))
        return f"a mapping with keys {names}"
    return getattr(hint, "__name__", str(hint))


def accepts_text(hint: Any) -> bool:
    """True when ``hint`` is ``str`` or ``str | None`` (free text, not a choice)."""
    args = _union_args(hint)
    return hint is str or (args is not None and str in args)


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _paths(cls: type, prefix: str) -> list[str]:
    """Every dotted key path below the dataclass ``cls``."""
    out = []
    for name, hint in _hints(cls).items():
        path = join(prefix, name)
        out.append(path)
        section = _section(hint)
        if section is not None:
            out.extend(_paths(section, path))
    return out


def unknown_key(cls: type, prefix: str, name: object) -> ConfigError:
    """Error for key ``name`` that the dataclass ``cls`` (at ``prefix``) does not have."""
    path = join(prefix, name)
    names = [f.name for f in dataclasses.fields(cls)]
    close = difflib.get_close_matches(str(name), names, n=1)
    if close:
        hint = f"did you mean {join(prefix, close[0])!r}?"
    else:
        # A key written at the wrong level: look for it (or a near spelling) deeper down.
        below = [p for p in _paths(cls, prefix) if "." in p.removeprefix(prefix + ".")]
        leaves = {p: p.rsplit(".", 1)[-1] for p in below}
        near = set(difflib.get_close_matches(str(name), set(leaves.values()), n=3))
        found = [p for p, leaf in leaves.items() if leaf in near]
        found = sorted(found, key=lambda p: p.count("."))[:3]  # shallowest first
        if found:
            hint = "did you mean " + " or ".join(repr(p) for p in found) + "?"
        else:
            where = f" under {prefix!r}" if prefix else ""
            hint = f"valid keys{where}: {', '.join(names)}"
    return ConfigError(f"unknown key {path!r}; {hint}", key=path)


def resolve(cls: type, dotted: str) -> Any:
    """The type hint of the field at key path ``dotted`` below ``cls``; ConfigError if none."""
    hint: Any = cls
    prefix = ""
    for name in dotted.split("."):
        section = _section(hint)
        if section is None:
            raise ConfigError(
                f"{prefix!r} is a value ({describe(hint)}), not a section with keys; "
                f"cannot set {dotted!r}",
                key=prefix,
            )
        if name not in _hints(section):
            raise unknown_key(section, prefix, name)
        hint = _hints(section)[name]
        prefix = join(prefix, name)
    return hint


def build(cls: type, data: Any, key: str = "") -> Any:
    """Instantiate dataclass ``cls`` from mapping ``data``, checking every key, type and bound."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{key or 'config'}: expected {describe(cls)}, got {_show(data)}", key=key or None
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in data:
        if name not in fields:
            raise unknown_key(cls, key, name)
    hints = _hints(cls)
    kwargs = {}
    for name, field in fields.items():
        path = join(key, name)
        if name not in data:
            no_default = dataclasses.MISSING
            if field.default is no_default and field.default_factory is no_default:
                raise ConfigError(
                    f"missing required key {path!r} (expected {describe(hints[name])})", key=path
                )
            continue
        value = convert(data[name], hints[name], path)
        check_bounds(value, field.metadata.get("bounds", {}), path)
        kwargs[name] = value
    return cls(**kwargs)


def convert(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked (and, for int -> float, converted) against type ``hint``."""
    args = _union_args(hint)
    if args is not None:
        if value is None and _NoneType in args:
            return None
        inner = [a for a in args if a is not _NoneType]
        if len(inner) != 1:
            raise TypeError(f"schema type {hint!r} at {key!r} is not supported")
        return _convert_one(value, inner[0], key, expected=describe(hint))
    return _convert_one(value, hint, key, expected=describe(hint))


def _convert_one(value: Any, hint: Any, key: str, expected: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key)
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if any(type(value) is type(c) and value == c for c in choices):
            return value
        allowed = ", ".join(repr(c) for c in choices)
        message = f"{key}: {value!r} is not allowed; choose one of {allowed}"
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        raise ConfigError(message + (f" (did you mean {close[0]!r}?)" if close else ""), key)
    if origin is list:
        if isinstance(value, list):
            (item,) = typing.get_args(hint)
            return [convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return _finite(value, key)
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            return _finite(value, key)
    elif hint is str:
        if isinstance(value, str):
            return value
        expected += " (quote the value if it is meant as text)"
    else:
        raise TypeError(f"schema type {hint!r} at {key!r} is not supported")
    raise ConfigError(f"{key}: expected {expected}, got {_show(value)}", key)


def _finite(value: float | str, key: str) -> float:
    """``float(value)``, refusing NaN, infinities and numbers too large for a float."""
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"{key}: {value!r} is not a finite number; expected a finite float", key)
    return number


def bounds_text(bounds: Mapping[str, float]) -> str:
    """``{"ge": 0, "lt": 1}`` -> ``"0 <= value < 1"``; ``{"ge": 16}`` -> ``"value >= 16"``."""
    low = [(k, v) for k, v in bounds.items() if k in ("ge", "gt")]
    high = [(k, v) for k, v in bounds.items() if k in ("le", "lt")]
    if low and high:
        (lk, lv), (hk, hv) = low[0], high[0]
        return f"{lv} {'<=' if lk == 'ge' else '<'} value {_BOUND_SYMBOLS[hk]} {hv}"
    return " and ".join(f"value {_BOUND_SYMBOLS[k]} {v}" for k, v in bounds.items())


def check_bounds(value: Any, bounds: Mapping[str, float], key: str) -> None:
    """Raise ConfigError if ``value`` (or any item of a list value) lies outside ``bounds``."""
    if not bounds or value is None:
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_bounds(item, bounds, f"{key}[{i}]")
        return
    ok = (
        ("ge" not in bounds or value >= bounds["ge"])
        and ("gt" not in bounds or value > bounds["gt"])
        and ("le" not in bounds or value <= bounds["le"])
        and ("lt" not in bounds or value < bounds["lt"])
    )
    if not ok:
        raise ConfigError(
            f"{key}: {value!r} is out of range; allowed: {bounds_text(bounds)}", key=key
        )


def set_override(cls: type, data: dict[str, Any], item: str) -> str:
    """Apply one ``a.b.c=value`` override (value read as YAML) to raw ``data``; return the key.

    The key must exist in the schema ``cls``. Free-text fields keep the text as written, so
    ``data.src_lang=no`` stays the string "no" rather than YAML's False.
    """
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {item}: expected KEY=VALUE, e.g. train.max_steps=1000")
    try:
        hint = resolve(cls, key)
        value = yaml.safe_load(text)
    except ConfigError as exc:
        raise ConfigError(f"--set {item}: {exc}", key=exc.key) from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: e.g. a date such as 2024-13-45
        problem = getattr(exc, "problem", None) or exc
        raise ConfigError(f"--set {item}: cannot read {text!r} as YAML: {problem}") from None
    if value is not None and not isinstance(value, str) and accepts_text(hint):
        value = text.strip()
    *parents, last = key.split(".")
    node = data
    for i, name in enumerate(parents):
        if node.get(name) is None:
            node[name] = {}
        if not isinstance(node[name], dict):
            section = ".".join(parents[: i + 1])
            raise ConfigError(f"--set {item}: {section!r} is not a mapping in the config")
        node = node[name]
    node[last] = value
    return key
