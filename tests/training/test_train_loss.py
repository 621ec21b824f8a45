"""Label-smoothed cross entropy against hand-computed values and a float64 reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seq2seq.training.loss import label_smoothed_cross_entropy
from seq2seq.vocab import PAD_ID


def test_hand_computed_value() -> None:
    # V = 4, one real token with logits [0, 0, ln 2, 0] and target 2; one padded position.
    logits = torch.tensor([[[0.0, 0.0, math.log(2.0), 0.0], [5.0, 1.0, 2.0, 3.0]]])
    target = torch.tensor([[2, PAD_ID]])
    # softmax = [1/5, 1/5, 2/5, 1/5]: nll = ln(5/2); uniform part = mean(-log p) over 4 classes
    nll = math.log(5 / 2)
    uniform = (3 * math.log(5) + math.log(5 / 2)) / 4
    loss, n = label_smoothed_cross_entropy(logits, target, smoothing=0.2)
    assert n == 1
    assert loss.item() == pytest.approx(0.8 * nll + 0.2 * uniform, abs=1e-6)
    plain, _ = label_smoothed_cross_entropy(logits, target, smoothing=0.0)
    assert plain.item() == pytest.approx(nll, abs=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_matches_float64_reference_and_ignores_padding(smoothing: float) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 11, generator=g) * 3
    target = torch.randint(1, 11, (3, 5), generator=g)
    target[0, 3:] = PAD_ID
    target[2, 1:] = PAD_ID
    ref = F.cross_entropy(
        logits.double().reshape(-1, 11),
        target.reshape(-1),
        ignore_index=PAD_ID,
        label_smoothing=smoothing,
        reduction="sum",
    )
    loss, n = label_smoothed_cross_entropy(logits, target, smoothing)
    assert n == int((target != PAD_ID).sum()) == 9
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    # what the padded positions hold does not matter
    logits2 = logits.clone()
    logits2[target == PAD_ID] = 1e4
    assert label_smoothed_cross_entropy(logits2, target, smoothing)[0].item() == loss.item()


def test_bf16_logits_are_reduced_in_float32() -> None:
    logits = (torch.randn(2, 4, 50) * 4).to(torch.bfloat16)
    target = torch.randint(1, 50, (2, 4))
    loss, _ = label_smoothed_cross_entropy(logits, target, 0.1)
    ref = F.cross_entropy(
        logits.double().reshape(-1, 50), target.reshape(-1), label_smoothing=0.1, reduction="sum"
    )
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)


def test_gradient_matches_reference() -> None:
    logits = torch.randn(2, 3, 7, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[1, 2, PAD_ID], [4, 5, 6]])
    loss, _ = label_smoothed_cross_entropy(logits, target, 0.1)
    loss.backward()
    ref_logits = logits.detach().clone().requires_grad_(True)
    F.cross_entropy(
        ref_logits.reshape(-1, 7),
        target.reshape(-1),
        ignore_index=PAD_ID,
        label_smoothing=0.1,
        reduction="sum",
    ).backward()
    torch.testing.assert_close(logits.grad, ref_logits.grad)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"label smoothing must be in \[0, 1\)"):
        label_smoothed_cross_entropy(torch.zeros(1, 2, 3), torch.ones(1, 2, dtype=torch.long), 1.0)
    with pytest.raises(ValueError, match="expected logits"):
        label_smoothed_cross_entropy(torch.zeros(1, 2, 3), torch.ones(1, 3, dtype=torch.long))
