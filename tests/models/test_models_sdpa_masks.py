"""What the Transformer hands to SDPA: masks only where they change something.

On CUDA any materialised mask rules out the flash kernels, so decoder self-attention must be
``is_causal=True`` without a mask, a decoding step must pass no mask, and the encoder
self-attention and cross-attention must get the padding mask only when the batch has padding.
A spy on ``F.scaled_dot_product_attention`` in the kernel module records every call.
"""

from __future__ import annotations

import pytest
import torch
from models_util import make_model, random_batch, step_through, tiny_config

import seq2seq.attention.kernel as kernel
from seq2seq.vocab import PAD_ID

LAYERS = 2  # tiny_config: 2 encoder and 2 decoder layers


@pytest.fixture
def sdpa_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, bool]]:
    """(has a mask, is_causal) of every SDPA call, in call order."""
    calls: list[tuple[bool, bool]] = []
    real = kernel.F.scaled_dot_product_attention

    def recording(*args, **kwargs):
        calls.append((kwargs.get("attn_mask") is not None, bool(kwargs.get("is_causal"))))
        return real(*args, **kwargs)

    monkeypatch.setattr(kernel.F, "scaled_dot_product_attention", recording)
    return calls


def _unpadded(src: torch.Tensor, tgt_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row 0 of random_batch is the only one without padding."""
    return src[:1], tgt_in[:1]


def test_forward_without_padding_passes_no_mask(sdpa_calls):
    model = make_model(tiny_config("transformer", attention=("scaled_dot", 2)))
    src, tgt_in = _unpadded(*random_batch())
    assert not (src == PAD_ID).any()
    model(src, tgt_in)
    encoder = [(False, False)] * LAYERS
    decoder = [(False, True), (False, False)] * LAYERS  # per layer: self (causal), cross
    assert sdpa_calls == encoder + decoder


def test_forward_with_padding_masks_only_the_source(sdpa_calls):
    model = make_model(tiny_config("transformer", attention=("scaled_dot", 2)))
    src, tgt_in = random_batch()
    assert (src == PAD_ID).any() and (tgt_in == PAD_ID).any()
    model(src, tgt_in)
    encoder = [(True, False)] * LAYERS
    decoder = [(False, True), (True, False)] * LAYERS
    assert sdpa_calls == encoder + decoder


@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
def test_steps_pass_no_causal_mask(sdpa_calls, padded):
    model = make_model(tiny_config("transformer", attention=("scaled_dot", 2)))
    src, tgt_in = random_batch() if padded else _unpadded(*random_batch())
    step_through(model, src, tgt_in, need_weights=False)
    steps = tgt_in.shape[1]
    encoder = [(padded, False)] * LAYERS
    decoder = [(False, False), (padded, False)] * LAYERS * steps
    assert sdpa_calls == encoder + decoder


def test_fused_decoder_equals_explicit_decoder(sdpa_calls):
    """The fused path (is_causal, no masks) and the explicit one (materialised masks) agree."""
    model = make_model(tiny_config("transformer", attention=("scaled_dot", 2)))
    for src, tgt_in in (random_batch(seed=5), _unpadded(*random_batch(seed=5))):
        fused, _ = model(src, tgt_in)
        explicit, _ = model(src, tgt_in, need_weights=True)
        torch.testing.assert_close(fused, explicit, rtol=0.0, atol=1e-12)


def test_unpadded_source_gives_the_same_outputs_as_a_masked_one():
    """Dropping the all-True mask changes nothing: encoder states, stepping and logits."""
    model = make_model(tiny_config("transformer", attention=("general", 2)))
    src, tgt_in = _unpadded(*random_batch(seed=7))
    encoded = model.encode(src)
    assert encoded.src_padded is False and model.encode(random_batch()[0]).src_padded is True
    masked = encoded._replace(src_padded=True)  # the source mask (all True) passed anyway
    state, masked_state = model.init_state(encoded), model.init_state(masked)
    assert state.src_mask is None and masked_state.src_mask is not None
    for t in range(tgt_in.shape[1]):
        logits, state, _ = model.step(tgt_in[:, t], state)
        expected, masked_state, _ = model.step(tgt_in[:, t], masked_state)
        torch.testing.assert_close(logits, expected, rtol=0.0, atol=1e-12)
