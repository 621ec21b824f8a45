"""Training on prepared data: reused by resumes and new runs, refused when the data changed."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from run_factory import tiny_config

from seq2seq.checkpoint import load_checkpoint
from seq2seq.data import prepared
from seq2seq.training.rundir import RunDirError
from seq2seq.training.trainer import train

QUICK = ["train.num_alignment_plots=0", "train.valid_max_sentences=2", "train.validate_every=2"]


def no_build(*args, **kwargs):
    raise AssertionError("the training data were encoded again")


@pytest.fixture
def corpus(tmp_path: Path, tiny_corpus: Path) -> Path:
    """A copy of the tiny corpus that a test may change."""
    return Path(shutil.copytree(tiny_corpus, tmp_path / "data"))


def test_resume_and_a_new_run_reuse_the_prepared_data(
    tmp_path: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    train(tiny_config(tiny_corpus, overrides=[*QUICK, "train.max_steps=2"]), run_dir)
    header = (run_dir / "prepared" / "header.json").read_bytes()
    monkeypatch.setattr(prepared, "build", no_build)
    result = train(
        tiny_config(tiny_corpus, overrides=[*QUICK, "train.max_steps=4"]), run_dir, resume=True
    )
    assert result.step == 4
    result = train(
        tiny_config(tiny_corpus, overrides=[*QUICK, "train.max_steps=2"]), run_dir, overwrite=True
    )
    assert result.step == 2 and load_checkpoint(run_dir / "last.pt")["step"] == 2
    assert (run_dir / "prepared" / "header.json").read_bytes() == header


def test_resume_refuses_a_changed_source_file_and_a_new_run_prepares_again(
    tmp_path: Path, corpus: Path
) -> None:
    run_dir = tmp_path / "run"
    train(tiny_config(corpus, overrides=[*QUICK, "train.max_steps=2"]), run_dir)
    target = corpus / "train.de"
    target.write_text(target.read_text(encoding="utf-8").replace("ein", "eine"), encoding="utf-8")
    last = (run_dir / "last.pt").read_bytes()
    cfg = tiny_config(corpus, overrides=[*QUICK, "train.max_steps=4"])
    with pytest.raises(RunDirError, match=rf"--resume: {target} changed since the data were"):
        train(cfg, run_dir, resume=True)
    assert (run_dir / "last.pt").read_bytes() == last  # nothing changed
    result = train(cfg, run_dir, overwrite=True)
    assert result.step == 4
    assert prepared.stale_reason(cfg, run_dir) is None


def test_resume_refuses_a_damaged_prepared_file(tmp_path: Path, tiny_corpus: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = tiny_config(tiny_corpus, overrides=[*QUICK, "train.max_steps=2"])
    train(cfg, run_dir)
    tokens = run_dir / "prepared" / "src.tokens.bin"
    tokens.write_bytes(tokens.read_bytes()[:-1])
    with pytest.raises(RunDirError, match=rf"--resume: {tokens} is .* bytes.*\(truncated\?\)"):
        train(cfg, run_dir, resume=True)


def test_a_run_without_prepared_data_resumes_with_its_subword_model(
    tmp_path: Path, tiny_corpus: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A run of an earlier version (no prepared/ folder) is encoded with its own model."""
    run_dir = tmp_path / "run"
    train(tiny_config(tiny_corpus, overrides=[*QUICK, "train.max_steps=2"]), run_dir)
    model = (run_dir / "spm.model").read_bytes()
    shutil.rmtree(run_dir / "prepared")
    with caplog.at_level(logging.WARNING):
        result = train(
            tiny_config(tiny_corpus, overrides=[*QUICK, "train.max_steps=4"]), run_dir, resume=True
        )
    assert result.step == 4
    assert "no prepared data" in caplog.text
    assert (run_dir / "spm.model").read_bytes() == model


def test_train_after_prepare_reuses_its_data_and_prepare_guards_a_trained_run(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import yaml
    from run_factory import tiny_config_dict

    from seq2seq.cli import main

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict(corpus)), encoding="utf-8")
    run_dir = tmp_path / "run"
    assert main(["prepare", str(config), "--run-dir", str(run_dir), "--quiet"]) == 0
    with monkeypatch.context() as patch:
        patch.setattr(prepared, "build", no_build)
        assert main(["train", str(config), "--run-dir", str(run_dir), *sets(QUICK)]) == 0
    target = corpus / "train.en"
    target.write_text(target.read_text(encoding="utf-8") + "one more\n", encoding="utf-8")
    (corpus / "train.de").write_text(
        (corpus / "train.de").read_text(encoding="utf-8") + "noch einer\n", encoding="utf-8"
    )
    capsys.readouterr()
    assert main(["prepare", str(config), "--run-dir", str(run_dir), "--quiet"]) == 2
    assert f"{run_dir} holds a trained run" in capsys.readouterr().err


def sets(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def test_resume_checks_everything_before_it_writes(tmp_path: Path, tiny_corpus: Path) -> None:
    run_dir = tmp_path / "run"
    train(tiny_config(tiny_corpus, overrides=[*QUICK, "train.max_steps=2"]), run_dir)
    (run_dir / "spm.model").unlink()
    config = (run_dir / "config.yaml").read_bytes()
    with pytest.raises(ValueError, match="subword model"):
        train(
            tiny_config(tiny_corpus, overrides=[*QUICK, "train.max_steps=9"]), run_dir, resume=True
        )
    assert (run_dir / "config.yaml").read_bytes() == config


def test_a_run_that_stopped_before_its_first_checkpoint_can_start_again(
    tmp_path: Path, tiny_corpus: Path
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("config.yaml", "train.log", "metrics.jsonl"):  # what such a run leaves
        (run_dir / name).write_text("left over\n", encoding="utf-8")
    (run_dir / ".last.pt.0123456789ab.tmp").write_bytes(b"half a checkpoint")
    result = train(tiny_config(tiny_corpus, overrides=[*QUICK, "train.max_steps=2"]), run_dir)
    assert result.step == 2
    assert "left over" not in (run_dir / "train.log").read_text(encoding="utf-8")
    assert not list(run_dir.glob(".*.tmp"))
