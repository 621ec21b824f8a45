"""Resuming reproduces an uninterrupted run exactly; non-finite losses are handled."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from run_factory import tiny_config

from seq2seq.checkpoint import load_checkpoint
from seq2seq.training import trainer
from seq2seq.training.trainer import TrainingError, train

# dropout on, gradient accumulation, an epoch boundary after the interruption (~8 updates/epoch)
RESUME_SETTINGS = [
    "train.accum_steps=2",
    "train.batch_tokens=600",
    "train.validate_every=5",
    "train.log_every=1",
    "train.num_alignment_plots=0",
    "train.keep_checkpoints=0",
    "train.valid_max_sentences=2",
    "model.dropout=0.2",
]


def _losses(run_dir: Path) -> dict[int, float]:
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if r["split"] == "train"}


def test_resumed_run_equals_uninterrupted_run(tmp_path: Path, tiny_corpus: Path) -> None:
    full = tmp_path / "full"
    train(tiny_config(tiny_corpus, overrides=[*RESUME_SETTINGS, "train.max_steps=14"]), full)
    part = tmp_path / "part"
    train(tiny_config(tiny_corpus, overrides=[*RESUME_SETTINGS, "train.max_steps=6"]), part)
    assert load_checkpoint(part / "last.pt")["step"] == 6
    result = train(
        tiny_config(tiny_corpus, overrides=[*RESUME_SETTINGS, "train.max_steps=14"]),
        part,
        resume=True,
    )
    assert result.step == 14
    a, b = load_checkpoint(full / "last.pt"), load_checkpoint(part / "last.pt")
    assert a["epoch"] >= 1 and a["sampler"] == b["sampler"]
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    for key, state in a["optimizer"]["state"].items():
        assert torch.equal(state["exp_avg_sq"], b["optimizer"]["state"][key]["exp_avg_sq"])
    full_losses, part_losses = _losses(full), _losses(part)
    assert sorted(part_losses) == list(range(1, 15))  # the log continues without gaps
    assert part_losses == full_losses
    # dropout was active: without it the first update (same weights, same batch) differs
    other = tmp_path / "other"
    train(
        tiny_config(
            tiny_corpus, overrides=[*RESUME_SETTINGS, "train.max_steps=1", "model.dropout=0.0"]
        ),
        other,
    )
    assert _losses(other)[1] != full_losses[1]


def _nan_at(step: int):
    """A loss function that returns NaN on the `step`-th call (1-based)."""
    real = trainer.label_smoothed_cross_entropy
    calls = {"n": 0}

    def loss_fn(logits, target, smoothing=0.0):
        calls["n"] += 1
        loss, n = real(logits, target, smoothing)
        return (loss * float("nan"), n) if calls["n"] == step else (loss, n)

    return loss_fn


def test_nan_loss_stops_and_keeps_last_good_checkpoint(
    tmp_path: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trainer, "label_smoothed_cross_entropy", _nan_at(4))
    run_dir = tmp_path / "run"
    cfg = tiny_config(
        tiny_corpus,
        overrides=["train.validate_every=2", "train.max_steps=6", "train.num_alignment_plots=0"],
    )
    with pytest.raises(
        TrainingError,
        match=r"non-finite loss at step 4 .*last good checkpoint "
        r"is .*last.pt \(step 2\)",
    ):
        train(cfg, run_dir)
    assert load_checkpoint(run_dir / "last.pt")["step"] == 2
    assert load_checkpoint(run_dir / "best.pt")["step"] == 2


def test_nan_loss_is_skipped_under_fp16_loss_scaling(
    tmp_path: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trainer, "label_smoothed_cross_entropy", _nan_at(3))
    run_dir = tmp_path / "run"
    cfg = tiny_config(
        tiny_corpus,
        overrides=[
            "train.precision=fp16",
            "train.max_steps=4",
            "train.validate_every=4",
            "train.log_every=1",
            "train.num_alignment_plots=0",
        ],
    )
    result = train(cfg, run_dir)
    assert result.step == 4
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    skipped = {r["step"]: r["skipped"] for r in records if r["split"] == "train"}
    assert skipped == {1: 0, 2: 0, 3: 1, 4: 0}  # the 3rd update was skipped, a 5th one ran
    scale = load_checkpoint(run_dir / "last.pt")["scaler"]["scale"]
    assert scale == 65536.0 / 2


def test_resume_after_a_crash_in_the_first_writes_of_a_save(
    tmp_path: Path, tiny_corpus: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A crash of an older seq2seq (which wrote last.pt after the others) left step_3.pt, a
    truncated best.pt, no last.pt and a half-written metrics line: --resume continues from
    step_3.pt, with warnings, and ends as the uninterrupted run."""
    settings = [*RESUME_SETTINGS, "train.validate_every=3", "train.keep_checkpoints=1"]
    cfg = tiny_config(tiny_corpus, overrides=[*settings, "train.max_steps=6"])
    full = tmp_path / "full"
    train(tiny_config(tiny_corpus, overrides=[*settings, "train.max_steps=3"]), full)
    crashed = tmp_path / "crashed"
    shutil.copytree(full, crashed)
    train(cfg, full, resume=True)
    (crashed / "last.pt").unlink()
    best = crashed / "best.pt"
    best.write_bytes(best.read_bytes()[:1000])
    with (crashed / "metrics.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"split": "train", "step": 4, "lo')
    with caplog.at_level(logging.WARNING, logger="seq2seq"):
        result = train(cfg, crashed, resume=True)
    assert result.step == 6
    assert f"last.pt does not exist; resuming from {crashed / 'step_3.pt'} (step 3)" in caplog.text
    assert "metrics.jsonl:" in caplog.text and "is not a JSON record" in caplog.text
    a, b = load_checkpoint(full / "last.pt"), load_checkpoint(crashed / "last.pt")
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert _losses(crashed) == _losses(full)
    assert sorted(p.name for p in crashed.glob("*.pt")) == ["best.pt", "last.pt", "step_6.pt"]
