"""Reading text corpora: plain or gzip files, one sentence per line, UTF-8 checked per line."""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Literal

logger = logging.getLogger(__name__)

_BOM = "\ufeff"


class DataError(ValueError):
    """Bad input data: the message names the file (and line) and what was expected."""


def _strip_newline(line: str) -> str:
    """Drop the line terminator ("\\n" or "\\r\\n") and nothing else."""
    if line.endswith("\n"):
        line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
    return line


def _decode(raw: bytes, name: str, lineno: int, replace: bool = False) -> str:
    """Decode one line of bytes; a decoding error names the file, the line and the bytes.

    With `replace`, invalid bytes become U+FFFD and a warning names the line instead.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if replace:
            logger.warning("%s, line %d: invalid UTF-8 replaced by U+FFFD", name, lineno)
            text = raw.decode("utf-8", errors="replace")
        else:
            bad = raw[max(0, e.start - 10) : e.end + 10]
            raise DataError(
                f"{name}, line {lineno}: invalid UTF-8 (byte {e.start + 1} of the line, near"
                f" {bad!r}); expected UTF-8 text"
            ) from None
    if lineno == 1 and text.startswith(_BOM):
        text = text[1:]
    return _strip_newline(text)


def _open_binary(path: Path) -> IO[bytes]:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a text file (plain or .gz)")
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """All lines of a plain or gzip-compressed UTF-8 file, without their line terminators.

    Raises DataError for a missing file, an empty file, a corrupt gzip stream or a line that is
    not valid UTF-8 (the message gives the file and the 1-based line number).
    """
    path = Path(path)
    lines: list[str] = []
    with _open_binary(path) as f:
        try:
            for lineno, raw in enumerate(f, start=1):
                lines.append(_decode(raw, str(path), lineno))
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(
                f"{path}: cannot read after line {len(lines)} ({e}); expected a plain text file"
                " or a valid .gz file"
            ) from None
    if not lines:
        raise DataError(f"{path}: file is empty; expected one sentence per line")
    return lines


def read_parallel(
    src_path: str | os.PathLike[str], tgt_path: str | os.PathLike[str]
) -> tuple[list[str], list[str]]:
    """Both sides of a parallel corpus; they must have the same number of lines."""
    src_lines = read_lines(src_path)
    tgt_lines = read_lines(tgt_path)
    if len(src_lines) != len(tgt_lines):
        raise DataError(
            f"parallel files differ in length: {src_path} has {len(src_lines)} lines but"
            f" {tgt_path} has {len(tgt_lines)}; expected the same number of lines (one sentence"
            " pair per line)"
        )
    return src_lines, tgt_lines


def iter_lines(
    file_obj: IO[bytes] | IO[str] | Iterable[bytes],
    *,
    errors: Literal["strict", "replace"] = "strict",
    name: str | None = None,
) -> Iterator[str]:
    """Stream the lines of a file object (e.g. `sys.stdin`) without their line terminators.

    Binary streams are decoded here line by line, so an invalid line is reported with its
    1-based number: `errors="strict"` raises DataError, `errors="replace"` substitutes U+FFFD
    and logs a warning naming the line. A text stream (one with a `.buffer`, such as stdin) is
    read through its binary buffer; other text iterables are passed through as they are.
    """
    if errors not in ("strict", "replace"):
        raise ValueError(f"errors: expected 'strict' or 'replace', got {errors!r}")
    name = name or str(getattr(file_obj, "name", "<input>"))
    source = getattr(file_obj, "buffer", file_obj)
    for lineno, raw in enumerate(source, start=1):
        if isinstance(raw, str):
            yield _strip_newline(raw)
            continue
        yield _decode(raw, name, lineno, replace=errors == "replace")
