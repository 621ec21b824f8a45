"""Reading text corpora: plain or gzip files, one sentence per line, UTF-8 checked per line."""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

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


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a text file (plain or .gz)")


BLOCK_BYTES = 1 << 22  # bytes of text decoded at a time by TextStream


class _HashingReader:
    """A binary file whose bytes pass through a hash as they are read (gzip reads through it)."""

    def __init__(self, raw: IO[bytes], digest: Any) -> None:
        self.raw, self.digest = raw, digest

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data


class TextStream:
    """The lines of a plain or gzip UTF-8 file, read block by block (never the whole file).

    ``for lines in TextStream(path)`` yields lists of lines without their terminators, about
    ``block_bytes`` of text at a time, the same lines as ``read_lines``. A line that is not
    UTF-8 raises DataError with the file and its 1-based line number, as does an empty or
    corrupt file. After a complete pass, ``len(stream)`` is the number of lines and ``sha256``
    the digest of the file's bytes as stored (the compressed bytes of a .gz file).
    ``raw_blocks()`` gives the same blocks undecoded, and ``take(indices)`` the lines at some
    line numbers (another pass), which makes a stream a ``SampleSource`` for the tokenizer.
    """

    def __init__(self, path: str | os.PathLike[str], *, block_bytes: int = BLOCK_BYTES) -> None:
        self.path = Path(path)
        self.block_bytes = block_bytes
        self.lines = 0  # decoded so far by iteration
        self.sha256: str | None = None
        self._read_lines = 0  # line terminators read so far

    def __len__(self) -> int:
        if self.sha256 is None:
            raise RuntimeError(f"{self.path}: lines are counted by a complete pass first")
        return self.lines

    def raw_blocks(self) -> Iterator[bytes]:
        """Blocks of whole lines as stored (UTF-8 not checked), each ending with a newline (one
        is added to a last line without it)."""
        digest = hashlib.sha256()
        self.sha256, self._read_lines = None, 0
        _check_file(self.path)
        with open(self.path, "rb") as raw:
            reader = _HashingReader(raw, digest)
            stream: Any = (
                gzip.GzipFile(fileobj=reader, mode="rb") if self.path.suffix == ".gz" else reader
            )
            carry = b""
            while data := self._read(stream):
                data = carry + data
                cut = data.rfind(b"\n") + 1
                carry = data[cut:]
                if cut:
                    self._read_lines += data.count(b"\n", 0, cut)
                    yield data[:cut]
            if carry:
                yield carry + b"\n"
        self.sha256 = digest.hexdigest()

    def __iter__(self) -> Iterator[list[str]]:
        self.lines = 0
        for block in self.raw_blocks():
            yield self._split(block[:-1])
        if self.lines == 0:
            raise DataError(f"{self.path}: file is empty; expected one sentence per line")

    def take(self, indices: Any) -> list[str]:
        """The lines at the increasing line numbers ``indices`` (0-based), in one more pass."""
        indices = list(indices)
        out: list[str] = []
        start = position = 0
        for block in TextStream(self.path, block_bytes=self.block_bytes):
            end = start + len(block)
            while position < len(indices) and indices[position] < end:
                out.append(block[indices[position] - start])
                position += 1
            if position == len(indices):
                break
            start = end
        return out

    def _read(self, stream: Any) -> bytes:
        try:
            return stream.read(self.block_bytes)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(
                f"{self.path}: cannot read after line {self._read_lines} ({e}); expected a plain"
                " text file or a valid .gz file"
            ) from None

    def _split(self, data: bytes) -> list[str]:
        """Complete lines (``data`` without its last terminator) -> str lines, counted."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            lineno = self.lines + data.count(b"\n", 0, e.start) + 1
            start, end = data.rfind(b"\n", 0, e.start) + 1, data.find(b"\n", e.start)
            _decode(data[start : end if end >= 0 else len(data)], str(self.path), lineno)
            raise  # not reached: _decode raised DataError for this line
        lines = split_lines(text, first=self.lines == 0)
        self.lines += len(lines)
        return lines


def split_lines(text: str, *, first: bool) -> list[str]:
    """Lines of decoded text without a final terminator: split at "\\n", a "\\r" before it
    dropped, and a byte-order mark dropped from the file's ``first`` line."""
    lines = text.split("\n")
    if "\r" in text:
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if first and lines[0].startswith(_BOM):
        lines[0] = lines[0][1:]
    return lines


def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """All lines of a plain or gzip-compressed UTF-8 file, without their line terminators.

    Raises DataError for a missing file, an empty file, a corrupt gzip stream or a line that is
    not valid UTF-8 (the message gives the file and the 1-based line number).
    """
    return [line for block in TextStream(path) for line in block]


def count_lines(path: str | os.PathLike[str]) -> int:
    """Lines of a file, each checked as ``read_lines`` does, without keeping them."""
    stream = TextStream(path)
    for _ in stream:
        pass
    return stream.lines


def read_parallel(
    src_path: str | os.PathLike[str], tgt_path: str | os.PathLike[str]
) -> tuple[list[str], list[str]]:
    """Both sides of a parallel corpus; they must have the same number of lines."""
    src_lines = read_lines(src_path)
    tgt_lines = read_lines(tgt_path)
    check_same_length(src_path, len(src_lines), tgt_path, len(tgt_lines))
    return src_lines, tgt_lines


def check_same_length(src_path: object, src_lines: int, tgt_path: object, tgt_lines: int) -> None:
    """Raises DataError unless both sides of a parallel corpus have as many lines."""
    if src_lines != tgt_lines:
        raise DataError(
            f"parallel files differ in length: {src_path} has {src_lines} lines but"
            f" {tgt_path} has {tgt_lines}; expected the same number of lines (one sentence"
            " pair per line)"
        )


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
