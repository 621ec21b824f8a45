"""End to end: `seq2seq train` on a tiny corpus, the run directory, and refused runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from run_factory import tiny_config_dict

from seq2seq.checkpoint import load_checkpoint
from seq2seq.cli import main
from seq2seq.config import config_from_dict


def _write_config(path: Path, data_dir: Path, **train: object) -> Path:
    cfg = tiny_config_dict(data_dir)
    cfg["train"].update(train)
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_run_directory_contents(tiny_run: Path) -> None:
    names = {p.name for p in tiny_run.iterdir()}
    assert {
        "config.yaml",
        "spm.model",
        "best.pt",
        "last.pt",
        "metrics.jsonl",
        "train.log",
        "curves.png",
        "alignments",
        "step_6.pt",
    } <= names
    assert sorted(p.name for p in (tiny_run / "alignments").iterdir()) == [
        "step_000003_0.png",
        "step_000006_0.png",
    ]
    records = [
        json.loads(line)
        for line in (tiny_run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    train_lines = [r for r in records if r["split"] == "train"]
    valid_lines = [r for r in records if r["split"] == "valid"]
    assert [r["step"] for r in train_lines] == [2, 4, 6]
    assert [r["step"] for r in valid_lines] == [3, 6]
    for r in records:
        assert math.isfinite(r["loss"]) and r["loss"] > 0
    for r in valid_lines:
        assert 0 <= r["bleu"] <= 100
        assert r["ppl"] == pytest.approx(math.exp(r["loss"]))
        assert r["entropy"] >= 0 and 0 <= r["eos_weight"] <= 1 and 0 <= r["aer"] <= 1
    for r in train_lines:
        assert r["tgt_tok_per_s"] > 0 and 0 <= r["padding"] < 1 and r["lr"] > 0
    cfg = config_from_dict(yaml.safe_load((tiny_run / "config.yaml").read_text()))
    assert cfg.model.embed_dim == 32
    last = load_checkpoint(tiny_run / "last.pt")
    assert last["step"] == 6 and last["best"]["step"] in (3, 6)
    assert set(last) >= {
        "format_version",
        "seq2seq_version",
        "config",
        "model",
        "optimizer",
        "scheduler",
        "scaler",
        "step",
        "epoch",
        "sampler",
        "rng",
        "best",
    }
    log = (tiny_run / "train.log").read_text(encoding="utf-8")
    assert "dropped" in log and "padding" in log and "valid step 6" in log


def test_refuses_existing_run_then_overwrites(
    tmp_path: Path, tiny_corpus: Path, capsys: pytest.CaptureFixture
) -> None:
    config = _write_config(
        tmp_path / "c.yaml", tiny_corpus, max_steps=2, validate_every=2, num_alignment_plots=0
    )
    run_dir = tmp_path / "run"
    assert main(["train", str(config), "--run-dir", str(run_dir)]) == 0
    before = _snapshot(run_dir)
    assert main(["train", str(config), "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert _snapshot(run_dir) == before
    (run_dir / "notes.txt").write_text("mine")
    assert (
        main(
            [
                "train",
                str(config),
                "--run-dir",
                str(run_dir),
                "--overwrite",
                "--set",
                "train.max_steps=1",
            ]
        )
        == 0
    )
    assert (run_dir / "notes.txt").read_text() == "mine"  # only run files are replaced
    assert load_checkpoint(run_dir / "last.pt")["step"] == 1
    assert not (run_dir / "step_2.pt").exists()


def test_resume_with_changed_model_is_refused(
    tmp_path: Path, tiny_corpus: Path, capsys: pytest.CaptureFixture
) -> None:
    config = _write_config(
        tmp_path / "c.yaml", tiny_corpus, max_steps=2, validate_every=2, num_alignment_plots=0
    )
    run_dir = tmp_path / "run"
    assert main(["train", str(config), "--run-dir", str(run_dir)]) == 0
    before = _snapshot(run_dir)
    code = main(
        [
            "train",
            str(config),
            "--run-dir",
            str(run_dir),
            "--resume",
            "--set",
            "model.embed_dim=16",
            "--set",
            "model.transformer.ffn_dim=32",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "model.embed_dim: checkpoint 32, config 16" in err
    assert "model.transformer.ffn_dim: checkpoint 64, config 32" in err
    assert _snapshot(run_dir) == before
    assert main(["train", str(config), "--run-dir", str(tmp_path / "new"), "--resume"]) == 2
    assert "holds no last.pt" in capsys.readouterr().err


def _bad_corpus(tmp_path: Path, tiny_corpus: Path, kind: str) -> tuple[Path, str]:
    """A copy of the tiny corpus with one defect; returns (data dir, text the error must hold)."""
    data = tmp_path / "data"
    data.mkdir()
    for p in tiny_corpus.iterdir():
        (data / p.name).write_bytes(p.read_bytes())
    train_de = data / "train.de"
    if kind == "mismatch":
        lines = train_de.read_text(encoding="utf-8").splitlines()
        train_de.write_text("\n".join(lines[:-3]) + "\n", encoding="utf-8")
        return data, f"{train_de} has 237"
    if kind == "utf8":
        raw = train_de.read_bytes().split(b"\n")
        raw[4] = b"Die Katze \xff\xfe"
        train_de.write_bytes(b"\n".join(raw))
        return data, f"{train_de}, line 5: invalid UTF-8"
    if kind == "missing":
        (data / "valid.en").unlink()
        return data, f"{data / 'valid.en'}: file not found"
    (data / "train.en").write_bytes(b"")
    return data, f"{data / 'train.en'}: file is empty"


@pytest.mark.parametrize("kind", ["mismatch", "utf8", "missing", "empty"])
def test_bad_data_changes_nothing(
    tmp_path: Path, tiny_corpus: Path, kind: str, capsys: pytest.CaptureFixture
) -> None:
    data, expected = _bad_corpus(tmp_path, tiny_corpus, kind)
    config = _write_config(tmp_path / "c.yaml", data)
    assert main(["train", str(config), "--run-dir", str(tmp_path / "new")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seq2seq train: error:") and expected in err
    assert not (tmp_path / "new").exists()
    # an existing run is not touched either, even with --overwrite
    old = tmp_path / "old"
    old.mkdir()
    (old / "last.pt").write_bytes(b"previous")
    (old / "config.yaml").write_text("previous")
    assert main(["train", str(config), "--run-dir", str(old), "--overwrite"]) == 2
    assert _snapshot(old) == {"config.yaml": b"previous", "last.pt": b"previous"}
