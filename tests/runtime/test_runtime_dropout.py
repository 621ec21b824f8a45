"""seq2seq.runtime.dropout: the same distribution as nn.Dropout, through a cheaper CPU mask."""

from __future__ import annotations

import pytest
import torch

from seq2seq.runtime.dropout import Dropout, dropout


def test_eval_mode_and_zero_rate_are_the_identity():
    x = torch.randn(8, 16)
    module = Dropout(0.3).eval()
    assert module(x) is x
    assert dropout(x, 0.0, training=True) is x


def test_kept_elements_are_scaled_and_the_drop_rate_is_p():
    torch.manual_seed(0)
    p = 0.3
    x = torch.ones(400, 1000)
    y = Dropout(p).train()(x)
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    # 400k Bernoulli draws: the standard error of the rate is 0.0007
    assert abs((~kept).float().mean().item() - p) < 0.005
    assert abs(y.mean().item() - 1.0) < 0.01  # the expectation is preserved


def test_gradient_is_the_mask():
    torch.manual_seed(1)
    x = torch.randn(50, 60, dtype=torch.float64, requires_grad=True)
    y = dropout(x, 0.5)
    y.sum().backward()
    mask = (y / x).detach()  # 0 or 2 where kept
    assert set(mask.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(x.grad, mask)


def test_masks_differ_between_calls_and_follow_the_seed():
    x = torch.ones(100, 100)
    torch.manual_seed(2)
    a, b = dropout(x, 0.5), dropout(x, 0.5)
    torch.manual_seed(2)
    assert not torch.equal(a, b) and torch.equal(dropout(x, 0.5), a)


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_rate_out_of_range_is_refused(p):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Dropout(p)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        dropout(torch.ones(2), p)
