"""Attention against an independent float64 reference, fused vs explicit, gradients, bf16."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import seq2seq.attention.kernel as kernel
from seq2seq.attention import build_attention


def ref_pair_score(formula: str, score, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """score(q, k) of one query vector and one raw key vector, from the paper formulas."""
    if formula == "dot":
        return (q * k).sum()
    if formula == "scaled_dot":
        return (q * k).sum() / math.sqrt(q.numel())
    if formula == "general":  # q^T W k
        return q @ (score.weight.weight @ k)
    if formula == "additive":  # v^T tanh(W_q q + W_k k + b)
        hidden = score.query_proj.weight @ q + score.key_proj.weight @ k + score.key_proj.bias
        return score.v @ torch.tanh(hidden)
    raise AssertionError(formula)


def ref_head(formula, score, q, k, v, allowed):
    """One head of one batch entry: q [Tq, d], k [Tk, d'], v [Tk, dv], allowed [Tq, Tk]."""
    scores = torch.tensor(
        [[float(ref_pair_score(formula, score, qi, kj)) for kj in k] for qi in q],
        dtype=torch.float64,
    )
    weights = torch.zeros_like(scores)
    for i in range(len(q)):
        if allowed[i].any():
            top = scores[i][allowed[i]].max()
            e = torch.exp(scores[i] - top) * allowed[i]
            weights[i] = e / e.sum()
    return weights @ v, weights


def reference(module, formula, q, k, v, mask=None):
    """float64 context [B, Tq, out] and weights [B, H, Tq, Tk] computed loop by loop."""
    module = copy.deepcopy(module).double()
    q, k, v = q.double(), k.double(), v.double()
    batch, tq, tk = q.shape[0], q.shape[1], k.shape[1]
    allowed = torch.ones(batch, tq, tk, dtype=torch.bool) if mask is None else mask
    allowed = allowed.expand(batch, tq, tk)
    heads = module.num_heads
    contexts, weights = [], []
    with torch.no_grad():
        for b in range(batch):
            qb, kb, vb = q[b], k[b], v[b]
            if module.q_proj is not None:
                qb = qb @ module.q_proj.weight.T + module.q_proj.bias
                kb = kb @ module.k_proj.weight.T + module.k_proj.bias
                vb = vb @ module.v_proj.weight.T + module.v_proj.bias
            per_head = [
                ref_head(formula, module.score, qh, kh, vh, allowed[b])
                for qh, kh, vh in zip(*(x.chunk(heads, dim=-1) for x in (qb, kb, vb)), strict=True)
            ]
            ctx = torch.cat([c for c, _ in per_head], dim=-1)
            if module.out_proj is not None:
                ctx = ctx @ module.out_proj.weight.T + module.out_proj.bias
                ctx = ctx * allowed[b].any(-1, keepdim=True)
            contexts.append(ctx)
            weights.append(torch.stack([w for _, w in per_head]))
    return torch.stack(contexts), torch.stack(weights)


@pytest.mark.parametrize("need_weights", [True, False])
def test_matches_float64_reference(spec, make, inputs, masks, formula, need_weights):
    module, dims = make(spec)
    q, k, v = inputs(dims)
    mask = masks(2, 3, 4)
    context, weights = module(q, k, v, mask=mask, need_weights=need_weights)
    ref_context, ref_weights = reference(module, formula(spec), q, k, v, mask)
    assert context.shape == (2, 3, module.output_dim)
    torch.testing.assert_close(context, ref_context, atol=1e-12, rtol=1e-10)
    if need_weights:
        assert weights.shape == (2, module.num_heads, 3, 4)
        torch.testing.assert_close(weights, ref_weights, atol=1e-12, rtol=1e-10)
    else:
        assert weights is None


def test_float32_matches_reference_without_mask(spec, make, inputs, formula):
    module, dims = make(spec, dtype=torch.float32)
    q, k, v = inputs(dims, dtype=torch.float32, tq=5, tk=7)
    ref_context, ref_weights = reference(module, formula(spec), q, k, v)
    for need_weights in (False, True):
        context, weights = module(q, k, v, need_weights=need_weights)
        assert context.dtype == torch.float32
        torch.testing.assert_close(context.double(), ref_context, atol=1e-5, rtol=1e-5)
    assert weights.dtype == torch.float32
    torch.testing.assert_close(weights.double(), ref_weights, atol=1e-6, rtol=1e-5)


def test_hand_computed_dot_attention():
    attn = build_attention({"type": "dot"}, 2, 2)
    query = torch.tensor([[[1.0, 0.0]]])  # [1, 1, 2]
    keys = torch.tensor([[[0.0, 5.0], [math.log(3.0), 0.0]]])  # scores 0 and ln 3
    values = torch.tensor([[[4.0, 0.0], [0.0, 8.0]]])
    context, weights = attn(query, keys, values, need_weights=True)
    torch.testing.assert_close(weights, torch.tensor([[[[0.25, 0.75]]]]))
    torch.testing.assert_close(context, torch.tensor([[[1.0, 6.0]]]))


def _count_sdpa(monkeypatch) -> list[int]:
    calls = [0]
    real = kernel.F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(kernel.F, "scaled_dot_product_attention", counting)
    return calls


@pytest.mark.parametrize("with_mask", [True, False])
def test_fused_equals_explicit(spec, make, inputs, masks, formula, with_mask, monkeypatch):
    module, dims = make(spec, dtype=torch.float32)
    fused = formula(spec) != "additive"
    assert (module.fused_scale is not None) == fused
    q, k, v = inputs(dims, batch=3, tq=17, tk=23, dtype=torch.float32)
    mask = masks(3, 17, 23) if with_mask else None
    calls = _count_sdpa(monkeypatch)
    explicit, weights = module(q, k, v, mask=mask, need_weights=True)
    assert calls[0] == 0 and weights is not None
    context, _ = module(q, k, v, mask=mask, need_weights=False)
    assert calls[0] == (1 if fused else 0)
    torch.testing.assert_close(context, explicit, atol=1e-5, rtol=1e-5)


def test_cpu_inference_takes_the_explicit_path(spec, make, inputs, masks, monkeypatch):
    """On the CPU without autograd the explicit products run instead of SDPA (they are faster
    there), with the fused path's result."""
    module, dims = make(spec, dtype=torch.float32)
    q, k, v = inputs(dims, batch=3, tq=5, tk=23, dtype=torch.float32)
    mask = masks(3, 5, 23)
    calls = _count_sdpa(monkeypatch)
    fused, _ = module(q, k, v, mask=mask)  # autograd records: SDPA where the score allows
    assert calls[0] == (1 if module.fused_scale is not None else 0)
    with torch.inference_mode():
        explicit, weights = module(q, k, v, mask=mask)
    assert calls[0] == (1 if module.fused_scale is not None else 0) and weights is None
    torch.testing.assert_close(explicit, fused, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("need_weights", [True, False])
def test_gradcheck(spec, make, inputs, masks, need_weights):
    module, dims = make(spec)
    q, k, v = (x.requires_grad_() for x in inputs(dims, tq=2, tk=3))
    mask = masks(2, 2, 3, empty_row=None)

    def fn(q, k, v):
        return module(q, k, v, mask=mask, need_weights=need_weights)[0]

    assert torch.autograd.gradcheck(fn, (q, k, v), eps=1e-6, atol=1e-6)
    module.zero_grad()
    fn(q, k, v).sum().backward()
    params = [p for p in module.parameters() if p.grad is not None]
    assert len(params) == len(list(module.parameters()))


@pytest.mark.parametrize("need_weights", [True, False])
def test_bf16_autocast(spec, make, inputs, masks, need_weights):
    module, dims = make(spec, dtype=torch.float32)
    q, k, v = inputs(dims, batch=2, tq=6, tk=9, dtype=torch.float32)
    mask = masks(2, 6, 9)
    expected, _ = module(q, k, v, mask=mask)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        context, weights = module(q, k, v, mask=mask, need_weights=need_weights)
    assert torch.isfinite(context).all()
    torch.testing.assert_close(context.float(), expected, atol=0.08, rtol=0.05)
    assert (context[0, 1] == 0).all()  # the fully masked row
    if need_weights:
        assert weights.dtype == torch.float32  # softmax statistics kept in float32
        sums = weights.sum(-1)[:, :, [0, 2, 3, 4, 5]]
        torch.testing.assert_close(sums, torch.ones_like(sums))
