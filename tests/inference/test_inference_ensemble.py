"""Ensembles (log-probabilities averaged at each step) and int8 decoding."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from test_inference_translator import LINES, WordTokenizer
from toy_models import random_table

from seq2seq.cli import main
from seq2seq.data import collate_src
from seq2seq.inference.decode import DecodeOptions, decode_ids, score_ids
from seq2seq.inference.ensemble import Ensemble, EnsembleError
from seq2seq.inference.translate import Translator
from seq2seq.vocab import BOS_ID

SRC = [ids for ids in WordTokenizer(14).encode_src_batch(LINES) if ids]
_spec = importlib.util.spec_from_file_location(
    "run_factory", Path(__file__).parents[1] / "training" / "run_factory.py"
)
run_factory = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_factory)


def _toy(toy_model, seed):
    return toy_model(random_table(8, 14, seed=seed), src_scale=1.5, max_positions=16, seed=seed)


@pytest.mark.parametrize("beam", [1, 4])
def test_a_model_with_itself_decodes_as_alone(toy_model, beam):
    model = _toy(toy_model, 1)
    options = DecodeOptions(beam=beam, n_best=min(beam, 2))
    alone = decode_ids(model, SRC, options, batch_size=3)
    twice = decode_ids(Ensemble([model, model]), SRC, options, batch_size=3)
    assert [[h.tokens for h in hyps] for hyps in twice] == [
        [h.tokens for h in hyps] for hyps in alone
    ]
    for a, b in zip(alone, twice, strict=True):
        assert [h.score for h in b] == pytest.approx([h.score for h in a], abs=1e-5)


def test_the_ensemble_distribution_is_the_normalised_geometric_mean(toy_model):
    members = [_toy(toy_model, 1), _toy(toy_model, 2), _toy(toy_model, 3)]
    ensemble = Ensemble(members)
    src = collate_src(SRC[:3])
    tgt_in = torch.tensor([[BOS_ID, 5, 6], [BOS_ID, 7, 7], [BOS_ID, 9, 4]])
    logits, _ = ensemble(src, tgt_in)
    expected = torch.stack([m(src, tgt_in)[0].float().log_softmax(-1) for m in members]).mean(0)
    torch.testing.assert_close(logits, expected)
    # stepping gives the same numbers as teacher forcing
    state = ensemble.init_state(ensemble.encode(src))
    for t in range(tgt_in.size(1)):
        step_logits, state, _ = ensemble.step(tgt_in[:, t], state)
        torch.testing.assert_close(step_logits, expected[:, t], atol=1e-5, rtol=1e-5)
    # greedy output: at each step the argmax of that distribution; scores = forced scores
    found = decode_ids(ensemble, SRC, DecodeOptions(beam=3), batch_size=2)
    scored = score_ids(ensemble, SRC, [h[0].tokens for h in found], alpha=0.6, batch_size=2)
    for hyps, pair in zip(found, scored, strict=True):
        if pair.tokens == len(hyps[0].tokens) + 1 and len(hyps[0].tokens) < 5:
            assert pair.score == pytest.approx(hyps[0].score, abs=1e-5)


def test_members_must_agree(toy_model):
    with pytest.raises(EnsembleError, match="at least 2"):
        Ensemble([_toy(toy_model, 1)])
    small = toy_model(random_table(8, 12, seed=1), max_positions=16)
    with pytest.raises(EnsembleError, match="vocabulary sizes"):
        Ensemble([_toy(toy_model, 1), small])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A Transformer and an LSTM trained on the same corpus (same subword model), and a
    Transformer with another vocabulary size."""
    root = tmp_path_factory.mktemp("ensemble")
    steps = ["train.max_steps=20", "train.validate_every=20"]
    out = {
        "transformer": run_factory.make_tiny_run(root / "t", overrides=steps),
        "rnn": run_factory.make_tiny_run(root / "r", arch="rnn", overrides=steps),
        "other": run_factory.make_tiny_run(
            root / "o", overrides=[*steps, "data.tokenizer.vocab_size=90"]
        ),
    }
    return out, root / "t" / "data"


def test_cli_ensemble_of_an_lstm_and_a_transformer(runs, tmp_path, capsys):
    (run_t, run_r, _), data = runs[0].values(), runs[1]
    lines = (data / "test.en").read_text(encoding="utf-8").splitlines()[:5]
    (tmp_path / "in.en").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.de"
    args = ["translate", str(run_t), str(run_r), "--input", str(tmp_path / "in.en")]
    assert main([*args, "--output", str(out), "--beam", "2"]) == 0
    got = out.read_text(encoding="utf-8").splitlines()
    both = Translator.load([run_t, run_r], device="cpu", beam=2)
    assert got == [t.text for t in both.translate(lines)]
    assert both.describe()["arch"] == "ensemble of 2"
    code = main(["evaluate", str(run_t), str(run_r), "--src", str(tmp_path / "in.en"),
                 "--ref", str(tmp_path / "in.en"), "--json", "--beam", "1"])  # fmt: skip
    assert code == 0 and '"checkpoint": [' in capsys.readouterr().out


def test_cli_refuses_members_with_another_subword_model(runs, tmp_path, capsys):
    (run_t, _, other), data = runs[0].values(), runs[1]
    out = tmp_path / "out.de"
    code = main(["translate", str(run_t), str(other), "--input", str(data / "test.en"),
                 "--output", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "another subword model" in err and str(other) in err
    assert not out.exists()


def test_int8_quantizes_the_linear_layers(runs, tmp_path):
    run_t, data = runs[0]["transformer"], runs[1]
    lines = (data / "test.en").read_text(encoding="utf-8").splitlines()[:8]
    fp32 = Translator.load(run_t, device="cpu", precision="fp32", beam=2)
    int8 = Translator.load(run_t, device="cpu", precision="int8", beam=2)
    assert int8.precision == "int8" and int8.describe()["precision"] == "int8"
    quantized = torch.ao.nn.quantized.dynamic.Linear
    linears = [m for m in int8.model.modules() if isinstance(m, torch.nn.Linear | quantized)]
    assert linears and all(isinstance(m, quantized) for m in linears)
    a, b = fp32.score(lines, lines), int8.score(lines, lines)  # same pairs, both models
    for x, y in zip(a, b, strict=True):
        assert y.log_prob == pytest.approx(x.log_prob, rel=0.05, abs=0.5)
    out = tmp_path / "int8.de"
    (tmp_path / "in.en").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["translate", str(run_t), "--input", str(tmp_path / "in.en"), "--output", str(out)]
    assert main([*args, "--precision", "int8", "--beam", "2"]) == 0
    assert out.read_text(encoding="utf-8").splitlines() == [t.text for t in int8.translate(lines)]
