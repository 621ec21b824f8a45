"""Device, precision and progress helpers."""

from __future__ import annotations

import pytest
import torch

from seq2seq.training import device as device_module
from seq2seq.training.device import configure_threads, resolve_device
from seq2seq.training.precision import resolve_precision
from seq2seq.training.progress import format_duration, time_left
from seq2seq.training.rundir import config_differences


def test_cpu_auto_precision_follows_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(device_module, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    monkeypatch.setattr(
        "seq2seq.training.precision.cpu_has_native_bf16", device_module.cpu_has_native_bf16
    )
    assert resolve_precision("auto", cpu).dtype == torch.bfloat16
    monkeypatch.setattr(device_module, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert resolve_precision("auto", cpu).name == "fp32"
    fp16 = resolve_precision("fp16", cpu)
    assert fp16.uses_scaler and fp16.grad_scaler().is_enabled()
    assert not resolve_precision("bf16", cpu).grad_scaler().is_enabled()
    with pytest.raises(ValueError, match=r"train\.precision: got 'fp8'"):
        resolve_precision("fp8", cpu)


def test_autocast_runs_matmuls_in_bf16_and_fp32_is_untouched() -> None:
    cpu = torch.device("cpu")
    a = torch.randn(4, 4)
    with resolve_precision("bf16", cpu).autocast():
        assert (a @ a).dtype == torch.bfloat16
    with resolve_precision("fp32", cpu).autocast():
        assert (a @ a).dtype == torch.float32


def test_device_resolution_and_threads() -> None:
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")
    before = torch.get_num_threads()
    try:
        assert configure_threads(1) == 1 and torch.get_num_threads() == 1
        assert configure_threads(None, processes_per_node=10**6) == 1
    finally:
        torch.set_num_threads(before)


def test_format_duration_and_time_left() -> None:
    assert format_duration(7) == "7s"
    assert format_duration(65) == "1m05s"
    assert format_duration(3725) == "1h02m05s"
    # 10 steps in 20 s: 2 s/step, 90 steps to go = 180 s, but only 100 s of budget left
    assert time_left(step=10, start_step=0, elapsed=20, max_steps=100, max_seconds=None) == 180
    assert time_left(step=10, start_step=0, elapsed=20, max_steps=100, max_seconds=120) == 100
    assert time_left(step=0, start_step=0, elapsed=0, max_steps=None, max_seconds=None) is None


def test_config_differences_name_keys() -> None:
    old = {"model": {"embed_dim": 32, "rnn": {"hidden_dim": 8}}, "data": {"tokenizer": {"a": 1}}}
    new = {"model": {"embed_dim": 64, "rnn": {"hidden_dim": 8}}, "data": {"tokenizer": {"a": 2}}}
    assert config_differences(new, old, "model") == ["model.embed_dim: checkpoint 32, config 64"]
    assert config_differences(new, old, "data.tokenizer") == [
        "data.tokenizer.a: checkpoint 1, config 2"
    ]
