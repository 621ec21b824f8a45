"""build_model, parameter layout, embeddings and positions, and errors for bad input."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from models_util import SRC_VOCAB, TGT_VOCAB, make_model, random_batch, tiny_config

from seq2seq.config import load_config
from seq2seq.models import MODEL_BUILDERS, Seq2Seq, build_model
from seq2seq.models.embeddings import SinusoidalPositions, TokenEmbedding
from seq2seq.vocab import BOS_ID, PAD_ID

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").rglob("*.yaml"))


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # shared parameters count once


def test_unknown_arch_lists_available():
    cfg = dataclasses.replace(tiny_config("rnn"), arch="gru")
    with pytest.raises(ValueError, match=r"unknown architecture 'gru'.*rnn, transformer"):
        build_model(cfg, SRC_VOCAB, TGT_VOCAB)
    assert set(MODEL_BUILDERS) == {"rnn", "transformer"}
    with pytest.raises(ValueError, match=r"tgt_vocab_size must be an int >= 4.*got 3"):
        build_model(tiny_config("rnn"), SRC_VOCAB, 3)


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_share_embeddings_needs_one_vocabulary(arch):
    cfg = tiny_config(arch, share_embeddings=True)
    with pytest.raises(ValueError, match=r"src_vocab_size=23 and tgt_vocab_size=19"):
        build_model(cfg, SRC_VOCAB, TGT_VOCAB)
    model = build_model(cfg, SRC_VOCAB, SRC_VOCAB)
    unshared = build_model(tiny_config(arch), SRC_VOCAB, SRC_VOCAB)
    assert _count(unshared) - _count(model) == SRC_VOCAB * 8  # one embedding matrix less


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_tied_output_uses_target_embedding(arch):
    tied = build_model(tiny_config(arch, tie_output=True), SRC_VOCAB, TGT_VOCAB)
    untied = build_model(tiny_config(arch, tie_output=False), SRC_VOCAB, TGT_VOCAB)
    embedding = tied.decoder.embedding if arch == "rnn" else tied.tgt_embed
    output = tied.decoder.output if arch == "rnn" else tied.output
    assert output.weight is embedding.weight
    assert _count(untied) > _count(tied)


def test_transformer_parameter_count_matches_formula():
    d, ffn, layers = 8, 16, 2
    model = build_model(tiny_config("transformer"), SRC_VOCAB, TGT_VOCAB)
    attention = 4 * (d * d + d)  # Q, K, V, output projections with bias
    feed_forward = (d * ffn + ffn) + (ffn * d + d)
    norm = 2 * d
    encoder = attention + feed_forward + 2 * norm
    decoder = 2 * attention + feed_forward + 3 * norm
    expected = (
        layers * (encoder + decoder)
        + (SRC_VOCAB + TGT_VOCAB) * d  # embeddings (output tied)
        + 2 * norm  # final LayerNorms (pre-norm)
        + TGT_VOCAB  # output bias
    )
    assert _count(model) == expected
    post = build_model(
        tiny_config("transformer", transformer={"norm": "post", "positions": "learned"}),
        SRC_VOCAB,
        TGT_VOCAB,
    )
    assert _count(post) == expected - 2 * norm + 32 * d  # no final norms; learned positions


def _lstm(input_dim: int, hidden: int) -> int:
    return 4 * hidden * (input_dim + hidden) + 2 * 4 * hidden


def test_rnn_parameter_count_matches_formula():
    emb, hidden, half = 8, 12, 6
    model = build_model(tiny_config("rnn"), SRC_VOCAB, TGT_VOCAB)  # bahdanau, 2 + 2 layers
    encoder = 2 * _lstm(emb, half) + 2 * _lstm(hidden, half)
    decoder = _lstm(emb + hidden, hidden) + _lstm(hidden, hidden)
    readout = (hidden + hidden + emb) * emb + emb  # [h; c; y] -> embed_dim (tied output)
    bridge = 2 * (hidden * 2 * hidden + 2 * hidden)
    attention = 4 * (hidden * hidden + hidden)
    embeddings = (SRC_VOCAB + TGT_VOCAB) * emb + TGT_VOCAB  # + output bias
    assert _count(model) == encoder + decoder + readout + bridge + attention + embeddings

    luong = build_model(
        tiny_config("rnn", rnn={"style": "luong", "bridge": "none"}, tie_output=False),
        SRC_VOCAB,
        TGT_VOCAB,
    )
    decoder = _lstm(emb + hidden, hidden) + _lstm(hidden, hidden)  # input feeding: y; h~
    readout = (hidden + hidden) * hidden + hidden  # [c; h] -> hidden_dim
    output = TGT_VOCAB * hidden + TGT_VOCAB
    expected = encoder + decoder + readout + attention + (SRC_VOCAB + TGT_VOCAB) * emb + output
    assert _count(luong) == expected


def test_rnn_forget_gate_bias_is_one():
    model = build_model(tiny_config("rnn"), SRC_VOCAB, TGT_VOCAB)
    hidden = 12
    bias = model.decoder.lstm.bias_ih_l0 + model.decoder.lstm.bias_hh_l0
    assert torch.equal(bias[hidden : 2 * hidden], torch.ones(hidden))


def test_sinusoidal_positions_by_hand():
    table = SinusoidalPositions(max_positions=5, dim=6)(5)
    assert table.shape == (5, 6)
    for pos in range(5):
        for i in range(3):
            angle = pos / 10000 ** (2 * i / 6)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    assert torch.equal(SinusoidalPositions(max_positions=5, dim=6)(2, offset=3), table[3:])
    with pytest.raises(ValueError, match="max_positions=5"):
        SinusoidalPositions(max_positions=5, dim=6)(2, offset=4)


def test_token_embedding_scale_and_padding():
    torch.manual_seed(0)
    embedding = TokenEmbedding(vocab_size=4000, dim=64, scale=True)
    assert torch.equal(embedding.weight[PAD_ID], torch.zeros(64))
    out = embedding(torch.arange(1, 4000))
    assert out.std().item() == pytest.approx(1.0, rel=0.05)  # N(0, 1/d) * sqrt(d)
    assert embedding.weight.std().item() == pytest.approx(64**-0.5, rel=0.05)
    assert torch.equal(embedding(torch.tensor([PAD_ID])), torch.zeros(1, 64))


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_bad_token_tensors_are_refused(arch):
    model = make_model(tiny_config(arch), dtype=torch.float32)
    src, tgt_in = random_batch()
    with pytest.raises(ValueError, match=r"src must be an integer tensor of shape \[B, T\]"):
        model(src[0], tgt_in)
    with pytest.raises(ValueError, match="tgt_in must be an integer tensor"):
        model(src, tgt_in.float())
    with pytest.raises(ValueError, match=r"src holds token ids from .* to 23.*\[0, 23\)"):
        model(torch.cat([src, torch.full((3, 1), SRC_VOCAB)], 1), tgt_in)
    with pytest.raises(ValueError, match="batch sizes differ"):
        model(src[:2], tgt_in)
    state = model.init_state(model.encode(src))
    with pytest.raises(ValueError, match=r"prev_tokens must be an integer tensor of shape \[B\]"):
        model.step(tgt_in[:, :1], state)


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_max_positions(arch):
    model = make_model(tiny_config(arch, max_positions=4), dtype=torch.float32)
    assert model.max_positions == 4
    with pytest.raises(ValueError, match=r"src has 5 positions .* max_positions=4"):
        model.encode(torch.full((1, 5), 7))
    with pytest.raises(ValueError, match=r"tgt_in has 5 positions .* max_positions=4"):
        model(torch.full((1, 4), 7), torch.full((1, 5), 7))
    state = model.init_state(model.encode(torch.full((1, 4), 7)))
    for _ in range(4):
        _, state, _ = model.step(torch.tensor([BOS_ID]), state)
    if arch == "transformer":  # positions beyond the table cannot be encoded
        with pytest.raises(ValueError, match="max_positions=4"):
            model.step(torch.tensor([BOS_ID]), state)


def test_rnn_needs_even_hidden_dim():
    with pytest.raises(ValueError, match="even hidden_dim"):
        build_model(tiny_config("rnn", rnn={"hidden_dim": 11}), SRC_VOCAB, TGT_VOCAB)


def test_models_implement_the_interface():
    for arch, slots in (
        ("rnn", ("cross",)),
        ("transformer", ("encoder_self", "decoder_self", "cross")),
    ):
        model = build_model(tiny_config(arch), SRC_VOCAB, TGT_VOCAB)
        assert isinstance(model, Seq2Seq)
        assert model.slots == slots


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_builds_every_shipped_config(path):
    cfg = load_config(path)
    vocab = cfg.data.tokenizer.vocab_size
    model = build_model(cfg.model, vocab, vocab).eval()
    src = torch.tensor([[5, 6, 7, PAD_ID], [8, 9, 10, 11]])
    tgt_in = torch.tensor([[BOS_ID, 12, 13], [BOS_ID, 14, PAD_ID]])
    with torch.no_grad():
        logits, weights = model(src, tgt_in, need_weights=True)
    assert logits.shape == (2, 3, vocab)
    assert set(weights) == set(model.slots)


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_linear_layers_get_xavier_init(arch):
    torch.manual_seed(0)
    model = build_model(tiny_config(arch, attention=("additive", 2)), SRC_VOCAB, TGT_VOCAB)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) >= 6  # attention projections, scores, read-out or feed-forward
    for linear in linears:
        fan_out, fan_in = linear.weight.shape
        assert linear.weight.abs().max() <= math.sqrt(6.0 / (fan_in + fan_out))
        assert linear.bias is None or not linear.bias.any()


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_dropout_only_in_training_mode(arch):
    model = make_model(tiny_config(arch, dropout=0.3), dtype=torch.float32)
    src, tgt_in = random_batch()
    first, _ = model(src, tgt_in)
    torch.testing.assert_close(model(src, tgt_in)[0], first, rtol=0.0, atol=0.0)
    model.train()
    assert not torch.allclose(model(src, tgt_in)[0], model(src, tgt_in)[0])
