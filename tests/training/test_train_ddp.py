"""Two CPU processes under torchrun (Gloo) equal one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from run_factory import tiny_config, tiny_config_dict

from seq2seq.checkpoint import load_checkpoint
from seq2seq.training.trainer import train

SETTINGS = {
    "precision": "fp32",
    "max_steps": 4,
    "validate_every": 4,
    "log_every": 1,
    "num_alignment_plots": 0,
    "valid_max_sentences": 2,
    "threads": 1,
}


def test_two_processes_match_one_with_the_same_global_batch(
    tmp_path: Path, tiny_corpus: Path
) -> None:
    cfg = tiny_config_dict(tiny_corpus)
    cfg["model"]["dropout"] = 0.0
    cfg["train"].update(SETTINGS, batch_tokens=180)  # per process
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "seq2seq",
            "train",
            str(config),
            "--run-dir",
            str(tmp_path / "ddp"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = tmp_path / "single"
    overrides = [f"train.{k}={v}" for k, v in SETTINGS.items()]
    train(
        tiny_config(
            tiny_corpus, overrides=[*overrides, "model.dropout=0.0", "train.batch_tokens=360"]
        ),
        single,
    )
    _check_same_global_batches(single)
    a, b = load_checkpoint(tmp_path / "ddp" / "last.pt"), load_checkpoint(single / "last.pt")
    assert a["step"] == b["step"] == 4
    assert a["rng"]["world_size"] == 2 and len(a["rng"]["ranks"]) == 2
    for name, tensor in b["model"].items():
        if name.endswith("k_proj.bias"):
            # Softmax ignores a bias shared by all keys: the exact gradient is 0, the computed
            # one is rounding noise that Adam normalises to full-size steps, so it cannot agree.
            continue
        torch.testing.assert_close(a["model"][name], tensor, rtol=1e-5, atol=1e-5, msg=name)
    lines = lambda run: [  # noqa: E731
        r
        for r in map(yaml.safe_load, (run / "metrics.jsonl").read_text().splitlines())
        if r["split"] == "train"
    ]
    for x, y in zip(lines(tmp_path / "ddp"), lines(single), strict=True):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-5)
    assert not list((tmp_path / "ddp").glob("*.tmp*"))


def _check_same_global_batches(run_dir: Path) -> None:
    """The premise: 2 x 180 tokens and 1 x 360 tokens cut this corpus into the same batches."""
    from seq2seq.data import TokenBatchSampler
    from seq2seq.data.prepared import PreparedData

    src_lengths, tgt_lengths = PreparedData(run_dir / "prepared").tensor_lengths()
    one, two = (
        TokenBatchSampler(
            src_lengths=src_lengths,
            tgt_lengths=tgt_lengths,
            batch_tokens=tokens,
            seed=1,
            world_size=world,
        ).global_batches(0)
        for tokens, world in ((360, 1), (180, 2))
    )
    assert [b.tolist() for b in one] == [b.tolist() for b in two]
