"""Device, precision and progress helpers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from seq2seq.runtime import device as device_module
from seq2seq.runtime.device import (
    configure_threads,
    peak_memory_mib,
    resolve_device,
    set_tf32,
)
from seq2seq.runtime.precision import resolve_precision
from seq2seq.training.progress import format_duration, time_left
from seq2seq.training.rundir import config_differences


def test_cpu_auto_precision_follows_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(device_module, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    monkeypatch.setattr(
        "seq2seq.runtime.precision.cpu_has_native_bf16", device_module.cpu_has_native_bf16
    )
    assert resolve_precision("auto", cpu).dtype == torch.bfloat16
    monkeypatch.setattr(device_module, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert resolve_precision("auto", cpu).name == "fp32"
    fp16 = resolve_precision("fp16", cpu)
    assert fp16.uses_scaler and fp16.grad_scaler().is_enabled()
    assert not resolve_precision("bf16", cpu).grad_scaler().is_enabled()
    with pytest.raises(ValueError, match=r"train\.precision: got 'fp8'"):
        resolve_precision("fp8", cpu)


def _fake_gpu(monkeypatch: pytest.MonkeyPatch, *, native_bf16: bool) -> list[dict]:
    """A GPU that emulates bf16 and has it natively only when ``native_bf16``; records the
    keyword arguments of every ``torch.cuda.is_bf16_supported`` call."""
    calls: list[dict] = []

    def is_bf16_supported(**kwargs) -> bool:
        calls.append(kwargs)
        return native_bf16 or kwargs.get("including_emulation", True)

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    return calls


def test_cuda_auto_precision_is_bf16_only_where_native(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = torch.device("cuda", 0)
    calls = _fake_gpu(monkeypatch, native_bf16=True)
    auto = resolve_precision("auto", gpu)
    assert (auto.name, auto.dtype, auto.uses_scaler) == ("bf16", torch.bfloat16, False)
    assert resolve_precision("bf16", gpu).name == "bf16"
    assert calls and all(call == {"including_emulation": False} for call in calls)

    _fake_gpu(monkeypatch, native_bf16=False)  # e.g. a T4 or V100: bf16 only emulated
    auto = resolve_precision("auto", gpu)
    assert (auto.name, auto.dtype, auto.uses_scaler) == ("fp16", torch.float16, True)
    with pytest.raises(ValueError, match=r"train\.precision: 'bf16' needs a GPU with native bf16"):
        resolve_precision("bf16", gpu)
    assert resolve_precision("fp16", gpu).uses_scaler
    assert resolve_precision("fp32", gpu).dtype == torch.float32


def test_translation_precision_uses_native_bf16_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from seq2seq.runtime.precision import DECODE_PRECISIONS

    def decode_precision(name, device):
        chosen = resolve_precision(name, device, allowed=DECODE_PRECISIONS, option="precision")
        return None if chosen.name == "fp32" else chosen.dtype

    gpu = torch.device("cuda", 0)
    _fake_gpu(monkeypatch, native_bf16=False)
    assert decode_precision("auto", gpu) is None
    with pytest.raises(ValueError, match="native bf16"):
        decode_precision("bf16", gpu)
    _fake_gpu(monkeypatch, native_bf16=True)
    assert decode_precision("auto", gpu) == torch.bfloat16


@pytest.fixture
def tf32_flags() -> Iterator[None]:
    """Restores the process-wide fp32 precision flags that set_tf32 changes."""
    flags = (
        torch.backends.cuda.matmul,
        torch.backends.cudnn.conv,
        torch.backends.cudnn.rnn,
    )
    before = [f.fp32_precision for f in flags]
    yield
    for f, value in zip(flags, before, strict=True):
        f.fp32_precision = value


def _tf32_state() -> tuple[str, str, str]:
    return (
        torch.backends.cuda.matmul.fp32_precision,
        torch.backends.cudnn.conv.fp32_precision,
        torch.backends.cudnn.rnn.fp32_precision,
    )


@pytest.mark.usefixtures("tf32_flags")
def test_set_tf32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    before = _tf32_state()
    set_tf32(False)
    assert _tf32_state() == before  # no CUDA: nothing changes
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    set_tf32(True)
    assert _tf32_state() == ("tf32", "tf32", "tf32")
    set_tf32(False)
    assert _tf32_state() == ("ieee", "ieee", "ieee")


def test_peak_memory_mib(monkeypatch: pytest.MonkeyPatch) -> None:
    assert peak_memory_mib(torch.device("cpu")) is None
    assert peak_memory_mib("cpu") is None
    asked = []

    def max_memory_allocated(device):
        asked.append(device)
        return 3 * 2**20 + 2**19

    monkeypatch.setattr(torch.cuda, "max_memory_allocated", max_memory_allocated)
    assert peak_memory_mib("cuda:1") == 3.5
    assert asked == [torch.device("cuda", 1)]


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
