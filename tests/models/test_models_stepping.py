"""Stepping with caches equals the teacher-forced pass; masks, causality and state selection.

Every attention type, plain and multi-head, in every slot of both architectures. Models run in
float64, so stepping and the full pass must agree to rounding error.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from models_util import (
    SRC_VOCAB,
    TGT_VOCAB,
    VARIANTS,
    make_model,
    random_batch,
    step_through,
    tiny_config,
    variant_id,
)

from seq2seq.models.base import beam_rows
from seq2seq.vocab import PAD_ID

EXACT = {"rtol": 0.0, "atol": 1e-10}

RNN_SETUPS = {
    "bahdanau": {"rnn": {"style": "bahdanau"}},
    "bahdanau-nobridge-1layer": {
        "rnn": {"style": "bahdanau", "bridge": "none"},
        "decoder_layers": 1,
        "tie_output": False,
    },
    "luong-feed": {"rnn": {"style": "luong", "input_feeding": True}},
    "luong-nofeed": {"rnn": {"style": "luong", "input_feeding": False}, "tie_output": False},
}
TRANSFORMER_SETUPS = {
    "pre-sinusoidal": {},
    "post-learned-gelu-shared": {
        "transformer": {"norm": "post", "positions": "learned", "activation": "gelu"},
        "share_embeddings": True,
        "tie_output": False,
    },
}
CASES = [
    pytest.param("rnn", variant, setup, id=f"rnn-{name}-{variant_id(variant)}")
    for name, setup in RNN_SETUPS.items()
    for variant in VARIANTS
] + [
    pytest.param("transformer", variant, setup, id=f"transformer-{name}-{variant_id(variant)}")
    for name, setup in TRANSFORMER_SETUPS.items()
    for variant in VARIANTS
]
MIXED_SLOTS = {
    "cross": ("additive", None),
    "encoder_self": ("general", 2),
    "decoder_self": ("dot", None),
}


def _model(arch, variant, setup):
    """Shared embeddings need one vocabulary: then the target side uses the source's."""
    tgt_vocab = SRC_VOCAB if setup.get("share_embeddings") else TGT_VOCAB
    return make_model(tiny_config(arch, attention=variant, **setup), tgt_vocab=tgt_vocab)


def _check_weight_rows(weights, key_mask):
    """Rows sum to one over real keys and put exactly zero on padded keys."""
    key_mask = key_mask[:, None, None, None, :]  # [B, 1, 1, 1, Tk]
    assert (weights.masked_select(~key_mask.expand_as(weights)) == 0).all()
    sums = weights.sum(-1)
    torch.testing.assert_close(sums, torch.ones_like(sums))


@pytest.mark.parametrize(("arch", "variant", "setup"), CASES)
def test_step_equals_forward(arch, variant, setup):
    model = _model(arch, variant, setup)
    src, tgt_in = random_batch()
    batch, tgt_len, src_len = tgt_in.shape[0], tgt_in.shape[1], src.shape[1]
    logits, weights = model(src, tgt_in, need_weights=True)
    step_logits, step_weights = step_through(model, src, tgt_in)
    tgt_vocab = SRC_VOCAB if setup.get("share_embeddings") else TGT_VOCAB
    assert logits.shape == (batch, tgt_len, tgt_vocab)
    torch.testing.assert_close(step_logits, logits, **EXACT)

    assert set(weights) == set(model.slots)
    layers = 1 if arch == "rnn" else 2
    heads = variant[1] or 1
    assert weights["cross"].shape == (batch, layers, heads, tgt_len, src_len)
    _check_weight_rows(weights["cross"], src != PAD_ID)
    for t, step_w in enumerate(step_weights):
        assert set(step_w) == set(model.slots) - {"encoder_self"}
        assert step_w["cross"].shape == (batch, layers, heads, src_len)
        torch.testing.assert_close(step_w["cross"], weights["cross"][:, :, :, t], **EXACT)
        if "decoder_self" in step_w:  # keys so far: Tk = t + 1
            assert step_w["decoder_self"].shape == (batch, layers, heads, t + 1)
            expected = weights["decoder_self"][:, :, :, t, : t + 1]
            torch.testing.assert_close(step_w["decoder_self"], expected, **EXACT)
            assert (weights["decoder_self"][:, :, :, t, t + 1 :] == 0).all()

    encoded = model.encode(src, need_weights=True)
    if arch == "transformer":
        assert weights["encoder_self"].shape == (batch, 2, heads, src_len, src_len)
        torch.testing.assert_close(encoded.weights["encoder_self"], weights["encoder_self"])
        _check_weight_rows(weights["encoder_self"], src != PAD_ID)
    else:
        assert encoded.weights == {}
    # Without need_weights: same logits, no weights.
    plain_logits, no_weights = model(src, tgt_in)
    assert no_weights == {}
    torch.testing.assert_close(plain_logits, logits, rtol=0.0, atol=1e-9)


