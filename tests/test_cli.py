"""The command line: entry points, version, help and how errors are reported."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest

import seq2seq
from seq2seq import cli
from seq2seq.commands import add_config_args
from seq2seq.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_python_m_seq2seq_help_lists_every_command():
    result = subprocess.run(
        [sys.executable, "-m", "seq2seq", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: seq2seq")
    for name in cli.COMMANDS:
        assert name in result.stdout


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"seq2seq {seq2seq.__version__}"


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "usage: seq2seq" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys):
    assert cli.main(["no-such-command"]) == 2
    assert "invalid choice: 'no-such-command'" in capsys.readouterr().err


def _raise(kind: str) -> None:
    if kind == "config":
        raise ConfigError("config.yaml:3: unknown key 'model.atention'")
    if kind == "missing":
        raise FileNotFoundError(2, "No such file or directory", "data/train.en")
    if kind == "interrupt":
        raise KeyboardInterrupt
    if kind == "bug":
        raise RuntimeError("a genuine bug")
    if kind == "plain-value":
        raise ValueError("not one of ours")
    if kind == "terminate":
        # without a handler of its own, SIGTERM would end the test process: check first
        assert callable(signal.getsignal(signal.SIGTERM)), "no SIGTERM handler"
        try:
            signal.raise_signal(signal.SIGTERM)
            raise AssertionError("SIGTERM did not interrupt the command")
        finally:
            UNWOUND.append(kind)  # finally blocks (and context managers) run on the way out


UNWOUND: list[str] = []


@pytest.fixture
def fake_command(monkeypatch):
    """A `boom` subcommand that records its arguments and raises what --kind asks for."""
    seen: dict[str, argparse.Namespace] = {}

    def add_parser(subparsers) -> None:
        parser = subparsers.add_parser("boom", help="test command")
        parser.add_argument("--kind", default="none")
        add_config_args(parser)
        parser.set_defaults(func=run)

    def run(args: argparse.Namespace) -> int:
        seen["args"] = args
        _raise(args.kind)
        return 3

    module = types.ModuleType("seq2seq.commands.boom")
    module.add_parser, module.run = add_parser, run
    monkeypatch.setitem(cli.COMMANDS, "boom", module)
    return seen


def test_command_exit_code_and_config_overrides(fake_command):
    assert cli.main(["boom", "--set", "train.max_steps=5", "--set", "model.arch=rnn"]) == 3
    assert fake_command["args"].overrides == ["train.max_steps=5", "model.arch=rnn"]
    assert cli.main(["boom"]) == 3
    assert fake_command["args"].overrides == []


@pytest.mark.parametrize(
    ("kind", "code", "message"),
    [
        ("config", 2, "seq2seq boom: error: config.yaml:3: unknown key 'model.atention'\n"),
        ("missing", 2, "seq2seq boom: error: data/train.en: No such file or directory\n"),
        ("interrupt", 130, "seq2seq boom: interrupted\n"),
    ],
)
def test_user_errors_are_one_line_on_stderr(fake_command, capsys, kind, code, message):
    assert cli.main(["boom", "--kind", kind]) == code
    captured = capsys.readouterr()
    assert captured.err == message
    assert captured.out == ""


@pytest.mark.parametrize(("kind", "error"), [("bug", RuntimeError), ("plain-value", ValueError)])
def test_other_errors_keep_their_traceback(fake_command, kind, error):
    with pytest.raises(error):
        cli.main(["boom", "--kind", kind])


def test_sigterm_unwinds_the_command_and_exits_143(fake_command, capsys):
    before = signal.getsignal(signal.SIGTERM)
    UNWOUND.clear()
    assert cli.main(["boom", "--kind", "terminate"]) == 143
    assert capsys.readouterr().err == "seq2seq boom: terminated (SIGTERM)\n"
    assert UNWOUND == ["terminate"]
    assert signal.getsignal(signal.SIGTERM) is before  # restored after the command
