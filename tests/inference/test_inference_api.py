"""The Python API on a trained tiny run: the README example, scores, attention, bad input."""

from __future__ import annotations

import importlib.util
import math
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import seq2seq
from seq2seq.checkpoint import CheckpointError
from seq2seq.data import collate_src
from seq2seq.inference.decode import score_ids
from seq2seq.inference.search import beam_search, max_output_lengths
from seq2seq.vocab import EOS

ROOT = Path(__file__).parents[2]
_spec = importlib.util.spec_from_file_location(
    "run_factory", ROOT / "tests" / "training" / "run_factory.py"
)
run_factory = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_factory)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny Transformer trained for 40 steps on the demo corpus (a few seconds)."""
    root = tmp_path_factory.mktemp("api")
    return run_factory.make_tiny_run(root, overrides=["train.max_steps=40"])


@pytest.fixture(scope="module")
def translator(run_dir):
    return seq2seq.Translator.load(run_dir, device="cpu", precision="fp32", beam=4, n_best=3)


@pytest.fixture(scope="module")
def sources(run_dir):
    from seq2seq.data import read_lines

    return read_lines(Path(run_dir).parent / "data" / "test.en")[:10]


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "README: no python block under '## Python API'"
    return match.group(1)


def test_readme_example_runs(run_dir, capsys):
    code = _readme_example().replace('"runs/demo"', repr(str(run_dir)))
    assert str(run_dir) in code  # the example loads the run it names
    namespace: dict = {}
    exec(compile(code, "README.md (Python API)", "exec"), namespace)
    best, pair, example = namespace["best"], namespace["pair"], namespace["example"]
    assert isinstance(best, seq2seq.Translation) and best.text
    assert best.pieces and len(best.pieces) == len(best.tokens)
    assert pair.tokens == len(namespace["translator"].tokenizer.encode_tgt("Ich habe Katzen.")) + 1
    assert pair.log_prob < 0 and math.isclose(
        pair.score, pair.log_prob / ((5 + pair.tokens) / 6) ** 0.6, rel_tol=1e-9
    )
    cross, (rows, cols) = namespace["cross"], (namespace["rows"], namespace["cols"])
    assert isinstance(cross, np.ndarray) and cross.shape[-2:] == (len(rows), len(cols))
    assert cols[-1] == EOS
    np.testing.assert_allclose(cross.sum(-1), 1.0, atol=1e-5)  # each row is a distribution
    assert set(example.weights) == {"cross", "encoder_self", "decoder_self"}
    assert best.text in capsys.readouterr().out


def test_score_is_score_ids_of_the_encoded_pairs(translator, sources):
    """score() encodes with the run's subword model and scores with score_ids (at the
    translator's batch size: another batching pads differently, which moves float32 sums)."""
    targets = [t.text for t in translator.translate(sources[:4], beam=1)]
    tokenizer = translator.tokenizer
    expected = score_ids(
        translator.model,
        tokenizer.encode_src_batch(sources[:4]),
        tokenizer.encode_tgt_batch(targets),
        alpha=translator.options.length_penalty,
        batch_size=translator.batch_size,
    )
    assert translator.score(sources[:4], targets) == expected


def test_workers_decode_the_batches_in_their_threads_with_equal_results(
    run_dir, sources, monkeypatch
):
    """Two workers: every batch is decoded in a worker thread, at this thread's intra-op count,
    and translations, n-best lists, scores and samples equal one worker's (at one thread
    everywhere: the matrix products' sums depend on the thread count)."""
    from seq2seq.inference import decode

    torch.set_num_threads(1)  # restored after the test (tests/conftest.py)
    one = seq2seq.Translator.load(run_dir, device="cpu", beam=4, n_best=3, batch_size=2)
    two = seq2seq.Translator.load(run_dir, device="cpu", beam=4, n_best=3, batch_size=2, workers=2)
    torch.set_num_threads(2)  # the workers keep the count they were created with
    seen = []
    decode_batch = decode._decode_batch

    def recorded(*args):
        seen.append((threading.current_thread().name, torch.get_num_threads()))
        return decode_batch(*args)

    monkeypatch.setattr(decode, "_decode_batch", recorded)
    texts = sources * 2  # 20 sentences: 10 batches
    found = two.translate(texts)
    assert len(seen) == 10
    assert all(name.startswith("seq2seq-decode") and n == 1 for name, n in seen), seen
    torch.set_num_threads(1)
    expected = one.translate(texts)
    assert [(t.text, t.score, t.nbest) for t in found] == [
        (t.text, t.score, t.nbest) for t in expected
    ]
    targets = [t.text for t in expected]
    assert two.score(texts, targets) == one.score(texts, targets)
    sample = {"sampling": "topk:5", "seed": 3, "batch_size": 2}
    drawn = [
        seq2seq.Translator.load(run_dir, device="cpu", workers=w, **sample).translate(texts)
        for w in (1, 2)
    ]
    assert [t.text for t in drawn[0]] == [t.text for t in drawn[1]]
    with pytest.raises(ValueError, match="workers: got 0, expected an integer >= 1"):
        seq2seq.Translator.load(run_dir, device="cpu", workers=0)