def test_step_equals_forward_mixed_slots():
    model = make_model(tiny_config("transformer", slots=MIXED_SLOTS))
    src, tgt_in = random_batch(seed=3)
    logits, weights = model(src, tgt_in, need_weights=True)
    step_logits, step_weights = step_through(model, src, tgt_in)
    torch.testing.assert_close(step_logits, logits, **EXACT)
    assert weights["encoder_self"].shape[2] == 2 and weights["cross"].shape[2] == 1
    assert step_weights[-1]["decoder_self"].shape == (3, 2, 1, tgt_in.shape[1])


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_step_equals_forward_float32(arch):
    model = make_model(tiny_config(arch, attention=("scaled_dot", 2)), dtype=torch.float32)
    src, tgt_in = random_batch(seed=1)
    logits, _ = model(src, tgt_in)
    step_logits, _ = step_through(model, src, tgt_in, need_weights=False)
    torch.testing.assert_close(step_logits, logits, rtol=1e-5, atol=1e-5)


PAD_CASES = [
    pytest.param(arch, variant, id=f"{arch}-{variant_id(variant)}")
    for arch in ("rnn", "transformer")
    for variant in VARIANTS
]


@pytest.mark.parametrize(("arch", "variant"), PAD_CASES)
def test_padding_does_not_change_outputs(arch, variant):
    model = make_model(tiny_config(arch, attention=variant))
    src, tgt_in = random_batch(seed=2)
    logits, weights = model(src, tgt_in, need_weights=True)

    more = torch.cat([src, torch.full((src.shape[0], 3), PAD_ID)], dim=1)
    logits_more, weights_more = model(more, tgt_in, need_weights=True)
    torch.testing.assert_close(logits_more, logits, **EXACT)
    src_len = src.shape[1]
    torch.testing.assert_close(weights_more["cross"][..., :src_len], weights["cross"], **EXACT)
    assert (weights_more["cross"][..., src_len:] == 0).all()

    for row in range(src.shape[0]):  # each sentence alone, without any padding
        src_row = src[row][src[row] != PAD_ID][None]
        tgt_row = tgt_in[row][tgt_in[row] != PAD_ID][None]
        alone, _ = model(src_row, tgt_row)
        torch.testing.assert_close(alone[0], logits[row, : tgt_row.shape[1]], **EXACT)


CAUSAL_CASES = [
    pytest.param(arch, variant, id=f"{arch}-{variant_id(variant)}")
    for arch in ("rnn", "transformer")
    for variant in (("additive", None), ("dot", None), ("scaled_dot", 2), ("general", 2))
]


@pytest.mark.parametrize(("arch", "variant"), CAUSAL_CASES)
def test_decoder_is_causal(arch, variant):
    model = make_model(tiny_config(arch, attention=variant))
    src, tgt_in = random_batch(batch=2, src_len=5, tgt_len=6, seed=4)
    tgt_in[1, 4:] = 7  # no padding in the target here
    logits, _ = model(src, tgt_in)
    for k in range(1, tgt_in.shape[1]):
        changed = tgt_in.clone()
        changed[:, k:] = (changed[:, k:] - 3) % (TGT_VOCAB - 4) + 4  # other real tokens
        new_logits, _ = model(src, changed)
        torch.testing.assert_close(new_logits[:, :k], logits[:, :k], **EXACT)
        assert not torch.allclose(new_logits[:, k], logits[:, k])


SELECT_CASES = [
    pytest.param("rnn", {"rnn": {"style": "bahdanau"}}, ("additive", None), id="rnn-bahdanau"),
    pytest.param("rnn", {"rnn": {"style": "luong"}}, ("general", 2), id="rnn-luong-feed"),
    pytest.param(
        "rnn",
        {"rnn": {"style": "luong", "input_feeding": False}},
        ("dot", None),
        id="rnn-luong-nofeed",
    ),
    pytest.param("transformer", {}, ("scaled_dot", 2), id="transformer-mh"),
    pytest.param("transformer", {}, ("additive", None), id="transformer-additive"),
]


