"""Subcommands of the ``seq2seq`` command line, one module each (see ``seq2seq.cli``).

Shared here: the ``--set`` option, argparse types for numbers (finite, within their range) and
:func:`check_outputs`, which every command that writes files calls before reading or writing
anything, so that no output can replace one of the command's inputs or another output.
"""

from __future__ import annotations

import argparse
import math
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

#: A command's file argument: a path, an open stream (stdin, stdout), or None (not given).
FileArg = str | os.PathLike[str] | IO[Any] | None


class OutputError(ValueError):
    """An output file that would replace an input, or another output, of the same command."""


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--set KEY=VALUE`` (repeatable) to a command that reads a config; fills ``overrides``.

    Pass ``args.overrides`` to ``seq2seq.config.load_config(path, args.overrides)``.
    """
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, read as YAML (repeatable), "
        "e.g. --set train.max_steps=1000 --set model.attention.cross.type=additive",
    )


def add_run_config_args(parser: argparse.ArgumentParser) -> None:
    """``CONFIG.yaml``, ``--run-dir DIR`` and ``--set``: the arguments of a command that works
    on a config's run directory (see :func:`run_dir_of`)."""
    parser.add_argument("config", metavar="CONFIG.yaml", help="the config file (see configs/)")
    parser.add_argument(
        "--run-dir", metavar="DIR", help="output directory (default runs/<config stem>)"
    )
    add_config_args(parser)


def run_dir_of(args: argparse.Namespace) -> Path:
    """``--run-dir``, or ``runs/<config stem>``."""
    return Path(args.run_dir) if args.run_dir else Path("runs") / Path(args.config).stem


def number_in(
    kind: type[int] | type[float] = float,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
) -> Callable[[str], Any]:
    """argparse type: a finite number of ``kind`` within the bounds (``nan``, ``inf`` refused).

    ``number_in(float, ge=0, le=10)`` accepts 0 <= x <= 10; the error states the range.
    """
    bounds = [f">= {ge:g}" if ge is not None else "", f"> {gt:g}" if gt is not None else ""]
    bounds.append(f"<= {le:g}" if le is not None else "")
    expected = f"{'an integer' if kind is int else 'a finite number'} " + " and ".join(
        b for b in bounds if b
    )

    def parse(value: str) -> Any:
        try:
            number = kind(value)
        except ValueError:
            number = None
        if (
            number is None
            or (kind is float and not math.isfinite(number))  # an int is always finite
            or (ge is not None and not number >= ge)
            or (gt is not None and not number > gt)
            or (le is not None and not number <= le)
        ):
            raise argparse.ArgumentTypeError(f"expected {expected.strip()}, got {value!r}")
        return number

    parse.__name__ = f"{kind.__name__}_in_range"
    return parse


#: argparse type: an integer >= 1.
positive_int = number_in(int, ge=1)


def check_outputs(
    outputs: Sequence[tuple[str, FileArg]], inputs: Sequence[tuple[str, FileArg]] = ()
) -> None:
    """Raises :class:`OutputError` when an output is the same file as an input or an earlier
    output; call it before anything is read or written.

    Each entry is ``(label, file)``: the label names the file in the message (``"--output"``,
    ``"the checkpoint"``), the file is a path, an open stream (``sys.stdin``: compared through
    its descriptor, e.g. a redirected ``< a.en``) or None (not given, ignored). Existing files
    are the same when they are the same regular file (hard and symbolic links included, as
    ``os.path.samefile``); terminals, pipes and ``/dev/null`` never clash; files yet to be
    written are compared by resolved path.
    """
    seen: list[tuple[object, str, str, str]] = []  # (identity, label, name, "input"/"output")
    for role, entries in (("input", inputs), ("output", outputs)):
        for label, target in entries:
            if target is None:
                continue
            identity, name = _identity(target), _display(target)
            if identity is None:
                continue
            if role == "output":
                for other, other_label, other_name, other_role in seen:
                    if other == identity:
                        raise OutputError(
                            f"{label}{name} is the same file as {other_label}{other_name}: "
                            f"writing it would replace that {other_role}; choose another file"
                        )
            seen.append((identity, label, name, role))


def _display(target: FileArg) -> str:
    """The path after a space, or nothing for a stream (its label says which one)."""
    return f" {os.fspath(target)}" if isinstance(target, str | os.PathLike) else ""


def _identity(target: FileArg) -> object:
    """(device, inode) of an existing regular file, the resolved path of a missing one, None
    for anything that is not a regular file (a terminal, a pipe, /dev/null, a directory)."""
    if isinstance(target, str | os.PathLike):
        try:
            info = os.stat(target)
        except OSError:  # not there (yet), or "missing/../a.en": resolve it first
            resolved = os.path.realpath(target)
            try:
                info = os.stat(resolved)
            except OSError:
                return resolved  # the file a write would create
    else:
        try:
            info = os.fstat(target.fileno())  # type: ignore[union-attr]
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
            return None  # a stream without a descriptor (e.g. in-memory)
    return (info.st_dev, info.st_ino) if stat.S_ISREG(info.st_mode) else None


def model_inputs(
    run: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> list[tuple[str, Path]]:
    """The files loading ``RUN_DIR|CHECKPOINT`` (or several) reads, labelled for
    :func:`check_outputs`: the checkpoint and the subword model(s) beside it, and the other
    files of its run directory (config.yaml, curves.png, metrics.jsonl, train.log, the other
    checkpoints), which an output must not replace either."""
    from seq2seq.checkpoint import find_checkpoint
    from seq2seq.data.tokenizer import JOINT_MODEL, SRC_MODEL, TGT_MODEL
    from seq2seq.training.rundir import run_entries

    if not isinstance(run, str | os.PathLike):
        return [entry for one in run for entry in model_inputs(one)]
    checkpoint = find_checkpoint(run)
    files = [("the checkpoint", checkpoint)]
    for name in (JOINT_MODEL, SRC_MODEL, TGT_MODEL):
        if (checkpoint.parent / name).is_file():
            files.append(("the subword model", checkpoint.parent / name))
    for path in run_entries(checkpoint.parent):
        if path.is_file() and not path.is_symlink() and path != checkpoint:
            files.append((f"the run's {path.name}", path))
    return files
