"""seq2seq.runtime.precision: one vocabulary for training and decoding, errors naming the option."""

from __future__ import annotations

import logging

import pytest
import torch

from seq2seq.runtime import precision as precision_module
from seq2seq.runtime.precision import DECODE_PRECISIONS, resolve_precision


def _fake_gpu(monkeypatch: pytest.MonkeyPatch, *, native_bf16: bool) -> None:
    monkeypatch.setattr(precision_module, "cuda_has_native_bf16", lambda: native_bf16)


def test_decode_auto_falls_back_to_fp32_where_training_takes_fp16(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gpu = torch.device("cuda", 0)
    _fake_gpu(monkeypatch, native_bf16=False)
    assert resolve_precision("auto", gpu).name == "fp16"
    decode = resolve_precision("auto", gpu, allowed=DECODE_PRECISIONS, option="precision")
    assert (decode.name, decode.dtype, decode.uses_scaler) == ("fp32", torch.float32, False)
    with pytest.raises(ValueError, match=r"^precision: 'bf16' needs .* use precision=fp32 or auto"):
        resolve_precision("bf16", gpu, allowed=DECODE_PRECISIONS, option="precision")
    _fake_gpu(monkeypatch, native_bf16=True)
    decode = resolve_precision("auto", gpu, allowed=DECODE_PRECISIONS, option="precision")
    assert (decode.name, decode.dtype) == ("bf16", torch.bfloat16)


def test_decode_refuses_fp16_naming_the_option() -> None:
    with pytest.raises(
        ValueError, match=r"^precision: got 'fp16', expected one of auto, fp32, bf16"
    ):
        resolve_precision(
            "fp16", torch.device("cpu"), allowed=DECODE_PRECISIONS, option="precision"
        )


def test_emulated_cpu_bf16_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="seq2seq.runtime.precision"):
        chosen = resolve_precision("bf16", torch.device("cpu"), option="precision")
    assert chosen.dtype == torch.bfloat16
    assert "precision: this CPU has no native bf16" in caplog.text
    with chosen.autocast():
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
