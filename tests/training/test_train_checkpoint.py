"""Checkpoint files: atomic writes, safe and clear loading, pruning, loading a run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seq2seq.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_run,
    prune_step_checkpoints,
    save_checkpoint,
)
from seq2seq.cli import main


def _ckpt(value: float, size: int = 4) -> dict:
    return {"format_version": 1, "config": {"x": 1}, "model": {"w": torch.full((size,), value)}}


def test_round_trip(tmp_path: Path) -> None:
    save_checkpoint(_ckpt(1.0), tmp_path / "a.pt")
    loaded = load_checkpoint(tmp_path / "a.pt")
    assert torch.equal(loaded["model"]["w"], torch.ones(4))
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]  # no temporary file left


@pytest.mark.parametrize("failing", ["os.replace", "os.fsync"])
def test_crash_during_save_keeps_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(_ckpt(1.0), path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(failing, crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(_ckpt(2.0), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(4))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_kill_during_saves_never_leaves_a_broken_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    script = (
        "import sys, torch\n"
        "from seq2seq.checkpoint import save_checkpoint\n"
        "i = 0\n"
        "while True:\n"
        "    i += 1\n"
        "    save_checkpoint({'format_version': 1, 'config': {}, "
        "'model': {'w': torch.full((1_000_000,), float(i))}}, sys.argv[1])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)])
    try:
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        proc.kill()
        proc.wait()
    checkpoint = load_checkpoint(path)
    w = checkpoint["model"]["w"]
    assert w.numel() == 1_000_000 and bool((w == w[0]).all())


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.pt does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    broken = tmp_path / "broken.pt"
    save_checkpoint(_ckpt(1.0, size=1000), broken)
    broken.write_bytes(broken.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=r"broken\.pt cannot be read"):
        load_checkpoint(broken)
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match=r"text\.pt cannot be read"):
        load_checkpoint(tmp_path / "text.pt")
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a seq2seq checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save({**_ckpt(1.0), "format_version": 99}, tmp_path / "future.pt")
    with pytest.raises(
        CheckpointError, match="format_version 99; this version of seq2seq reads format_version 1"
    ):
        load_checkpoint(tmp_path / "future.pt")


def test_loading_never_runs_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"format_version": 1, "config": {}, "model": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


def test_prune_keeps_newest(tmp_path: Path) -> None:
    for step in (5, 10, 100, 20):
        (tmp_path / f"step_{step}.pt").write_bytes(b"x")
    (tmp_path / "last.pt").write_bytes(b"x")
    deleted = prune_step_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in deleted) == ["step_10.pt", "step_5.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "step_100.pt", "step_20.pt"]


def test_load_run_from_dir_and_file(tiny_run: Path) -> None:
    run = load_run(tiny_run)
    assert run.checkpoint_path == tiny_run / "best.pt"
    assert not run.model.training
    state = load_checkpoint(tiny_run / "best.pt")
    for name, tensor in run.model.state_dict().items():
        assert torch.equal(tensor, state["model"][name])
    assert run.config.model.embed_dim == 32
    assert run.tokenizer.src_vocab_size == 100
    last = load_run(tiny_run / "last.pt")
    assert last.checkpoint_path == tiny_run / "last.pt"


def test_load_run_errors(tmp_path: Path, tiny_run: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"holds no best\.pt or last\.pt"):
        load_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        load_run(tmp_path / "nowhere")
    # a checkpoint whose weights do not fit the model its config describes
    state = load_checkpoint(tiny_run / "last.pt")
    state["model"] = {k: v[..., :1] if v.dim() else v for k, v in state["model"].items()}
    for name in ("spm.model",):
        (tmp_path / name).write_bytes((tiny_run / name).read_bytes())
    save_checkpoint(state, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="does not fit the model"):
        load_run(tmp_path)
    assert main(["train", "--help"]) == 0
