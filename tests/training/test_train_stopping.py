"""Stopping rules: early stopping with patience, max_epochs, max_time; best.pt follows BLEU."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from run_factory import tiny_config

from seq2seq.checkpoint import load_checkpoint, save_checkpoint
from seq2seq.training import trainer
from seq2seq.training.trainer import train

FAST = ["train.num_alignment_plots=0", "train.valid_max_sentences=1"]


def test_early_stopping_and_best_checkpoint(
    tmp_path: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bleus = iter([10.0, 12.0, 11.0, 11.5, 13.0])

    def fake_validate(*args, **kwargs):
        return {"loss": 1.0, "ppl": 2.7, "bleu": next(bleus)}

    monkeypatch.setattr(trainer, "validate", fake_validate)
    cfg = tiny_config(
        tiny_corpus,
        overrides=[*FAST, "train.validate_every=1", "train.max_steps=50", "train.patience=2"],
    )
    result = train(cfg, tmp_path / "run")
    # best 12 at step 2, then two validations without progress: stop at step 4
    assert result.step == 4 and result.stop_reason.startswith("early stopping")
    assert result.best_bleu == 12.0
    assert load_checkpoint(tmp_path / "run" / "best.pt")["step"] == 2
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 4


def test_max_epochs(tmp_path: Path, tiny_corpus: Path) -> None:
    cfg = tiny_config(
        tiny_corpus,
        overrides=[
            *FAST,
            "train.max_steps=null",
            "train.max_epochs=1",
            "train.accum_steps=3",
            "train.batch_tokens=800",
            "train.validate_every=100",
        ],
    )
    result = train(cfg, tmp_path / "run")
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert result.stop_reason == "max_epochs=1 reached"
    assert (ckpt["sampler"]["epoch"], ckpt["sampler"]["position"]) == (1, 0)
    # one epoch of n batches in groups of 3 (the last group may be shorter)
    lengths = _lengths(tmp_path / "run" / "train.log")
    assert result.step == -(-lengths // 3)


def _lengths(log: Path) -> int:
    """Batches per epoch, as logged by the trainer."""
    for line in log.read_text(encoding="utf-8").splitlines():
        if "per epoch per process" in line:
            return int(line.split("batches: ")[1].split()[0])
    raise AssertionError("no batch count in train.log")


def test_max_time(tmp_path: Path, tiny_corpus: Path) -> None:
    cfg = tiny_config(
        tiny_corpus,
        overrides=[
            *FAST,
            "train.max_steps=100000",
            "train.max_time=2s",
            "train.validate_every=100000",
            "train.log_every=1",
        ],
    )
    result = train(cfg, tmp_path / "run")
    assert result.stop_reason == "max_time=2s reached"
    assert 0 < result.step < 100000
    records = [
        json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().split("\n") if x
    ]
    assert records[-1]["split"] == "valid" and records[-1]["step"] == result.step


def test_max_time_counts_every_session_of_a_resumed_run(tmp_path: Path, tiny_corpus: Path) -> None:
    overrides = [*FAST, "train.max_steps=100000", "train.validate_every=100000"]
    run = tmp_path / "run"
    first = train(tiny_config(tiny_corpus, overrides=[*overrides, "train.max_time=2s"]), run)
    assert load_checkpoint(run / "last.pt")["train_seconds"] >= 2.0
    # the budget is spent: a resumed run stops before its first update
    again = train(
        tiny_config(tiny_corpus, overrides=[*overrides, "train.max_time=2s"]), run, resume=True
    )
    assert again.stop_reason == "max_time=2s reached" and again.step == first.step
    # a larger budget continues from where the first session stopped
    more = train(
        tiny_config(tiny_corpus, overrides=[*overrides, "train.max_time=3s"]), run, resume=True
    )
    assert more.step > first.step
    assert load_checkpoint(run / "last.pt")["train_seconds"] >= 3.0


def test_resume_without_recorded_time_warns_that_max_time_restarts(
    tmp_path: Path, tiny_corpus: Path, caplog: pytest.LogCaptureFixture
) -> None:
    overrides = [*FAST, "train.max_steps=100000", "train.validate_every=100000"]
    run = tmp_path / "run"
    first = train(tiny_config(tiny_corpus, overrides=[*overrides, "train.max_time=1s"]), run)
    checkpoint = load_checkpoint(run / "last.pt")
    del checkpoint["train_seconds"]  # as written before the training time was recorded
    save_checkpoint(checkpoint, run / "last.pt")
    with caplog.at_level(logging.WARNING, logger="seq2seq"):
        again = train(
            tiny_config(tiny_corpus, overrides=[*overrides, "train.max_time=1s"]), run, resume=True
        )
    # the spent budget is unknown: this session trains its own second, and says so
    assert again.step > first.step
    assert any(
        "last.pt does not record how long" in r.getMessage()
        and "max_time=1s counts from this session" in r.getMessage()
        for r in caplog.records
    )


def test_linear_schedule_reaches_zero_at_max_steps(tmp_path: Path, tiny_corpus: Path) -> None:
    cfg = tiny_config(
        tiny_corpus,
        overrides=[
            *FAST,
            "train.schedule=linear",
            "train.lr=0.002",
            "train.warmup_steps=2",
            "train.max_steps=10",
            "train.log_every=1",
            "train.validate_every=100",
        ],
    )
    train(cfg, tmp_path / "run")
    records = [
        json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().split("\n") if x
    ]
    lrs = {r["step"]: r["lr"] for r in records if r["split"] == "train"}
    # update n: 0.002 * min(1, n / 2) * (1 - (n - 1) / 10)
    expected = {n: 0.002 * min(1.0, n / 2) * (1 - (n - 1) / 10) for n in range(1, 11)}
    assert lrs == pytest.approx(expected)
    assert lrs[10] == pytest.approx(0.0002)  # the last update; the budget ends after it


def test_budget_used_is_the_larger_share() -> None:
    from types import SimpleNamespace

    from seq2seq.training.distributed import DistInfo

    def session(schedule: str, step: int, max_steps: int | None):
        train_cfg = SimpleNamespace(schedule=schedule, max_steps=max_steps)
        return SimpleNamespace(
            cfg=SimpleNamespace(train=train_cfg), state=SimpleNamespace(step=step), info=DistInfo()
        )

    assert trainer.budget_used(session("linear", 10, 100), 30.0, 60.0) == pytest.approx(0.5)
    assert trainer.budget_used(session("linear", 80, 100), 30.0, 60.0) == pytest.approx(0.8)
    assert trainer.budget_used(session("linear", 10, None), 90.0, 60.0) == 1.0  # capped
    assert trainer.budget_used(session("linear", 10, 100), 90.0, None) == pytest.approx(0.1)
    assert trainer.budget_used(session("noam", 80, 100), 30.0, 60.0) == 0.0  # not needed
