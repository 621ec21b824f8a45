"""The torchrun environment and the process group's settings, checked without a real job."""

from __future__ import annotations

import datetime

import pytest
import torch

from seq2seq.config import ConfigError
from seq2seq.training import distributed
from seq2seq.training.distributed import DistInfo, LaunchError, detect


def test_detect_reads_torchrun_and_names_what_is_missing(monkeypatch: pytest.MonkeyPatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert detect() == DistInfo()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(LaunchError, match="WORLD_SIZE=2 is set but RANK is not"):
        detect()
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(LaunchError, match="RANK='one': expected an integer"):
        detect()
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(LaunchError, match="outside"):
        detect()
    monkeypatch.setenv("RANK", "1")
    assert detect() == DistInfo(rank=1, local_rank=0, world_size=2, local_world_size=2)


def test_the_process_group_gets_the_configured_timeout(monkeypatch: pytest.MonkeyPatch):
    seen = {}
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda **kw: seen.update(kw))
    info = DistInfo(rank=0, world_size=2, local_world_size=2)
    assert distributed.init_process_group(info, torch.device("cpu"), timeout=5400.0)
    assert seen["timeout"] == datetime.timedelta(minutes=90) and seen["backend"] == "gloo"


def test_dist_timeout_is_a_checked_duration(tiny_corpus):
    from run_factory import tiny_config

    assert tiny_config(tiny_corpus).train.dist_timeout == "2h"
    with pytest.raises(ConfigError, match=r"train\.dist_timeout"):
        tiny_config(tiny_corpus, overrides=["train.dist_timeout=soon"])


def test_rank_zeros_error_is_said_once(
    tmp_path, tiny_corpus, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Another process of the job exits with 2 and says nothing: rank 0 reports the error."""
    import yaml
    from run_factory import tiny_config_dict

    from seq2seq.cli import main
    from seq2seq.training import trainer

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict(tiny_corpus)), encoding="utf-8")

    def fails_on_rank_zero(*args, **kwargs):
        raise distributed.RankZeroFailed("rank 0 failed: data/train.en: file not found")

    monkeypatch.setattr(trainer, "train", fails_on_rank_zero)
    assert main(["train", str(config), "--run-dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == ""
