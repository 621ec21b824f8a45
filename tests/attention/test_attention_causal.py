"""``causal=True``: the same attention as an explicit causal mask, without a mask on the fused path.

The fused path hands causality to SDPA as ``is_causal`` (no mask tensor: on CUDA a mask rules
out the flash kernels); the explicit path and causal calls with a padding mask materialise it.
"""

from __future__ import annotations

import pytest
import torch
from test_attention_math import reference

import seq2seq.attention.kernel as kernel
from seq2seq.attention import causal_mask

T = 6
BOTH_PATHS = pytest.mark.parametrize("need_weights", [False, True], ids=["fused", "explicit"])


def _record_sdpa(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Spy on the kernel's SDPA calls: one dict of keyword arguments per call."""
    calls: list[dict] = []
    real = kernel.F.scaled_dot_product_attention

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(kernel.F, "scaled_dot_product_attention", recording)
    return calls


@BOTH_PATHS
def test_causal_flag_equals_causal_mask_and_reference(
    spec, make, formula, need_weights, monkeypatch
):
    module, dims = make(spec, self_attention=True)  # float64
    x = torch.randn(2, T, dims[0], dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    calls = _record_sdpa(monkeypatch)
    flagged, weights = module(x, x, x, causal=True, need_weights=need_weights)
    fused = module.fused_scale is not None and not need_weights
    if fused:
        (call,) = calls
        assert call["is_causal"] is True and call.get("attn_mask") is None
    else:
        assert calls == []
    masked, masked_weights = module(x, x, x, mask=causal_mask(T), need_weights=True)
    ref_context, ref_weights = reference(module, formula(spec), x, x, x, causal_mask(T))
    torch.testing.assert_close(flagged, ref_context, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(flagged, masked, atol=1e-12, rtol=1e-10)
    if need_weights:
        torch.testing.assert_close(weights, ref_weights, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(weights, masked_weights, atol=0.0, rtol=0.0)


@BOTH_PATHS
def test_causal_flag_with_a_key_mask_folds_both(spec, make, formula, need_weights, monkeypatch):
    """Keys 0-1 of sentence 1 are masked: its rows 0 and 1 have no key left and give zeros."""
    module, dims = make(spec, self_attention=True)
    x = torch.randn(2, T, dims[0], dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    keys = torch.ones(2, 1, T, dtype=torch.bool)
    keys[1, 0, :2] = False
    calls = _record_sdpa(monkeypatch)
    context, _ = module(x, x, x, mask=keys, causal=True, need_weights=need_weights)
    assert all(not call.get("is_causal") and call["attn_mask"] is not None for call in calls)
    both = keys & causal_mask(T)  # [2, T, T]
    ref_context, _ = reference(module, formula(spec), x, x, x, both)
    torch.testing.assert_close(context, ref_context, atol=1e-12, rtol=1e-10)
    assert (context[1, :2] == 0).all()


def test_causal_needs_as_many_queries_as_keys(make):
    for need_weights in (False, True):
        module, dims = make({"type": "scaled_dot", "heads": 2}, self_attention=True)
        q = torch.randn(1, 2, dims[0], dtype=torch.float64)
        kv = torch.randn(1, 3, dims[0], dtype=torch.float64)
        with pytest.raises(ValueError, match="as many queries as keys"):
            module(q, kv, kv, causal=True, need_weights=need_weights)
