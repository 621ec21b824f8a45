"""The body of ``POST /v1/translate``: parsing, limits, and the errors that name the field.

    {"text": "..." | ["...", ...], "beam": 5, "n_best": 1, "alignments": false,
     "attention": false}

Only `text` is required. Every error is a :class:`RequestError` carrying the HTTP status (400
for a body that is not a JSON object, 413 for a body, a list or a text over the limits, 422 for
a well-formed body with a wrong value) and the field it is about (``text[3]``, ``beam``, ...).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

FIELDS = ("text", "beam", "n_best", "alignments", "attention")


class RequestError(ValueError):
    """A request the server refuses: `status` (400, 404, 405, 413 or 422), `field` (or None)."""

    def __init__(self, status: int, field: str | None, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message

    def body(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        return {"error": self.message, "field": self.field, "status": self.status}


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (options of `seq2seq serve`)."""

    max_texts: int = 64
    max_chars: int = 1000
    max_beam: int = 10
    max_body_bytes: int = 1_000_000


@dataclass(frozen=True)
class TranslateRequest:
    """A checked request: the texts and the search they ask for."""

    texts: list[str]
    beam: int
    n_best: int
    alignments: bool
    attention: bool

    @property
    def key(self) -> tuple[int, int, bool, bool]:
        """Requests with the same key can be translated in one batch."""
        return (self.beam, self.n_best, self.alignments, self.attention)


def parse_json(body: bytes, limits: Limits) -> Any:
    """The JSON value of a request body (413 when too large, 400 when not JSON)."""
    if len(body) > limits.max_body_bytes:
        raise body_too_large(limits)
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
        raise RequestError(400, "body", f"body: invalid JSON ({_short(e)})") from None


def body_too_large(limits: Limits) -> RequestError:
    return RequestError(
        413, "body", f"body: larger than the limit of {limits.max_body_bytes} bytes"
    )


def parse_translate(value: Any, limits: Limits, default_beam: int) -> TranslateRequest:
    """Check a decoded body against the limits; the beam defaults to `default_beam` (capped
    at the limit) and n_best to 1."""
    if not isinstance(value, dict):
        raise RequestError(400, "body", f"body: expected a JSON object, got {_json_type(value)}")
    unknown = [key for key in value if key not in FIELDS]
    if unknown:
        raise RequestError(
            422,
            unknown[0],
            f"{unknown[0]}: unknown field (expected {', '.join(FIELDS)})",
        )
    if "text" not in value:
        raise RequestError(422, "text", "text: required (a string or a list of strings)")
    texts = _texts(value["text"], limits)
    beam = _integer(value, "beam", min(default_beam, limits.max_beam), 1, limits.max_beam)
    n_best = _integer(value, "n_best", 1, 1, None)
    if n_best > beam:
        raise RequestError(422, "n_best", f"n_best: got {n_best}, expected at most beam ({beam})")
    return TranslateRequest(
        texts=texts,
        beam=beam,
        n_best=n_best,
        alignments=_boolean(value, "alignments"),
        attention=_boolean(value, "attention"),
    )


def _texts(value: Any, limits: Limits) -> list[str]:
    single = isinstance(value, str)
    texts = [value] if single else value
    if not isinstance(texts, list):
        raise RequestError(
            422, "text", f"text: expected a string or a list of strings, got {_json_type(value)}"
        )
    if not texts:
        raise RequestError(422, "text", "text: the list is empty")
    if len(texts) > limits.max_texts:
        raise RequestError(
            413, "text", f"text: {len(texts)} texts, more than the limit of {limits.max_texts}"
        )
    for i, text in enumerate(texts):
        name = "text" if single else f"text[{i}]"
        if not isinstance(text, str):
            raise RequestError(422, name, f"{name}: expected a string, got {_json_type(text)}")
        if len(text) > limits.max_chars:
            raise RequestError(
                413,
                name,
                f"{name}: {len(text)} characters, more than the limit of {limits.max_chars}",
            )
    return texts


def _integer(body: dict, name: str, default: int, low: int, high: int | None) -> int:
    value = body.get(name)
    if value is None:
        return default
    expected = f"an integer in {low}..{high}" if high is not None else f"an integer >= {low}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(422, name, f"{name}: expected {expected}, got {_json_type(value)}")
    if value < low or (high is not None and value > high):
        raise RequestError(422, name, f"{name}: got {value}, expected {expected}")
    return value


def _boolean(body: dict, name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise RequestError(422, name, f"{name}: expected true or false, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type (a float with an integer value is a number)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}" if math.isfinite(value) else "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _short(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]
