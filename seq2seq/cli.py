"""The ``seq2seq`` command line (also ``python -m seq2seq``).

Each subcommand lives in ``seq2seq/commands/<name>.py``, which provides ``add_parser(subparsers)``
(registers the subparser and sets ``func``) and ``run(args) -> int``. A command is added by
importing its module below and giving it an entry in ``COMMANDS``.

Exit codes: 0 success, 2 bad input or usage (one line on stderr naming the option or file),
130 Ctrl-C, 143 SIGTERM. Both signals unwind the command like an exception, so temporary files
of unfinished outputs are removed and the files they would replace are left as they were.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from types import ModuleType

from seq2seq import __version__
from seq2seq.commands import (
    average,
    compare,
    evaluate,
    export,
    plot,
    prepare,
    score,
    serve,
    train,
    translate,
)
from seq2seq.runtime.allocator import retain_freed_memory

#: Command name -> its module, in the order ``seq2seq --help`` lists them.
COMMANDS: dict[str, ModuleType] = {
    "prepare": prepare,
    "train": train,
    "translate": translate,
    "evaluate": evaluate,
    "plot": plot,
    "score": score,
    "compare": compare,
    "average": average,
    "export": export,
    "serve": serve,
}

#: Errors caused by the user's input (files, paths): reported as one line, not a traceback.
_USER_OS_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM (like KeyboardInterrupt on SIGINT), so that the
    command unwinds: ``finally`` blocks and context managers clean up, then exit code 143."""


def _raise_terminated(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup
    raise Terminated(signum)


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` inside the block (main thread only; restored after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command of ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="seq2seq",
        description="Attention-centred neural machine translation: train, translate, "
        "evaluate and look at attention.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for module in COMMANDS.values():
        module.add_parser(subparsers)
    return parser


def _is_user_error(exc: BaseException) -> bool:
    """Input errors the package defines (ConfigError, DataError, ...) and file errors."""
    if isinstance(exc, _USER_OS_ERRORS):
        return True
    package = type(exc).__module__.split(".")[0]
    return isinstance(exc, ValueError) and package == "seq2seq"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    prog = f"seq2seq {args.command}"
    try:
        retain_freed_memory()
        with _sigterm_raises():
            code = args.func(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"{prog}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except BrokenPipeError:
        # The reader went away (``seq2seq translate ... | head``): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as exc:
        if getattr(exc, "quiet", False):  # said by another process (rank 0 of a torchrun job)
            return 2
        if not _is_user_error(exc):
            raise
        print(f"{prog}: error: {_message(exc)}", file=sys.stderr)
        return 2
    return 0 if code is None else int(code)


def _message(exc: Exception) -> str:
    """``exc`` as one line; OS errors as "<file>: <reason>" rather than "[Errno 2] ..."."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)
