"""Subcommands of the ``seq2seq`` command line, one module each (see ``seq2seq.cli``)."""

from __future__ import annotations

import argparse


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


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value!r}")
    return number
