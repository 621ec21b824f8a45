"""No command destroys a file it was not asked to write: outputs that are inputs, `average
--out` on a file of the run, non-finite numbers, and SIGTERM part-way (no temporary file left)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seq2seq.checkpoint import load_checkpoint
from seq2seq.cli import main
from seq2seq.commands import OutputError, check_outputs

ROOT = Path(__file__).resolve().parents[1]


def _run_factory():
    path = Path(__file__).parent / "training" / "run_factory.py"
    spec = importlib.util.spec_from_file_location("run_factory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny trained run that kept step_4.pt and step_6.pt."""
    return _run_factory().make_tiny_run(
        tmp_path_factory.mktemp("outputs"),
        overrides=["train.keep_checkpoints=2", "train.validate_every=2"],
    )


def _snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` with its bytes (to show that nothing changed)."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _fails(args: list[str], capsys, *words: str) -> str:
    """Runs the command line, which must fail with exit code 2 and name all of ``words``."""
    assert main(args) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err
    return err


# --- the shared check -----------------------------------------------------------------------


def test_same_file_by_path_link_and_resolution(tmp_path):
    a = tmp_path / "a.en"
    a.write_text("one\n")
    os.link(a, tmp_path / "hard.en")
    (tmp_path / "soft.en").symlink_to(a)
    for same in (a, tmp_path / "hard.en", tmp_path / "soft.en", tmp_path / "x" / ".." / "a.en"):
        with pytest.raises(OutputError, match=r"--output .* is the same file as --input"):
            check_outputs([("--output", same)], [("--input", a)])
    # two outputs that do not exist yet
    with pytest.raises(OutputError, match=r"--alignments .* same file as --output"):
        check_outputs([("--output", tmp_path / "new"), ("--alignments", tmp_path / "./new")])
    check_outputs([("--output", tmp_path / "b.de"), ("--alignments", None)], [("--input", a)])


def test_streams_compare_by_descriptor_and_non_files_never_clash(tmp_path):
    a = tmp_path / "a.en"
    a.write_text("one\n")
    with (
        open(a) as redirected,  # `seq2seq translate RUN --output a.en < a.en`
        pytest.raises(OutputError, match=r"--output .* same file as the standard input"),
    ):
        check_outputs([("--output", a)], [("the standard input", redirected)])
    with open(os.devnull) as null_in, open(os.devnull, "w") as null_out:
        check_outputs([("stdout", null_out)], [("stdin", null_in)])
    check_outputs([("--output", tmp_path / "b.de")], [("stdin", object())])  # no descriptor


# --- translate, evaluate, plot ----------------------------------------------------------------


def test_translate_refuses_an_output_that_is_an_input(run_dir, tmp_path, capsys):
    src = tmp_path / "a.en"
    src.write_text("three cats\n")
    before = (_snapshot(tmp_path), _snapshot(run_dir))
    base = ["translate", str(run_dir), "--input", str(src)]
    _fails([*base, "--output", str(src)], capsys, "--output", "--input", str(src))
    _fails([*base, "--output", str(tmp_path / "x"), "--alignments", str(tmp_path / "x")], capsys,
           "--alignments", "--output")  # fmt: skip
    _fails([*base, "--output", str(run_dir / "best.pt")], capsys, "the checkpoint")
    _fails([*base, "--alignments", str(run_dir / "spm.model")], capsys, "the subword model")
    assert (_snapshot(tmp_path), _snapshot(run_dir)) == before


def test_evaluate_refuses_hyp_out_equal_to_ref_or_src(run_dir, tmp_path, capsys):
    data = run_dir.parent / "data"
    src, ref = tmp_path / "test.en", tmp_path / "test.de"
    shutil.copy(data / "test.en", src)
    shutil.copy(data / "test.de", ref)
    before = _snapshot(tmp_path)
    base = ["evaluate", str(run_dir), "--src", str(src), "--ref", str(ref)]
    _fails([*base, "--hyp-out", str(ref)], capsys, "--hyp-out", "--ref")
    _fails([*base, "--hyp-out", str(src)], capsys, "--hyp-out", "--src")
    assert _snapshot(tmp_path) == before


def test_plot_refuses_an_output_that_is_an_input(run_dir, tmp_path, capsys):
    sentences = tmp_path / "s.html"
    sentences.write_text("three cats\n")
    before = _snapshot(tmp_path)
    _fails(["plot", str(run_dir), "--input", str(sentences), "--out", str(sentences)], capsys,
           "--out", "--input")  # fmt: skip
    # a static plot per sentence is named OUT_STEM_<line>.png: one of them is the input
    lines = tmp_path / "p_001.png"
    lines.write_text("three cats\n")
    _fails(["plot", str(run_dir), "--input", str(lines), "--out", str(tmp_path / "p.png")], capsys,
           "line 1", "--input")  # fmt: skip
    assert lines.read_text() == "three cats\n"
    assert sentences.read_text() == "three cats\n" and len(_snapshot(tmp_path)) == len(before) + 1


def test_outputs_never_replace_a_file_of_the_run(run_dir, capsys):
    before = _snapshot(run_dir)
    _fails(["plot", str(run_dir), "--src", "three cats", "--out", str(run_dir / "curves.png")],
           capsys, "--out", "the run's curves.png")  # fmt: skip
    source = run_dir.parent / "data" / "test.en"
    _fails(["translate", str(run_dir), "--input", str(source), "--output",
            str(run_dir / "config.yaml")], capsys, "--output", "the run's config.yaml")  # fmt: skip
    assert _snapshot(run_dir) == before


# --- average --out ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("spm.model", [".pt"]),
        ("config.yaml", [".pt"]),
        ("metrics.jsonl", [".pt"]),
        ("best.pt", ["best.pt", "choose another name"]),
        ("last.pt", ["last.pt", "choose another name"]),
        ("step_6.pt", ["step_6.pt", "choose another name"]),
    ],
)
def test_average_out_never_replaces_a_file_of_the_run(run_dir, capsys, name, words):
    before = _snapshot(run_dir)
    _fails(["average", str(run_dir), "--last", "1", "--out", str(run_dir / name)], capsys,
           "--out", *words)  # fmt: skip
    assert _snapshot(run_dir) == before


def test_average_out_replaces_only_a_checkpoint(run_dir, tmp_path, capsys):
    corpus = tmp_path / "train.pt"  # named like a checkpoint, but a corpus file
    corpus.write_text("one cat\n")
    args = ["average", str(run_dir / "step_4.pt"), str(run_dir / "step_6.pt"), "--out"]
    _fails([*args, str(corpus)], capsys, "--out", "not a seq2seq checkpoint")
    assert corpus.read_text() == "one cat\n"
    (tmp_path / "dir.pt").mkdir()
    _fails([*args, str(tmp_path / "dir.pt")], capsys, "--out", "not a file")
    # an existing checkpoint (a previous average) is replaced
    out = tmp_path / "averaged.pt"
    shutil.copy(run_dir / "step_4.pt", out)
    shutil.copy(run_dir / "spm.model", tmp_path / "spm.model")
    assert main([*args, str(out)]) == 0
    assert load_checkpoint(out)["averaged"]["steps"] == [4, 6]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# --- numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--length-penalty", "inf"),
        ("--length-penalty", "nan"),
        ("--length-penalty", "1e400"),
        ("--length-penalty", "-0.5"),
        ("--length-penalty", "1e300"),
        ("--max-len-ratio", "inf"),
        ("--max-len-ratio", "0"),
        ("--max-len-ratio", "1e300"),
        ("--max-len-offset", "-1"),
        ("--max-len-offset", "9" * 30),
        ("--max-len-offset", "9" * 400),  # beyond the float range
    ],
)
@pytest.mark.parametrize("command", ["translate", "evaluate"])
def test_decoding_numbers_must_be_finite_and_in_range(tmp_path, capsys, command, option, value):
    args = [command, str(tmp_path), option, value]
    if command == "evaluate":
        args += ["--src", "a", "--ref", "b", "--hyp-out", str(tmp_path / "hyp")]
    expected = "expected an integer" if option == "--max-len-offset" else "expected a finite"
    _fails(args, capsys, option, expected, repr(value))
    assert list(tmp_path.iterdir()) == []


# --- SIGTERM ----------------------------------------------------------------------------------


def test_sigterm_while_translating_leaves_no_temporary_file(run_dir, tmp_path):
    out = tmp_path / "out.de"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "seq2seq", "translate", str(run_dir), "--output", str(out)]
    with subprocess.Popen(
        command, cwd=tmp_path, env=env, stdin=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        process.stdin.write(b"three cats\nI have seven horses .\n" * 100)
        process.stdin.flush()  # stdin stays open: the command is still translating
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".out.de.*.tmp")):
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "no temporary output file appeared"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err.decode()
    assert "terminated" in err.decode()
    assert list(tmp_path.iterdir()) == []  # neither out.de nor .out.de.*.tmp
