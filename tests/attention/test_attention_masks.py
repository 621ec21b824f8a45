"""Masking, causality, permutation properties and dropout of every attention spec."""

from __future__ import annotations

import pytest
import torch

from seq2seq.attention import build_attention, causal_mask

BOTH_PATHS = pytest.mark.parametrize("need_weights", [True, False], ids=["explicit", "fused"])


@BOTH_PATHS
def test_masked_keys_get_zero_weight(spec, make, inputs, masks, need_weights):
    module, dims = make(spec, dtype=torch.float32)
    q, k, v = (x.requires_grad_() for x in inputs(dims, batch=3, tq=5, tk=6, dtype=torch.float32))
    mask = masks(3, 5, 6)  # row (0, 1) has no key at all
    context, _ = module(q, k, v, mask=mask, need_weights=need_weights)
    _, weights = module(q, k, v, mask=mask, need_weights=True)
    assert torch.isfinite(context).all() and torch.isfinite(weights).all()
    assert (weights[~mask[:, None].expand_as(weights)] == 0).all()  # exactly zero
    has_keys = mask.any(-1)[:, None].expand(weights.shape[:-1])
    sums = weights.sum(-1)
    torch.testing.assert_close(sums[has_keys], torch.ones_like(sums[has_keys]))
    assert (weights[0, :, 1] == 0).all() and (context[0, 1] == 0).all()
    assert (context[has_keys[:, 0]].abs().sum(-1) > 0).all()
    context.sum().backward()
    for x in (q, k, v):
        assert torch.isfinite(x.grad).all()
    assert (q.grad[0, 1] == 0).all()  # the empty row does not depend on its query


@BOTH_PATHS
def test_mask_broadcast_forms(spec, make, inputs, need_weights):
    module, dims = make(spec)
    q, k, v = inputs(dims, batch=2, tq=3, tk=5)
    key_padding = torch.tensor([[True] * 5, [True, True, False, True, False]])  # [B, Tk]
    full = key_padding[:, None, :].expand(2, 3, 5)
    expected, _ = module(q, k, v, mask=full.clone(), need_weights=need_weights)
    got, _ = module(q, k, v, mask=key_padding[:, None, :], need_weights=need_weights)
    torch.testing.assert_close(got, expected)
    shared = torch.tensor([True, False, True, True, False])  # [Tk], same for every query
    for form in (shared, shared[None, :], shared[None, None, :]):
        got, _ = module(q, k, v, mask=form, need_weights=need_weights)
        expected, _ = module(q, k, v, mask=shared.expand(2, 3, 5).clone())
        torch.testing.assert_close(got, expected)


@BOTH_PATHS
def test_permuting_keys_and_values_together(spec, make, inputs, masks, need_weights):
    module, dims = make(spec)
    q, k, v = inputs(dims, batch=2, tq=4, tk=6)
    mask = masks(2, 4, 6)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    context, weights = module(q, k, v, mask=mask, need_weights=True)
    got, got_weights = module(q, k[:, perm], v[:, perm], mask=mask[..., perm], need_weights=True)
    torch.testing.assert_close(got, context)
    torch.testing.assert_close(got_weights, weights[..., perm])
    fused_or_not, _ = module(
        q, k[:, perm], v[:, perm], mask=mask[..., perm], need_weights=need_weights
    )
    torch.testing.assert_close(fused_or_not, context)


@BOTH_PATHS
def test_permuting_queries_permutes_outputs(spec, make, inputs, masks, need_weights):
    module, dims = make(spec)
    q, k, v = inputs(dims, batch=2, tq=5, tk=4)
    mask = masks(2, 5, 4)
    perm = torch.tensor([2, 4, 0, 3, 1])
    context, weights = module(q, k, v, mask=mask, need_weights=True)
    got, _ = module(q[:, perm], k, v, mask=mask[:, perm], need_weights=need_weights)
    torch.testing.assert_close(got, context[:, perm])
    _, got_weights = module(q[:, perm], k, v, mask=mask[:, perm], need_weights=True)
    torch.testing.assert_close(got_weights, weights[:, :, perm])


def test_causal_mask_values():
    expected = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    assert torch.equal(causal_mask(3), expected)
    assert causal_mask(0).shape == (0, 0)


@BOTH_PATHS
def test_causal_outputs_ignore_the_future(spec, make, need_weights):
    module, dims = make(spec, self_attention=True)
    x = torch.randn(2, 6, dims[0], dtype=torch.float64)
    mask = causal_mask(6)
    before, _ = module(x, x, x, mask=mask, need_weights=need_weights)
    for t in range(5):
        y = x.clone()
        y[:, t + 1 :] += 3.0 * torch.randn_like(y[:, t + 1 :])
        after, _ = module(y, y, y, mask=mask, need_weights=need_weights)
        torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], atol=1e-12, rtol=0)
        assert not torch.allclose(after[:, t + 1 :], before[:, t + 1 :])
    _, weights = module(x, x, x, mask=mask, need_weights=True)
    assert (weights.triu(diagonal=1) == 0).all()


@pytest.mark.parametrize("score_type", ["scaled_dot", "additive"])
@pytest.mark.parametrize("heads", [None, 2])
@BOTH_PATHS
def test_attention_dropout(score_type, heads, need_weights):
    torch.manual_seed(0)
    attn = build_attention({"type": score_type, "heads": heads, "dropout": 0.5}, 4, 4)
    q, k, v = torch.randn(1, 2, 4), torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    expected, _ = attn.eval()(q, k, v)
    attn.train()
    n = 4000  # one batch of n copies: every copy draws its own dropout mask
    repeat = [x.expand(n, -1, -1) for x in (q, k, v)]
    samples, _ = attn(*repeat, need_weights=need_weights)
    assert not torch.allclose(samples[0], expected)  # dropout is active in training mode
    torch.testing.assert_close(samples.mean(0), expected[0], atol=0.08, rtol=0.0)  # unbiased
    if need_weights:
        _, weights = attn(q, k, v, need_weights=True)  # weights are reported before dropout
        torch.testing.assert_close(weights.sum(-1), torch.ones(1, attn.num_heads, 2))
    attn.eval()
    torch.testing.assert_close(attn(q, k, v)[0], expected, atol=0.0, rtol=0.0)
