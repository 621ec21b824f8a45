"""Attention plots of real (tiny, untrained) models: every architecture, slot and attention type,
through `Translator.attention` and through the `seq2seq plot` command on a saved run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from seq2seq.checkpoint import save_checkpoint
from seq2seq.cli import main
from seq2seq.config import TokenizerConfig, config_from_dict, config_to_dict, save_config
from seq2seq.data import Tokenizer, collate_src
from seq2seq.inference import greedy_search
from seq2seq.inference.translate import Translator
from seq2seq.models import build_model
from seq2seq.viz import plot_example
from seq2seq.vocab import BOS_ID, EOS

SRC = ["I love you", "the cat sleeps", "we love the cat", "you see me", "twenty three cats"]
TGT = ["je t'aime", "le chat dort", "nous aimons le chat", "tu me vois", "vingt-trois chats"]
TYPES = ["dot", "scaled_dot", "general", "additive"]
CASES = [("rnn", t, None) for t in TYPES] + [("transformer", t, 2) for t in TYPES]


def _case_id(case):
    return f"{case[0]}-{case[1]}"


def _config(arch: str, kind: str, heads: int | None, style: str = "bahdanau"):
    spec = {"type": kind, "heads": heads}
    return config_from_dict({
        "data": {"train": {"src": "train.en", "tgt": "train.de"},
                 "valid": {"src": "valid.en", "tgt": "valid.de"},
                 "max_len": 20, "tokenizer": {"vocab_size": 40}},
        "model": {"arch": arch, "embed_dim": 8, "encoder_layers": 2, "decoder_layers": 2,
                  "max_positions": 24, "dropout": 0.0,
                  "attention": {"cross": spec, "encoder_self": spec, "decoder_self": spec},
                  "rnn": {"hidden_dim": 8, "style": style}, "transformer": {"ffn_dim": 16}},
        "train": {"max_steps": 1},
    })  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return Tokenizer.train(
        TokenizerConfig(vocab_size=40), SRC * 4, TGT * 4, tmp_path_factory.mktemp("spm")
    )


def _model(cfg, tokenizer, seed=0):
    torch.manual_seed(seed)
    return build_model(cfg.model, tokenizer.src_vocab_size, tokenizer.tgt_vocab_size).eval()


def attention_for_pair(model, tokenizer, src, tgt=None, *, beam=1, **limits):
    """The attention of one sentence through the Python API (greedy, beam or forced)."""
    translator = Translator(model=model, tokenizer=tokenizer, beam=beam, **limits)
    return translator.attention(src, tgt)


def _forward_weights(model, src_ids, tgt_ids):
    """Teacher-forced weights {slot: [L, H, Tq, Tk]} straight from model.forward."""
    with torch.no_grad():
        _, weights = model(collate_src([src_ids]), torch.tensor([[BOS_ID, *tgt_ids]]),
                           need_weights=True)  # fmt: skip
    return {slot: w[0].float() for slot, w in weights.items()}


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_attention_for_pair_every_architecture_and_type(case, tokenizer, tmp_path):
    arch, kind, heads = case
    model = _model(_config(arch, kind, heads), tokenizer)
    layers = 1 if arch == "rnn" else 2
    src_ids = tokenizer.encode_src(SRC[0])
    limits = {"max_len_ratio": 1.0, "max_len_offset": 3}  # untrained: keep outputs short
    beam = attention_for_pair(model, tokenizer, SRC[0], beam=3, **limits)
    # greedy: the output of a plain search, and weights equal to a full teacher-forced pass
    example = attention_for_pair(model, tokenizer, SRC[0], **limits)
    for found in (beam, example):
        assert set(found.weights) == set(model.slots)
        assert found.src_pieces == [*tokenizer.src_pieces(src_ids), EOS]
        for slot in model.slots:
            w = found.matrices(slot)  # checks [L, H, Tq, Tk] against the labels
            assert w.shape[:2] == (layers, heads or 1)
            np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
    hyp = greedy_search(model, collate_src([src_ids]), max_len=len(src_ids) + 4)[0]
    ended = example.tgt_pieces[-1] == EOS
    assert example.tgt_pieces == tokenizer.tgt_pieces(hyp.tokens) + [EOS] * ended
    steps = len(example.tgt_pieces)
    reference = _forward_weights(model, src_ids, hyp.tokens)
    reference["cross"] = reference["cross"][..., :steps, :]
    if "decoder_self" in reference:
        reference["decoder_self"] = reference["decoder_self"][..., :steps, :steps]
    for slot in model.slots:
        np.testing.assert_allclose(example.weights[slot], reference[slot], atol=1e-5)
    forced = attention_for_pair(model, tokenizer, SRC[0], TGT[0])
    tgt_ids = tokenizer.encode_tgt(TGT[0])
    assert forced.tgt_pieces == [*tokenizer.tgt_pieces(tgt_ids), EOS]
    reference = _forward_weights(model, src_ids, tgt_ids)
    for slot in model.slots:
        np.testing.assert_allclose(forced.weights[slot], reference[slot], atol=1e-6)
        out = plot_example(forced, tmp_path / f"{slot}.png", slot=slot)
        assert out.stat().st_size > 0
    words = forced.to_words(tokenizer.piece_word_ids)
    assert words.tgt_pieces == [*TGT[0].split(), EOS]
    assert words.src_pieces == [*SRC[0].split(), EOS]


def test_attention_for_pair_bad_input(tokenizer):
    model = _model(_config("rnn", "additive", None), tokenizer)
    with pytest.raises(ValueError, match="empty"):
        attention_for_pair(model, tokenizer, "")
    long = attention_for_pair(model, tokenizer, " ".join(SRC * 5), "je")
    assert len(long.src_pieces) == model.max_positions  # truncated with a warning


@pytest.fixture(scope="module")
def runs(tokenizer, tmp_path_factory):
    """A saved run directory per architecture (config.yaml, spm.model, best.pt)."""
    out = {}
    for arch, kind, heads in (("rnn", "additive", None), ("transformer", "scaled_dot", 2)):
        run_dir = tmp_path_factory.mktemp(f"run-{arch}")
        cfg = _config(arch, kind, heads)
        tokenizer.save(run_dir)
        save_config(cfg, run_dir / "config.yaml")
        model = _model(cfg, tokenizer)
        state = {"format_version": 1, "config": config_to_dict(cfg), "model": model.state_dict()}
        save_checkpoint(state, run_dir / "best.pt")
        out[arch] = run_dir
    return out


def _plot(capsys, *args) -> tuple[int, str, str]:
    code = main(["plot", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf", ".html"])
def test_plot_command_every_format(runs, tmp_path, capsys, suffix):
    out = tmp_path / f"a{suffix}"
    code, stdout, err = _plot(capsys, runs["rnn"], "--src", SRC[0], "--out", out)
    assert code == 0, err
    assert stdout.split() == [str(out)] and out.stat().st_size > 0


def test_plot_command_transformer_slots_grid_words_and_beam(runs, tmp_path, capsys):
    run = runs["transformer"]
    for slot in ("cross", "encoder_self", "decoder_self"):
        out = tmp_path / f"{slot}.png"
        args = ["--slot", slot, "--layer", "all", "--head", "all", "--words", "--beam", "3"]
        code, _, err = _plot(capsys, run, "--src", SRC[1], "--tgt", TGT[1], "--out", out, *args)
        assert code == 0, err
        assert out.read_bytes().startswith(b"\x89PNG")
    code, _, err = _plot(capsys, run, "--src", SRC[2], "--beam", "3", "--layer", "0",
                         "--head", "1", "--out", tmp_path / "one.svg")  # fmt: skip
    assert code == 0, err


def test_plot_command_input_file(runs, tmp_path, capsys):
    lines = tmp_path / "sentences.txt"
    lines.write_text(f"{SRC[0]}\n\n{SRC[1]}\t{TGT[1]}\n<script>alert(1)</script>\n")
    page = tmp_path / "all.html"
    code, stdout, err = _plot(capsys, runs["transformer"], "--input", lines, "--out", page,
                              "--slot", "decoder_self", "--words")  # fmt: skip
    assert code == 0, err
    text = page.read_text()
    data = text.split('id="attention-data">')[1].split("</script>")[0]
    payload = json.loads(data)
    assert [s["title"] for s in payload["sentences"]] == [
        SRC[0],
        SRC[1],
        "<script>alert(1)</script>",
    ]
    assert payload["initial"]["slot"] == "decoder_self"
    assert payload["sentences"][1]["slots"]["cross"]["rows"] == [*TGT[1].split(), EOS]
    code, stdout, err = _plot(capsys, runs["rnn"], "--input", lines, "--out", tmp_path / "f.png")
    assert code == 0, err
    assert [Path(p).name for p in stdout.split()] == ["f_001.png", "f_003.png", "f_004.png"]


@pytest.mark.parametrize(
    ("out", "args", "message"),
    [
        (
            "a.png",
            ["--slot", "encoder_self"],
            "this rnn model has no such attention; available: cross",
        ),
        ("a.png", ["--layer", "3"], "layer 3 does not exist: the cross attention has 1 layers"),
        ("a.html", ["--head", "1"], "head 1 does not exist: the cross attention has 1 heads"),
        ("a.gif", [], "suffix '.gif', expected one of .png, .svg, .pdf, .html"),
        ("a.png", ["--src", ""], "is empty: nothing to attend to"),
    ],
)
def test_plot_command_errors(runs, tmp_path, capsys, out, args, message):
    source = [] if "--src" in args else ["--src", SRC[0]]
    code, _, err = _plot(capsys, runs["rnn"], "--out", tmp_path / out, *source, *args)
    assert code == 2
    assert message in err and err.startswith("seq2seq plot: error:")
    assert not list(tmp_path.iterdir())  # nothing written


def test_plot_command_missing_run(tmp_path, capsys):
    code, _, err = _plot(capsys, tmp_path / "missing", "--src", "x", "--out", tmp_path / "a.png")
    assert code == 2 and "does not exist" in err
