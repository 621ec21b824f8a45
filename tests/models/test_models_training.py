"""Each architecture learns to copy a tiny batch; training and stepping under bf16 autocast."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from models_util import SRC_VOCAB, TGT_VOCAB, make_model, random_batch, step_through, tiny_config

from seq2seq.models import build_model
from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID

COPY_SETUPS = {
    "rnn-bahdanau": (
        "rnn",
        {"embed_dim": 32, "rnn": {"hidden_dim": 64}, "attention": ("additive", None)},
    ),
    "rnn-luong": (
        "rnn",
        {
            "embed_dim": 32,
            "rnn": {"hidden_dim": 64, "style": "luong"},
            "attention": ("general", None),
        },
    ),
    "transformer": (
        "transformer",
        {"embed_dim": 32, "transformer": {"ffn_dim": 64}, "attention": ("scaled_dot", 4)},
    ),
}


def copy_batch(vocab: int = 20, batch: int = 8, length: int = 6, seed: int = 0):
    """src = y, tgt_in = BOS y, tgt_out = y EOS, y random real tokens."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(4, vocab, (batch, length), generator=gen)
    bos = torch.full((batch, 1), BOS_ID)
    eos = torch.full((batch, 1), EOS_ID)
    return y, torch.cat([bos, y], 1), torch.cat([y, eos], 1)


@pytest.mark.parametrize("name", list(COPY_SETUPS))
def test_learns_to_copy(name):
    arch, setup = COPY_SETUPS[name]
    torch.manual_seed(0)
    cfg = tiny_config(
        arch, dropout=0.0, attention_dropout=0.0, encoder_layers=1, decoder_layers=1, **setup
    )
    model = build_model(cfg, 20, 20)
    src, tgt_in, tgt_out = copy_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(300):
        logits, _ = model(src, tgt_in)
        loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
        if loss.item() < 0.02:
            break
    assert first > 2.0  # ~ln(20) at the start
    assert loss.item() < 0.02, f"{name}: copy loss {loss.item():.4f} after training"
    # Greedy decoding through the stepping interface reproduces the sequences.
    model.eval()
    with torch.no_grad():
        state = model.init_state(model.encode(src))
        prev, out = tgt_in[:, 0], []
        for _ in range(tgt_out.shape[1]):
            step_logits, state, _ = model.step(prev, state)
            prev = step_logits.argmax(-1)
            out.append(prev)
    assert torch.equal(torch.stack(out, 1), tgt_out)


@pytest.mark.parametrize(
    ("arch", "variant", "rnn"),
    [
        ("rnn", ("additive", None), {"style": "bahdanau"}),
        ("rnn", ("dot", None), {"style": "luong", "input_feeding": False}),
        ("rnn", ("scaled_dot", 2), {"style": "luong"}),
        ("transformer", ("scaled_dot", 2), {}),
        ("transformer", ("additive", None), {}),
    ],
)
def test_runs_under_bf16_autocast(arch, variant, rnn):
    model = make_model(tiny_config(arch, attention=variant, rnn=rnn), dtype=torch.float32).train()
    src, tgt_in = random_batch()
    tgt_out = torch.cat([tgt_in[:, 1:], torch.full((tgt_in.shape[0], 1), PAD_ID)], 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, weights = model(src, tgt_in, need_weights=True)
        loss = F.cross_entropy(logits.float().flatten(0, 1), tgt_out.flatten(), ignore_index=PAD_ID)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert logits.shape == (*tgt_in.shape, TGT_VOCAB)
    assert all(torch.isfinite(w).all() for w in weights.values())

    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        full, _ = model(src, tgt_in)
        stepped, _ = step_through(model, src, tgt_in, need_weights=True)
    # bf16 rounding differs between the two paths; they agree to bf16 precision.
    torch.testing.assert_close(stepped.float(), full.float(), rtol=0.0, atol=0.1)


def test_empty_source_gives_finite_outputs():
    for arch in ("rnn", "transformer"):
        model = make_model(tiny_config(arch), dtype=torch.float32)
        src = torch.tensor([[5, 6, 7], [PAD_ID, PAD_ID, PAD_ID]])
        tgt_in = torch.tensor([[BOS_ID, 4], [BOS_ID, 5]])
        logits, weights = model(src, tgt_in, need_weights=True)
        assert torch.isfinite(logits).all()
        assert (weights["cross"][1] == 0).all()  # nothing to attend: zero weights
        assert logits.shape == (2, 2, TGT_VOCAB) and SRC_VOCAB > 7
        # A batch of empty sources (zero columns) keeps one masked position.
        logits, weights = model(src[:, :0], tgt_in, need_weights=True)
        assert torch.isfinite(logits).all()
        assert weights["cross"].shape[-1] == 1 and not weights["cross"].any()


def test_run_lstm_under_bf16_autocast_agrees_with_float32():
    # On CPUs without oneDNN's bf16 LSTM kernel (no AVX-512) it runs in float32; elsewhere in
    # bf16. Either way it runs, and agrees with the float32 LSTM to bf16 precision.
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from seq2seq.models.base import run_lstm

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(6, 5, num_layers=2, batch_first=True, bidirectional=True)
    x = torch.randn(3, 4, 6)
    state = (torch.randn(4, 3, 5), torch.randn(4, 3, 5))
    reference, _ = lstm(x, state)
    packed = pack_padded_sequence(x, [4, 2, 3], batch_first=True, enforce_sorted=False)
    packed_reference, _ = pad_packed_sequence(lstm(packed)[0], batch_first=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = run_lstm(lstm, x, state)
        packed_out, _ = run_lstm(lstm, packed)
    assert torch.allclose(out.float(), reference, atol=3e-2)
    packed_out, _ = pad_packed_sequence(packed_out, batch_first=True)
    assert torch.allclose(packed_out.float(), packed_reference, atol=3e-2)
