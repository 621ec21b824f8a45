"""Checkpoint files: atomic writes, safe and clear loading, pruning, loading a run."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from seq2seq.checkpoint import (
    SUBWORD_KEY,
    CheckpointError,
    load_checkpoint,
    load_run,
    prune_step_checkpoints,
    save_checkpoint,
)
from seq2seq.cli import main
from seq2seq.config import config_from_dict
from seq2seq.data import Tokenizer, read_lines
from seq2seq.training import saving


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
    with pytest.raises(CheckpointError, match=r"broken\.pt cannot be read") as info:
        load_checkpoint(broken)
    assert "weights_only" not in str(info.value)
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
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
    message = str(info.value)
    assert "evil.pt holds objects other than tensors and plain data" in message
    assert "not loaded, for safety" in message and "system" in message
    assert "corrupt" not in message and "weights_only" not in message


def test_a_pickled_class_is_refused_as_foreign_not_corrupt(tmp_path: Path) -> None:
    torch.save({"format_version": 1, "config": {}, "model": {"w": Path("x")}}, tmp_path / "p.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "p.pt")
    message = str(info.value)
    assert "holds objects other than tensors and plain data (pathlib" in message, message
    assert "weights_only" not in message


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


# --- the order of the writes, the subword model and finite parameters -----------------------


def test_last_pt_is_written_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = []
    monkeypatch.setattr(saving, "checkpoint_dict", lambda s, rng: _ckpt(1.0))
    monkeypatch.setattr(saving, "save_checkpoint", lambda data, path: written.append(path))
    session = SimpleNamespace(
        run_dir=tmp_path,
        cfg=SimpleNamespace(train=SimpleNamespace(keep_checkpoints=2)),
        state=SimpleNamespace(step=50),
    )
    saving.save(session, [], best=True)
    assert [p.name for p in written] == ["last.pt", "best.pt", "step_50.pt"]


def _copy_run(tiny_run: Path, dest: Path, names=("spm.model", "best.pt")) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(tiny_run / name, dest / name)
    return dest


def _other_subword_model(tiny_run: Path, dest: Path) -> None:
    """Trains another subword model (vocabulary 90) into ``dest``."""
    from run_factory import tiny_config

    data = tiny_run.parent / "data"
    cfg = tiny_config(data, overrides=["data.tokenizer.vocab_size=90"])
    Tokenizer.train(
        cfg.data.tokenizer, read_lines(data / "train.en"), read_lines(data / "train.de"), dest
    )


def test_checkpoints_record_the_sha256_of_their_subword_model(tiny_run: Path) -> None:
    digest = hashlib.sha256((tiny_run / "spm.model").read_bytes()).hexdigest()
    for name in ("last.pt", "best.pt"):
        assert load_checkpoint(tiny_run / name)[SUBWORD_KEY] == {"spm.model": digest}


def test_a_checkpoint_beside_another_subword_model_is_refused(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = _copy_run(tiny_run, tmp_path / "run", names=("best.pt",))
    _other_subword_model(tiny_run, run)
    with pytest.raises(CheckpointError) as info:
        load_run(run)
    message = str(info.value)
    assert f"checkpoint {run / 'best.pt'} does not belong to the subword model" in message
    assert f"{run / 'spm.model'} has SHA-256" in message
    src = tiny_run.parent / "data" / "test.en"
    assert main(["translate", str(run), "--input", str(src)]) == 2
    err = capsys.readouterr().err
    assert "does not belong to the subword model" in err and "Traceback" not in err
    # a run whose subword model is gone names the missing file
    (run / "spm.model").unlink()
    with pytest.raises(CheckpointError, match=r"spm\.model is missing"):
        load_run(run)


def test_a_checkpoint_without_a_recorded_subword_model_loads_with_a_warning(
    tiny_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = _copy_run(tiny_run, tmp_path / "run")
    state = load_checkpoint(run / "best.pt")
    del state[SUBWORD_KEY]
    save_checkpoint(state, run / "best.pt")
    with caplog.at_level(logging.WARNING, logger="seq2seq"):
        load_run(run)
    assert "does not record its subword model" in caplog.text


def test_resume_refuses_another_subword_model(tiny_run: Path, tmp_path: Path) -> None:
    run = _copy_run(tiny_run, tmp_path / "run", names=("last.pt", "config.yaml"))
    _other_subword_model(tiny_run, run)
    cfg = config_from_dict(load_checkpoint(run / "last.pt")["config"])
    with pytest.raises(CheckpointError, match="does not belong to the subword model"):
        saving.check_start(cfg, run, resume=True, overwrite=False)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_checkpoint_with_non_finite_parameters_is_refused_by_name(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture, bad: float
) -> None:
    run = _copy_run(tiny_run, tmp_path / "run")
    state = load_checkpoint(run / "best.pt")
    name = sorted(state["model"])[-1]
    state["model"][name].view(-1)[0] = bad
    save_checkpoint(state, run / "best.pt")
    kind = "1 NaN and 0 infinite" if bad != bad else "0 NaN and 1 infinite"
    with pytest.raises(CheckpointError, match=f"parameter '{name}' holds {kind} value"):
        load_run(run)
    src = tiny_run.parent / "data" / "test.en"
    assert main(["translate", str(run), "--input", str(src)]) == 2
    err = capsys.readouterr().err
    assert f"parameter '{name}'" in err and "Traceback" not in err