@pytest.mark.parametrize(("arch", "setup", "variant"), SELECT_CASES)
def test_state_select(arch, setup, variant):
    model = make_model(tiny_config(arch, attention=variant, **setup))
    src, tgt_in = random_batch(batch=3, src_len=6, tgt_len=5, seed=5)
    logits, _ = model(src, tgt_in)
    state = model.init_state(model.encode(src))
    for t in range(2):
        _, state, _ = model.step(tgt_in[:, t], state)

    index = torch.tensor([2, 0, 0, 1])
    logits_a, state_a, weights_a = model.step(tgt_in[index, 2], state.select(index), True)
    logits_b, state_b, weights_b = model.step(tgt_in[:, 2], state, True)
    torch.testing.assert_close(logits_b, logits[:, 2], **EXACT)  # select left `state` intact
    torch.testing.assert_close(logits_a, logits_b[index], **EXACT)
    for slot, weight in weights_a.items():
        torch.testing.assert_close(weight, weights_b[slot][index], **EXACT)
    next_a, _, _ = model.step(tgt_in[index, 3], state_a)
    next_b, _, _ = model.step(tgt_in[index, 3], state_b.select(index))
    torch.testing.assert_close(next_a, next_b, **EXACT)
    torch.testing.assert_close(next_a, logits[index, 3], **EXACT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.src_mask = None  # states are immutable


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_beams_expanded_by_select(arch):
    """Encode once, repeat every entry with select: the same logits as a repeated batch."""
    model = make_model(tiny_config(arch, attention=("additive", 2)))
    src, tgt_in = random_batch(seed=6)
    beams = torch.arange(src.shape[0]).repeat_interleave(4)
    state = model.init_state(model.encode(src)).select(beams)
    stepped = []
    for t in range(tgt_in.shape[1]):
        step_logits, state, _ = model.step(tgt_in[beams, t], state)
        stepped.append(step_logits)
    logits, _ = model(src, tgt_in)
    torch.testing.assert_close(torch.stack(stepped, 1), logits[beams], **EXACT)


GROUPED_CASES = [
    pytest.param("transformer", variant, id=f"transformer-{variant_id(variant)}")
    for variant in VARIANTS
] + [pytest.param("rnn", ("additive", None), id="rnn-additive")]


@pytest.mark.parametrize(("arch", "variant"), GROUPED_CASES)
def test_beam_state_equals_repeated_rows(arch, variant):
    """A state made with beam=k (the source memories kept once per sentence) gives the logits
    and weights of the plain state repeated k times, through reorders inside the groups and
    the pruning of a sentence."""
    beam = 3
    model = make_model(tiny_config(arch, attention=variant))
    src, tgt_in = random_batch(seed=7)
    encoded = model.encode(src)
    grouped = model.init_state(encoded, beam=beam)
    plain = model.init_state(encoded).select(beam_rows(src.shape[0], beam))
    rows = beam_rows(src.shape[0], beam)  # the sentence of each row
    gen = torch.Generator().manual_seed(3)
    for t in range(tgt_in.shape[1]):
        prev = tgt_in[rows, t]
        a_logits, grouped, a_weights = model.step(prev, grouped, need_weights=True)
        b_logits, plain, b_weights = model.step(prev, plain, need_weights=True)
        torch.testing.assert_close(a_logits, b_logits, **EXACT)
        assert a_weights.keys() == b_weights.keys()
        for slot in a_weights:
            torch.testing.assert_close(a_weights[slot], b_weights[slot], **EXACT)
        # Reorder rows inside each sentence's group; at t == 2 drop the first sentence.
        groups = rows.numel() // beam
        inside = torch.stack([torch.randint(beam, (beam,), generator=gen) for _ in range(groups)])
        index = (torch.arange(groups)[:, None] * beam + inside).view(-1)
        if t == 2:
            index = index[beam:]
        grouped, plain, rows = grouped.select(index), plain.select(index), rows[index]


@pytest.mark.parametrize("same", [True, False])
def test_first_step_of_a_beam_runs_once_per_sentence(same):
    """At position 0 a beam's rows that read one token are computed once per sentence and
    repeated; rows that differ are computed each. Both equal the repeated-rows state."""
    beam = 3
    model = make_model(tiny_config("transformer"))
    src, tgt_in = random_batch(seed=5)
    encoded = model.encode(src)
    rows = beam_rows(src.shape[0], beam)
    prev = tgt_in[rows, 0].clone()  # BOS
    if not same:
        prev[1] = 7
    seen = []
    layer = model.decoder_layers[0]
    original = layer.step
    layer.step = lambda x, *rest: (seen.append(x.shape[0]), original(x, *rest))[1]
    grouped = model.init_state(encoded, beam=beam)
    a_logits, grouped, a_weights = model.step(prev, grouped, need_weights=True)
    layer.step = original
    plain = model.init_state(encoded).select(rows)
    b_logits, plain, b_weights = model.step(prev, plain, need_weights=True)
    assert seen == [src.shape[0] if same else src.shape[0] * beam]
    torch.testing.assert_close(a_logits, b_logits, **EXACT)
    for slot in a_weights:
        torch.testing.assert_close(a_weights[slot], b_weights[slot], **EXACT)
    assert grouped.group == beam and grouped.position == 1
    nxt = tgt_in[rows, 1]
    a_logits, _, _ = model.step(nxt, grouped)
    b_logits, _, _ = model.step(nxt, plain)
    torch.testing.assert_close(a_logits, b_logits, **EXACT)


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_beam_state_select_refuses_split_groups(arch):
    model = make_model(tiny_config(arch))
    src, _ = random_batch()
    state = model.init_state(model.encode(src), beam=2)
    if arch == "rnn":  # the LSTM's state repeats its rows: any select is fine
        assert state.select(torch.tensor([0, 3, 5])) is not None
        return
    with pytest.raises(ValueError, match="whole groups"):
        state.select(torch.tensor([0, 2, 4, 5]))  # rows of two sentences in one block
    with pytest.raises(ValueError, match="whole groups"):
        state.select(torch.tensor([0, 1, 2]))  # not a whole number of groups
    with pytest.raises(ValueError, match="3 sentences x 2 rows per sentence = 6"):
        model.step(torch.full((3,), 5), state)
