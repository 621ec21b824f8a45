"""`seq2seq export --format ctranslate2`: CTranslate2's greedy decoding of the export gives the
tokens of our greedy search on every test sentence (pre- and post-norm, sinusoidal and learned
positions, relu and gelu, shared and separate embeddings and vocabularies, tied and untied
output); unsupported models and existing outputs are refused with nothing written."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

from seq2seq.cli import main
from seq2seq.data import read_lines
from seq2seq.export import ExportError, check_exportable, export_ctranslate2
from seq2seq.inference.translate import Translator

ctranslate2 = pytest.importorskip("ctranslate2")

_spec = importlib.util.spec_from_file_location(
    "run_factory", Path(__file__).parents[1] / "training" / "run_factory.py"
)
run_factory = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_factory)

#: Long enough at a constant rate for 22 of the 24 test and valid sentences to end with EOS.
TRAINED = [
    "train.max_steps=500",
    "train.validate_every=250",
    "train.schedule=constant",
    "train.batch_tokens=400",
    "train.early_stopping_metric=loss",
    "model.dropout=0",
]
#: The other layouts: trained briefly (outputs mostly run to the length limit).
VARIANT = [
    "train.max_steps=40",
    "train.validate_every=40",
    "train.schedule=constant",
    "model.transformer.norm=post",
    "model.transformer.positions=learned",
    "model.transformer.activation=gelu",
    "model.tie_output=false",
    "data.tokenizer.joint=false",
    "model.share_embeddings=false",
]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """Pre-norm, sinusoidal, relu, shared embeddings (joint vocabulary), tied output."""
    tmp = tmp_path_factory.mktemp("trained")
    return run_factory.make_tiny_run(tmp, overrides=[*TRAINED, "model.share_embeddings=true"])


@pytest.fixture(scope="module")
def variant_run(tmp_path_factory) -> Path:
    return run_factory.make_tiny_run(tmp_path_factory.mktemp("variant"), overrides=VARIANT)


def sentences(run_dir: Path) -> list[str]:
    data = run_dir.parent / "data"
    return [line for name in ("test.en", "valid.en") for line in read_lines(data / name)]


def ct2_greedy(
    model_dir: Path, translator: Translator, lines: list[str], *, suppress: bool
) -> tuple[list[list[str]], list[float], list[int]]:
    """CTranslate2's greedy pieces and log-probabilities, and our output limit of each
    sentence: sentences of one limit form one batch (CTranslate2's padding is exercised too).
    ``suppress``: forbid <pad> and <s> as our search does (CTranslate2 then renormalises the
    probabilities over the other tokens, so only the tokens are comparable)."""
    tokenizer, options = translator.tokenizer, translator.options
    pieces = [tokenizer.src_pieces(tokenizer.encode_src(line)) for line in lines]
    limits = [
        min(
            math.floor((len(p) + 1) * options.max_len_ratio + options.max_len_offset),
            translator.model.max_positions,
        )
        for p in pieces
    ]
    engine = ctranslate2.Translator(str(model_dir), device="cpu", intra_threads=1)
    out, scores = [None] * len(lines), [0.0] * len(lines)
    for limit in sorted(set(limits)):
        rows = [i for i, n in enumerate(limits) if n == limit]
        results = engine.translate_batch(
            [pieces[i] for i in rows],
            beam_size=1,
            max_decoding_length=limit,
            min_decoding_length=0,
            length_penalty=0,  # scores: the plain sum of log-probabilities, as ours
            suppress_sequences=[["<pad>"], ["<s>"]] if suppress else None,
            return_scores=True,
        )
        for i, result in zip(rows, results, strict=True):
            out[i], scores[i] = result.hypotheses[0], result.scores[0]
    return out, scores, limits


def check_greedy_equal(run_dir: Path, model_dir: Path) -> tuple[list, int]:
    """Asserts equal pieces (and, where CTranslate2 chose the same tokens without the
    suppression, equal log-probabilities); returns our translations and how many of them
    ended with EOS."""
    translator = Translator.load(run_dir, device="cpu", precision="fp32", beam=1)
    lines = sentences(run_dir)
    ours = translator.translate(lines)
    theirs, _, limits = ct2_greedy(model_dir, translator, lines, suppress=True)
    for line, mine, other in zip(lines, ours, theirs, strict=True):
        assert other == mine.pieces, line
    plain, scores, _ = ct2_greedy(model_dir, translator, lines, suppress=False)
    same = [(t, s) for t, p, s in zip(ours, plain, scores, strict=True) if p == t.pieces]
    assert len(same) >= len(lines) // 2
    for mine, score in same:
        assert score == pytest.approx(mine.log_prob, abs=2e-4)
    return ours, sum(len(t.tokens) < limit for t, limit in zip(ours, limits, strict=True))


def test_greedy_tokens_equal_translate_beam_1(trained_run, tmp_path, capsys):
    out = tmp_path / "ct2"
    argv = ["export", str(trained_run), "--format", "ctranslate2", "--out", str(out)]
    assert main(argv) == 0
    assert {"model.bin", "config.json", "shared_vocabulary.json", "spm.model", "README.md"} <= {
        p.name for p in out.iterdir()
    }
    ours, ended = check_greedy_equal(trained_run, out)
    assert ended >= 20  # most end with EOS, before the output limit
    # the command line's text is CTranslate2's detokenized too
    src, hyp = tmp_path / "src.en", tmp_path / "hyp.de"
    src.write_text("\n".join(sentences(trained_run)) + "\n", encoding="utf-8")
    argv = ["translate", str(trained_run), "--beam", "1", "--input", str(src), "--output", str(hyp)]
    assert main([*argv, "--device", "cpu", "--precision", "fp32"]) == 0
    assert hyp.read_text(encoding="utf-8").splitlines() == [t.text for t in ours]
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "ctranslate2.Translator" in readme and "suppress_sequences" in readme
    assert json.loads((out / "export.json").read_text())["max_positions"] == 64


def test_post_norm_learned_gelu_separate_vocabularies(variant_run, tmp_path):
    out = export_ctranslate2(variant_run, tmp_path / "ct2")
    names = {p.name for p in out.iterdir()}
    assert {"source_vocabulary.json", "target_vocabulary.json"} <= names
    assert {"spm.src.model", "spm.tgt.model"} <= names
    check_greedy_equal(variant_run, out)


@pytest.mark.parametrize("quantization", ["int8", "int16"])
def test_quantized_export_loads_and_translates(trained_run, tmp_path, quantization):
    out = export_ctranslate2(trained_run, tmp_path / "q", quantization=quantization)
    engine = ctranslate2.Translator(str(out), device="cpu")
    result = engine.translate_batch([["▁She", "▁has"]], beam_size=2, max_decoding_length=8)
    assert len(result[0].hypotheses[0]) <= 8


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("model.attention.cross.type=additive", "model.attention.cross.type"),
        ("model.attention.encoder_self.type=general", "model.attention.encoder_self.type"),
        ("model.attention.decoder_self.type=dot", "model.attention.decoder_self.type"),
        ("model.attention.cross.heads=null", "model.attention.cross.heads"),
        ("model.attention.cross.heads=4", "model.attention.cross.heads"),
    ],
)
def test_unsupported_attention_is_refused(tmp_path, override, named):
    config = run_factory.tiny_config(tmp_path, overrides=[override])
    with pytest.raises(ExportError, match=named.replace(".", r"\.")):
        check_exportable(config.model)


def test_lstm_refused_on_the_command_line(tmp_path, capsys):
    run_dir = run_factory.make_tiny_run(tmp_path, arch="rnn")
    out = tmp_path / "ct2"
    assert main(["export", str(run_dir), "--format", "ctranslate2", "--out", str(out)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "seq2seq export: error: model.arch is 'rnn'" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "run"]  # nothing written


def test_existing_output_needs_overwrite(trained_run, tmp_path, capsys):
    out = tmp_path / "ct2"
    argv = ["export", str(trained_run), "--format", "ctranslate2", "--out", str(out)]
    assert main(argv) == 0
    (out / "marker").write_text("old export")
    capsys.readouterr()
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "marker").exists()
    assert main([*argv, "--overwrite", "--quantization", "int8"]) == 0
    assert not (out / "marker").exists() and (out / "model.bin").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct2"]  # no temporary left
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    argv = ["export", str(trained_run), "--format", "ctranslate2", "--out", str(other)]
    assert main([*argv, "--overwrite"]) == 2
    assert "no model.bin" in capsys.readouterr().err
    assert [p.name for p in other.iterdir()] == ["keep.txt"]


def test_missing_package_names_the_extra(trained_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # import ctranslate2 -> ImportError
    with pytest.raises(ExportError, match=r"\.\[export\]"):
        export_ctranslate2(trained_run, tmp_path / "ct2")
    assert not any(tmp_path.iterdir())
