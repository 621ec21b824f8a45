"""SIGINT and SIGTERM during training: the update finishes, last.pt is written, the run resumes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from run_factory import tiny_config, tiny_config_dict

from seq2seq.checkpoint import load_checkpoint
from seq2seq.training.trainer import train


@pytest.mark.parametrize(("kind", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_last_pt_and_the_run_resumes(
    tmp_path: Path, tiny_corpus: Path, kind: signal.Signals, code: int
) -> None:
    cfg = tiny_config_dict(tiny_corpus)
    cfg["train"].update(
        max_steps=100_000, log_every=1, validate_every=100_000, num_alignment_plots=0
    )
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "seq2seq", "train", str(config), "--run-dir", str(run_dir)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = run_dir / "train.log"
    deadline = time.monotonic() + 120
    while not (log.is_file() and "step 3 |" in log.read_text(encoding="utf-8")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(kind)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "--resume" in err and f"{kind.name} received" in err
    saved = load_checkpoint(run_dir / "last.pt")
    assert saved["step"] >= 3
    assert f"at step {saved['step']}:" in err
    assert not list(run_dir.glob(".*.tmp"))
    overrides = ["train.validate_every=100000", "train.num_alignment_plots=0"]
    overrides.append(f"train.max_steps={saved['step'] + 2}")
    result = train(tiny_config(tiny_corpus, overrides=overrides), run_dir, resume=True)
    assert result.step == saved["step"] + 2
