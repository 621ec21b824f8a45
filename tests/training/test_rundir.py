"""Run directories: what --overwrite removes, metrics.jsonl after a crash, which checkpoint
--resume continues from."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from seq2seq.checkpoint import save_checkpoint
from seq2seq.training.rundir import (
    MetricsLog,
    RunDirError,
    check_run_dir,
    clear_run_dir,
    run_entries,
)
from seq2seq.training.saving import resume_path


def test_overwrite_removes_every_checkpoint_and_nothing_else(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "prepared").mkdir(parents=True)
    for name in ("last.pt", "best.pt", "step_7.pt", "averaged.pt", "spm.model", "notes.txt"):
        (run / name).write_bytes(b"x")
    (run / "alignments").mkdir()
    (run / "alignments" / "step_3.png").write_bytes(b"x")
    clear_run_dir(run)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt", "prepared", "spm.model"]


def test_overwrite_removes_symlinks_without_following_them(tmp_path: Path) -> None:
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    run.mkdir()
    elsewhere.mkdir()
    (elsewhere / "keep.png").write_bytes(b"x")
    (elsewhere / "keep.pt").write_bytes(b"x")
    (run / "alignments").symlink_to(elsewhere, target_is_directory=True)
    (run / "last.pt").symlink_to(elsewhere / "keep.pt")
    (run / "best.pt").symlink_to(tmp_path / "dangling.pt")
    clear_run_dir(run)
    assert list(run.iterdir()) == []
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep.png", "keep.pt"]


def test_an_averaged_checkpoint_alone_counts_as_a_run(tmp_path: Path) -> None:
    (tmp_path / "averaged.pt").write_bytes(b"x")
    assert [p.name for p in run_entries(tmp_path)] == ["averaged.pt"]
    with pytest.raises(RunDirError, match="already holds a run"):
        check_run_dir(tmp_path, resume=False, overwrite=False)


def test_metrics_log_drops_a_half_written_line_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "metrics.jsonl"
    records = [{"split": "train", "step": s, "loss": 1.0 / s} for s in (1, 2, 3)]
    text = "".join(json.dumps(r) + "\n" for r in records)
    path.write_text(text + "[1, 2]\n" + '{"split": "valid", "st', encoding="utf-8")
    log = MetricsLog(path)
    with caplog.at_level(logging.WARNING, logger="seq2seq"):
        log.load(up_to_step=2)
    assert log.records == records[:2]
    assert f"{path}:4 is not a JSON record" in caplog.text
    assert f'{path}:5 is not a JSON record (cut short by a crash?): dropped: {{"split"' in (
        caplog.text
    )
    assert path.read_text(encoding="utf-8") == "".join(json.dumps(r) + "\n" for r in records[:2])


# --- which checkpoint --resume continues from ------------------------------------------------


def _checkpoint(path: Path, step: int, *, value: float = 1.0, resumable: bool = True) -> None:
    state = {"format_version": 1, "config": {}, "model": {"w": torch.full((3,), value)}}
    if resumable:
        state.update(optimizer={}, scheduler={}, sampler={}, rng={}, best={}, step=step)
    else:
        state["step"] = step
    save_checkpoint(state, path)


def test_resume_uses_last_pt_when_it_is_readable(tmp_path: Path, caplog) -> None:
    _checkpoint(tmp_path / "last.pt", 3)
    _checkpoint(tmp_path / "step_9.pt", 9)  # never newer in practice: last.pt is written first
    with caplog.at_level(logging.WARNING, logger="seq2seq"):
        assert resume_path(tmp_path) == tmp_path / "last.pt"
    assert caplog.text == ""


@pytest.mark.parametrize("damage", ["missing", "truncated", "nan"])
def test_resume_falls_back_to_the_newest_usable_checkpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    _checkpoint(tmp_path / "step_2.pt", 2)
    _checkpoint(tmp_path / "step_10.pt", 10)
    _checkpoint(tmp_path / "best.pt", 5)
    _checkpoint(tmp_path / "step_12.pt", 12, value=float("inf"))  # damaged: skipped
    if damage == "truncated":
        _checkpoint(tmp_path / "last.pt", 11)
        (tmp_path / "last.pt").write_bytes((tmp_path / "last.pt").read_bytes()[:100])
    elif damage == "nan":
        _checkpoint(tmp_path / "last.pt", 11, value=float("nan"))
    check_run_dir(tmp_path, resume=True, overwrite=False)
    with caplog.at_level(logging.WARNING, logger="seq2seq"):
        assert resume_path(tmp_path) == tmp_path / "step_10.pt"
    reason = {
        "missing": "last.pt does not exist",
        "truncated": "last.pt cannot be read",
        "nan": "parameter 'w' holds 3 NaN",
    }[damage]
    assert reason in caplog.text
    assert f"resuming from {tmp_path / 'step_10.pt'} (step 10)" in caplog.text


def test_resume_picks_best_pt_when_it_is_the_newest(tmp_path: Path) -> None:
    _checkpoint(tmp_path / "step_4.pt", 4)
    _checkpoint(tmp_path / "best.pt", 6)
    _checkpoint(tmp_path / "step_8.pt", 8, resumable=False)  # e.g. an averaged checkpoint
    assert resume_path(tmp_path) == tmp_path / "best.pt"


def test_resume_without_any_usable_checkpoint_says_why(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match=r"holds no last\.pt, best\.pt or step_N\.pt"):
        check_run_dir(tmp_path, resume=True, overwrite=False)
    _checkpoint(tmp_path / "step_4.pt", 4, resumable=False)
    (tmp_path / "last.pt").write_bytes(b"garbage")
    with pytest.raises(RunDirError) as info:
        resume_path(tmp_path)
    message = str(info.value)
    assert "holds no checkpoint to resume from" in message
    assert "last.pt cannot be read" in message and "step_4.pt holds no training state" in message
