"""Atomic file output: every file the toolkit writes goes through here.

The data is written to a temporary file beside the target (same directory, so the same file
system), flushed to disk, and renamed over the target with ``os.replace``, which is atomic; the
directory is then flushed too, so that the rename itself survives a power loss. A reader, or a
crash or ``kill -9`` part-way, therefore sees either the old file or the complete new one, never
half of it; on an error (or an exception such as ``KeyboardInterrupt``) the temporary file is
removed and the target is left as it was. Temporary files are named ``.<name>.<random>.tmp``
and are created like ``open()`` creates files (permissions from the process umask). Errors
about the temporary file name the target instead, the file the caller asked for.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_open", "atomic_path", "fsync_dir", "write_atomic", "write_with"]


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush the directory ``path`` to disk: makes renames and new entries in it durable."""
    if os.name == "nt":  # no directory handles to flush; NTFS journals renames itself
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:
        # some file systems (e.g. certain network and FUSE mounts) cannot flush a directory
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _naming_target(exc: OSError, tmp: Path, path: Path) -> OSError | None:
    """``exc`` re-made to name ``path`` when it names the temporary file ``tmp``, else None."""
    if exc.errno is None or exc.filename is None or os.fspath(exc.filename) != os.fspath(tmp):
        return None
    return OSError(exc.errno, exc.strerror, os.fspath(path))  # the errno's own subclass


@contextlib.contextmanager
def _errors_name(path: Path, tmp: Path) -> Iterator[None]:
    try:
        yield
    except OSError as e:
        renamed = _naming_target(e, tmp, path)
        if renamed is None:
            raise
        raise renamed from e


def _pause_for_tests(path: Path) -> None:
    """The crash tests' hook: with SEQ2SEQ_PAUSE_BEFORE_REPLACE naming this file, say so on
    stderr and wait, so that a kill lands between the write and the rename for certain."""
    if os.environ.get("SEQ2SEQ_PAUSE_BEFORE_REPLACE") == path.name:
        print(f"paused before replacing {path.name}", file=sys.stderr, flush=True)
        time.sleep(3600)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, parents: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; when the block completes, the file written
    there is synced to disk and renamed to ``path``. On an exception nothing is renamed and the
    temporary file is removed.

    ``parents=True`` creates missing parent directories first. An ``OSError`` about the
    temporary file (in the block too) is raised again naming ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(21, "is a directory, expected an output file", str(path))
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with _errors_name(path, tmp):
            with open(tmp, "xb"):  # created now, with the umask's permissions, never reused
                pass
            yield tmp
            _fsync_file(tmp)
            _pause_for_tests(path)
            os.replace(tmp, path)
            fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "w", *, parents: bool = False, **kwargs: Any
) -> Iterator[IO[Any]]:
    """``open(path, mode)`` for writing that replaces ``path`` only when the block completes.

    ``mode`` is ``"w"`` or ``"wb"``; text mode defaults to UTF-8 with ``"\\n"`` line endings.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', got {mode!r}")
    if mode == "w":
        kwargs.setdefault("encoding", "utf-8")
        kwargs.setdefault("newline", "\n")
    with atomic_path(path, parents=parents) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def write_atomic(data: bytes | str, path: str | os.PathLike[str], *, parents: bool = False) -> Path:
    """Write ``data`` (bytes, or str as UTF-8) to ``path`` atomically; returns the path."""
    with atomic_open(path, "wb", parents=parents) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def write_with(
    path: str | os.PathLike[str], write: Callable[[Path], None], *, parents: bool = False
) -> Path:
    """Call ``write(tmp_path)`` (e.g. a plotting library's ``savefig``) on a temporary path
    beside ``path``, then move the result into place atomically; returns the path."""
    with atomic_path(path, parents=parents) as tmp:
        write(tmp)
    return Path(path)
