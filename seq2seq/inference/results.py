"""What the Python API returns, and the checks of what it is given."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from seq2seq.evaluation.word_alignment import Link
from seq2seq.inference.decode import DecodeError
from seq2seq.viz.example import AttentionExample

__all__ = ["Translation", "check_texts", "zip_equal"]


@dataclass
class Translation:
    """The translation of one input text.

    text: the best hypothesis, detokenized ("" for an empty input).
    score: its length-normalised log-probability (GNMT penalty; the plain log-probability
        under greedy decoding); log_prob: its log-probability, EOS included.
    tokens: its target subword ids (no BOS/EOS); pieces: the same as subword strings.
    nbest: up to n_best (text, score) pairs, best first (the best is (text, score)).
    alignment: (source word, target word) links, 0-based, when asked for.
    attention: its attention (every slot, layer and head, labelled with the pieces) when
        asked for.
    """

    text: str
    score: float = 0.0
    log_prob: float = 0.0
    tokens: list[int] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    nbest: list[tuple[str, float]] = field(default_factory=list)
    alignment: list[Link] | None = None
    attention: AttentionExample | None = None


def check_texts(texts: str | Iterable[str], name: str) -> list[str]:
    """`texts` as a list of strings; a TypeError names the first item that is not one."""
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, bytes | bytearray | Mapping) or not isinstance(texts, Iterable):
        raise TypeError(
            f"{name}: expected a string or a list of strings, got {type(texts).__name__}"
        )
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}]: expected a string, got {type(text).__name__}")
    return texts


def zip_equal(lines: Iterable[str], prefixes: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(line, prefix) pairs; a DecodeError when one side runs out before the other."""
    for count, (line, prefix) in enumerate(itertools.zip_longest(lines, prefixes)):
        if line is None or prefix is None:
            more = "prefixes" if line is None else "input lines"
            raise DecodeError(
                f"prefix: the input and the prefixes differ in length: after {count} "
                f"pairs there are more {more}"
            )
        yield line, prefix
