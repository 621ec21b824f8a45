"""A tiny training killed with SIGKILL at many points, resumed each time, ends exactly as an
uninterrupted run: the same parameters, optimizer state and metrics, no temporary file left.

The kills land at the start, between updates, and inside every kind of checkpoint write: the
environment variable SEQ2SEQ_PAUSE_BEFORE_REPLACE makes the atomic writer stop just before it
renames the named file into place, so that the kill falls there for certain.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from seq2seq.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "training"))
from run_factory import tiny_config_dict, write_tiny_corpus  # noqa: E402

STEPS = 8
TRAIN = {
    "max_steps": STEPS,
    "validate_every": 2,
    "log_every": 1,
    "keep_checkpoints": 2,
    "num_alignment_plots": 0,
    "valid_max_sentences": 2,
    "threads": 1,
    "quiet": True,
}
DETERMINISTIC = ("step", "split", "epoch", "loss", "lr", "grad_norm", "bleu", "ppl", "skipped")

# (what to wait for, then kill): a log line of the run, or a pause inside a file write
KILL_POINTS = [
    ("log", "data: "),  # before the first update
    ("log", "step 1 |"),
    ("pause", "last.pt"),  # inside the first checkpoint write, before last.pt is in place
    ("pause", "best.pt"),
    ("pause", "step_4.pt"),
    ("log", "step 5 |"),
    ("pause", "metrics.jsonl"),
    ("log", "valid step 6 |"),
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("crash")
    data = write_tiny_corpus(base / "data")
    cfg = tiny_config_dict(data)
    cfg["train"].update(TRAIN)
    cfg["model"]["dropout"] = 0.1  # random streams must be restored too
    config = base / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    reference = base / "reference"
    done = subprocess.run(command(config, reference), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return config, reference


def command(config: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "seq2seq", "train", str(config), "--run-dir", str(run_dir)]


def run_until_killed(config: Path, run_dir: Path, kind: str, what: str, resume: bool) -> bool:
    """Starts training, kills it with SIGKILL at the point; False if it finished first."""
    env = dict(os.environ)
    if kind == "pause":
        env["SEQ2SEQ_PAUSE_BEFORE_REPLACE"] = what
    args = command(config, run_dir) + (["--resume"] if resume else [])
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env)
    log = run_dir / "train.log"
    deadline = time.monotonic() + 120
    try:
        if kind == "pause":
            for line in proc.stderr:
                if line.startswith(f"paused before replacing {what}"):
                    proc.send_signal(signal.SIGKILL)
                    break
        else:
            while not (log.is_file() and what in log.read_text(encoding="utf-8")):
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            else:
                proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=120)
    return proc.returncode == -signal.SIGKILL


def deterministic(records: list[dict]) -> list[dict]:
    return [{k: r.get(k) for k in DETERMINISTIC} for r in records]


def read_metrics(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return deterministic([json.loads(line) for line in lines])


@pytest.mark.slow
def test_killed_and_resumed_training_ends_as_an_uninterrupted_run(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    config, reference = setup
    run_dir = tmp_path / "run"
    kills = 0
    for kind, what in KILL_POINTS:
        resume = any(run_dir.glob("*.pt"))
        if run_until_killed(config, run_dir, kind, what, resume):
            kills += 1
        assert not (run_dir / "last.pt").exists() or load_checkpoint(run_dir / "last.pt")
    resume = any(run_dir.glob("*.pt"))
    done = subprocess.run(
        command(config, run_dir) + (["--resume"] if resume else []),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert kills >= len(KILL_POINTS) - 1  # every point was reached (the last may finish first)
    ours, theirs = load_checkpoint(run_dir / "last.pt"), load_checkpoint(reference / "last.pt")
    assert ours["step"] == theirs["step"] == STEPS
    for name, tensor in theirs["model"].items():
        assert torch.equal(ours["model"][name], tensor), name
    states = zip(
        ours["optimizer"]["state"].values(), theirs["optimizer"]["state"].values(), strict=True
    )
    for a, b in states:
        for key in b:
            assert torch.equal(torch.as_tensor(a[key]), torch.as_tensor(b[key])), key
    assert read_metrics(run_dir) == read_metrics(reference)
    assert not list(run_dir.rglob("*.tmp"))