def test_translate_options_and_attention(translator, sources):
    one = translator.translate(sources[0])  # a string is one text
    assert len(one) == 1 and one[0].text == translator.translate([sources[0]])[0].text
    nbest = translator.translate(sources[:3], beam=4, n_best=3)
    assert all(1 <= len(t.nbest) <= 3 for t in nbest)
    assert all(t.nbest[0] == (t.text, t.score) for t in nbest)
    greedy = translator.translate(sources[:3], beam=1)
    assert all(len(t.nbest) == 1 for t in greedy)
    with_attention = translator.translate(sources[:3], beam=1, attention=True, alignments=True)
    for t in with_attention:
        rows, cols = t.attention.labels("cross")
        assert rows[: len(t.pieces)] == t.pieces
        assert t.attention.matrices("cross").shape[-2:] == (len(rows), len(cols))
        assert t.alignment is not None
        assert all(0 <= j < len(t.text.split()) for _, j in t.alignment)
    assert [t.text for t in with_attention] == [t.text for t in greedy]


def test_attention_forced_and_translated(translator, sources):
    tokenizer = translator.tokenizer
    forced = translator.attention(sources[0], "drei Katzen")
    assert forced.tgt_pieces == [*tokenizer.tgt_pieces(tokenizer.encode_tgt("drei Katzen")), EOS]
    translated = translator.attention(sources[0], beam=1)
    assert translated.title == sources[0]
    best = translator.translate([sources[0]], beam=1)[0]
    assert translated.tgt_pieces[: len(best.pieces)] == best.pieces
    # the weights the search recorded equal a teacher-forced pass over its own output
    again = translator.attention(sources[0], best.text)
    if tokenizer.encode_tgt(best.text) == best.tokens and translated.tgt_pieces[-1] == EOS:
        for slot in translated.weights:
            np.testing.assert_allclose(translated.weights[slot], again.weights[slot], atol=1e-5)


def test_describe(translator):
    info = translator.describe()
    assert info["arch"] == "transformer"
    assert info["attention"]["cross"] == {"type": "scaled_dot", "heads": 2}
    assert info["parameters"] == sum(p.numel() for p in translator.model.parameters())
    assert info["beam"] == 4
    assert info["stopping"] == "exact"  # the config's default


def test_stopping_comes_from_the_config_unless_given(run_dir, sources):
    from seq2seq.checkpoint import load_run

    run = load_run(run_dir, device="cpu")
    run.config.decode.stopping = "early"
    assert seq2seq.Translator.from_run(run).options.stopping == "early"
    given = seq2seq.Translator.from_run(run, stopping="exact", length_penalty=0.0)
    early = seq2seq.Translator.from_run(run, length_penalty=0.0)
    assert given.options.stopping == "exact"
    # at alpha 0 the two rules are the same test
    assert [t.text for t in given.translate(sources)] == [t.text for t in early.translate(sources)]
    with pytest.raises(ValueError, match="stopping: got 'soon', expected one of exact, early"):
        seq2seq.Translator.from_run(run, stopping="soon")


def test_bad_input(translator, run_dir, tmp_path):
    assert translator.translate([]) == []
    assert translator.score([], []) == []
    with pytest.raises(TypeError, match=r"texts\[1\]: expected a string, got int"):
        translator.translate(["fine", 3])
    with pytest.raises(TypeError, match="expected a string or a list of strings, got bytes"):
        translator.translate(b"bytes")
    with pytest.raises(ValueError, match="2 sources but 1 targets"):
        translator.score(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="empty"):
        translator.attention("   ")
    with pytest.raises(ValueError, match="n-best"):
        translator.translate(["a"], beam=2, n_best=3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        seq2seq.Translator.load(tmp_path / "no-such-run")
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(Path(run_dir) / "best.pt", lonely / "best.pt")  # no subword model beside it
    with pytest.raises(CheckpointError, match="missing"):
        seq2seq.Translator.load(lonely, device="cpu")
    with pytest.raises(ValueError, match="device"):
        seq2seq.Translator.load(run_dir, device="tpu")


def test_empty_texts_do_not_touch_the_model(translator):
    out = translator.translate(["", "  "])
    assert [(t.text, t.tokens, t.score) for t in out] == [("", [], 0.0), ("", [], 0.0)]


def test_search_reports_float32_log_probs(translator, sources):
    """The scores are the searches' own: beam_search on one sentence gives the same."""
    src = collate_src([translator.tokenizer.encode_src(sources[1])])
    options = translator.options  # the run's decode section: max_len_offset 5
    limit = max_output_lengths(
        src, ratio=options.max_len_ratio, offset=options.max_len_offset, max_positions=64
    )
    with torch.inference_mode():
        hyps = beam_search(translator.model, src, beam=4, n_best=3, max_len=limit)[0]
    results = translator.translate([sources[1]], beam=4, n_best=3)[0]
    assert [round(s, 4) for _, s in results.nbest] == [round(h.score, 4) for h in hyps]


def test_load_packs_the_linear_layers_a_given_model_is_left_alone(run_dir, sources, monkeypatch):
    """Translator.load decodes with oneDNN-packed weights (here every linear map, the
    threshold lowered for the tiny model) and translates as the unpacked model does; a model
    handed to the constructor (validation's model in training) keeps its layers."""
    from seq2seq.checkpoint import load_run
    from seq2seq.runtime import packed

    if not packed.packing_available():
        pytest.skip("torch built without oneDNN")
    monkeypatch.setattr(packed, "MIN_PACKED", 1)
    loaded = seq2seq.Translator.load(run_dir, device="cpu", precision="fp32", beam=4)
    kinds = {type(m).__name__ for m in loaded.model.modules()}
    assert "PackedLinear" in kinds and "Linear" not in kinds
    plain = seq2seq.Translator.from_run(load_run(run_dir, device="cpu"), precision="fp32", beam=4)
    assert not any(isinstance(m, packed.PackedLinear) for m in plain.model.modules())
    a, b = loaded.translate(sources), plain.translate(sources)
    assert [t.text for t in a] == [t.text for t in b]
    np.testing.assert_allclose([t.score for t in a], [t.score for t in b], atol=1e-4)
