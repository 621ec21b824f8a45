"""`seq2seq translate` and `seq2seq evaluate` end to end on a tiny trained run."""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import logging
import os
from pathlib import Path

import pytest
import sacrebleu
import torch

from seq2seq.checkpoint import load_run
from seq2seq.cli import main
from seq2seq.commands.translate import decode_workers
from seq2seq.data import collate_src
from seq2seq.inference import greedy_search
from seq2seq.inference.search import max_output_lengths


def _run_factory():
    path = Path(__file__).parents[1] / "training" / "run_factory.py"
    spec = importlib.util.spec_from_file_location("run_factory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(run dir, data dir) of a tiny transformer trained for a few steps on the demo corpus."""
    root = tmp_path_factory.mktemp("inference_cli")
    run_dir = _run_factory().make_tiny_run(
        root, overrides=["train.max_steps=20", "train.validate_every=20"]
    )
    return run_dir, root / "data"


def run_cli(args, monkeypatch, capsys, stdin: bytes | None = None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_translate_stdin_edge_cases(tiny, monkeypatch, capsys, caplog):
    run_dir, _ = tiny
    long_line = " ".join(["twenty-three cats and forty-five dogs"] * 20)
    lines = ["three cats", "", "one", long_line, "", "I have seven horses ."]
    with caplog.at_level(logging.WARNING):
        code, out, _ = run_cli(
            ["translate", str(run_dir), "--beam", "1", "--precision", "fp32"],
            monkeypatch,
            capsys,
            stdin="\n".join(lines).encode() + b"\n",
        )
    assert code == 0
    outputs = out.split("\n")[:-1]
    assert len(outputs) == len(lines)
    assert outputs[1] == "" and outputs[4] == ""
    assert any("input line 4" in r.message and "truncated" in r.message for r in caplog.records)
    # --beam 1 is greedy search, one sentence at a time: sorting and batching keep the order
    run = load_run(run_dir)
    for line, output in zip(lines, outputs, strict=True):
        if not line:
            continue
        ids = run.tokenizer.encode_src(line)[: run.model.max_positions - 1]
        src = collate_src([ids])
        limit = max_output_lengths(
            src,
            ratio=run.config.decode.max_len_ratio,
            offset=run.config.decode.max_len_offset,
            max_positions=run.model.max_positions,
        )
        hyp = greedy_search(run.model, src, max_len=limit)[0]
        assert output == run.tokenizer.decode_tgt(hyp.tokens)


def test_translate_files_nbest_and_alignments(tiny, tmp_path, monkeypatch, capsys):
    run_dir, data = tiny
    src_lines = [*(data / "test.en").read_text(encoding="utf-8").splitlines()[:6], ""]
    (tmp_path / "in.en").write_text("\n".join(src_lines) + "\n", encoding="utf-8")
    out, align = tmp_path / "out.de", tmp_path / "out.align"
    code, stdout, _ = run_cli(
        [
            "translate",
            str(run_dir),
            "--input",
            str(tmp_path / "in.en"),
            "--output",
            str(out),
            "--alignments",
            str(align),
            "--beam",
            "3",
        ],
        monkeypatch,
        capsys,
    )
    assert code == 0 and stdout == ""
    hyps = out.read_text(encoding="utf-8").split("\n")[:-1]
    links = align.read_text(encoding="utf-8").split("\n")[:-1]
    assert len(hyps) == len(links) == len(src_lines)
    assert hyps[-1] == "" and links[-1] == ""
    for src, hyp, line in zip(src_lines, hyps, links, strict=True):
        pairs = [tuple(map(int, link.split("-"))) for link in line.split()]
        assert len(pairs) == len(hyp.split())
        assert all(0 <= i < len(src.split()) and 0 <= j < len(hyp.split()) for i, j in pairs)
    assert not list(tmp_path.glob(".*.tmp"))  # temporary files renamed away

    code, stdout, _ = run_cli(
        [
            "translate",
            str(run_dir),
            "--input",
            str(tmp_path / "in.en"),
            "--beam",
            "3",
            "--n-best",
            "3",
        ],
        monkeypatch,
        capsys,
    )
    assert code == 0
    by_sentence: dict[int, list[tuple[str, float]]] = {}
    for row in stdout.splitlines():
        index, hyp, score = row.split(" ||| ")
        by_sentence.setdefault(int(index), []).append((hyp, float(score)))
    assert sorted(by_sentence) == list(range(len(src_lines)))
    for index, nbest in by_sentence.items():
        assert 1 <= len(nbest) <= 3
        assert [s for _, s in nbest] == sorted((s for _, s in nbest), reverse=True)
        if src_lines[index]:
            assert nbest[0][0] == hyps[index]  # same search as the file run above


def test_translate_bad_input(tiny, tmp_path, monkeypatch, capsys):
    run_dir, _ = tiny
    bad = b"one cat\ntwo \xff cats\nthree cats\n"
    code, _, err = run_cli(["translate", str(run_dir)], monkeypatch, capsys, stdin=bad)
    assert code == 2 and "line 2" in err and "UTF-8" in err
    out = tmp_path / "out.de"
    out.write_text("old\n", encoding="utf-8")
    (tmp_path / "bad.en").write_bytes(bad)
    code, _, err = run_cli(
        ["translate", str(run_dir), "--input", str(tmp_path / "bad.en"), "--output", str(out)],
        monkeypatch,
        capsys,
    )
    assert code == 2 and "line 2" in err
    assert out.read_text(encoding="utf-8") == "old\n"  # nothing overwritten on failure
    code, _, _ = run_cli(
        [
            "translate",
            str(run_dir),
            "--input",
            str(tmp_path / "bad.en"),
            "--output",
            str(out),
            "--errors",
            "replace",
        ],
        monkeypatch,
        capsys,
    )
    assert code == 0 and len(out.read_text(encoding="utf-8").splitlines()) == 3
    code, _, err = run_cli(["translate", str(tmp_path / "missing")], monkeypatch, capsys)
    assert code == 2 and "missing" in err
    code, _, err = run_cli(
        ["translate", str(run_dir), "--beam", "2", "--n-best", "3"],
        monkeypatch,
        capsys,
        stdin=b"one\n",
    )
    assert code == 2 and "n-best" in err


def test_evaluate_equals_sacrebleu(tiny, tmp_path, monkeypatch, capsys):
    run_dir, data = tiny
    hyp_out = tmp_path / "test.hyp"
    code, out, _ = run_cli(
        [
            "evaluate",
            str(run_dir),
            "--src",
            str(data / "test.en"),
            "--ref",
            str(data / "test.de"),
            "--hyp-out",
            str(hyp_out),
            "--json",
            "--gold-alignments",
            str(data / "test.align"),
        ],
        monkeypatch,
        capsys,
    )
    assert code == 0
    result = json.loads(out)
    hyps = hyp_out.read_text(encoding="utf-8").split("\n")[:-1]
    refs = (data / "test.de").read_text(encoding="utf-8").splitlines()
    assert len(hyps) == len(refs) == result["sentences"]
    assert result["bleu"] == sacrebleu.corpus_bleu(hyps, [refs]).score
    assert result["chrf"] == sacrebleu.corpus_chrf(hyps, [refs]).score
    assert result["ter"] == sacrebleu.corpus_ter(hyps, [refs]).score
    assert result["bleu_lowercase"] == sacrebleu.corpus_bleu(hyps, [refs], lowercase=True).score
    assert result["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert {"chrf_signature", "ter_signature", "bleu_lowercase_signature"} <= set(result)
    assert 0.0 <= result["aer"] <= 1.0

    code, out, _ = run_cli(
        [
            "evaluate",
            str(run_dir),
            "--src",
            str(data / "test.en"),
            "--ref",
            str(data / "test.de"),
            "--beam",
            "1",
        ],
        monkeypatch,
        capsys,
    )
    assert code == 0
    assert out.startswith("BLEU = ") and "chrF2 = " in out and "TER = " in out
    assert "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp" in out
    assert "(lowercased)" in out and "AER" not in out
    code, out, _ = run_cli(
        [
            "evaluate",
            str(run_dir),
            "--src",
            str(data / "test.en"),
            "--ref",
            str(data / "test.de"),
            "--gold-alignments",
            str(data / "test.align"),
            "--align-head",
            "0",
        ],
        monkeypatch,
        capsys,
    )
    assert code == 0 and "AER = " in out


def test_evaluate_mismatched_files(tiny, tmp_path, monkeypatch, capsys):
    run_dir, data = tiny
    short = tmp_path / "short.de"
    short.write_text("eins\n", encoding="utf-8")
    code, _, err = run_cli(
        ["evaluate", str(run_dir), "--src", str(data / "test.en"), "--ref", str(short)],
        monkeypatch,
        capsys,
    )
    assert code == 2 and "short.de" in err and "differ in length" in err
    code, _, err = run_cli(
        [
            "evaluate",
            str(run_dir),
            "--src",
            str(data / "test.en"),
            "--ref",
            str(data / "test.de"),
            "--gold-alignments",
            str(short),
        ],
        monkeypatch,
        capsys,
    )
    assert code == 2 and "short.de" in err
    code, _, err = run_cli(
        [
            "evaluate",
            str(run_dir),
            "--src",
            str(data / "test.en"),
            "--ref",
            str(data / "test.de"),
            "--gold-alignments",
            str(data / "test.align"),
            "--align-layer",
            "5",
        ],
        monkeypatch,
        capsys,
    )
    assert code == 2 and "align layer: got 5" in err


def test_score_writes_the_api_scores(tiny, tmp_path, monkeypatch, capsys):
    from seq2seq.inference.translate import Translator

    run_dir, data = tiny
    src = (data / "test.en").read_text(encoding="utf-8").splitlines()[:6]
    tgt = (data / "test.de").read_text(encoding="utf-8").splitlines()[:6]
    src[2] = ""  # an empty source scores 0 over 0 tokens
    (tmp_path / "s.en").write_text("\n".join(src) + "\n", encoding="utf-8")
    (tmp_path / "t.de").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    args = ["score", str(run_dir), "--src", str(tmp_path / "s.en"), "--tgt", str(tmp_path / "t.de")]
    code, out, _ = run_cli([*args, "--length-penalty", "1.0"], monkeypatch, capsys)
    assert code == 0
    rows = [line.split("\t") for line in out.splitlines()]
    expected = Translator.load(run_dir, device="cpu", length_penalty=1.0).score(src, tgt)
    assert len(rows) == len(src)
    for row, pair in zip(rows, expected, strict=True):
        assert float(row[0]) == pytest.approx(pair.log_prob, abs=1e-5)
        assert int(row[1]) == pair.tokens
        assert float(row[2]) == pytest.approx(pair.log_prob / ((5 + pair.tokens) / 6), abs=1e-5)
    assert rows[2] == ["0.000000", "0", "0.000000"]
    assert all(float(r[0]) < 0 for i, r in enumerate(rows) if i != 2)
    code, _, _ = run_cli([*args, "--output", str(tmp_path / "scores.tsv")], monkeypatch, capsys)
    assert code == 0 and len((tmp_path / "scores.tsv").read_text().splitlines()) == len(src)


def test_score_bad_input(tiny, tmp_path, monkeypatch, capsys):
    run_dir, data = tiny
    (tmp_path / "two.de").write_text("a\nb\n", encoding="utf-8")
    src = str(data / "test.en")
    code, _, err = run_cli(
        ["score", str(run_dir), "--src", src, "--tgt", str(tmp_path / "two.de")],
        monkeypatch,
        capsys,
    )
    assert code == 2 and "two.de has 2;" in err
    out = tmp_path / "out.tsv"
    code, _, err = run_cli(
        ["score", str(run_dir), "--src", src, "--tgt", src, "--output", src], monkeypatch, capsys
    )
    assert code == 2 and "--output" in err and not out.exists()


def test_translate_sampling_and_prefix(tiny, tmp_path, monkeypatch, capsys):
    run_dir, data = tiny
    lines = (data / "test.en").read_text(encoding="utf-8").splitlines()[:4]
    src = tmp_path / "in.en"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    base = ["translate", str(run_dir), "--input", str(src)]
    sample = [*base, "--sampling", "topk:5", "--temperature", "0.8", "--n-best", "3"]
    code, first, _ = run_cli([*sample, "--seed", "4"], monkeypatch, capsys)
    assert code == 0 and len(first.splitlines()) == 3 * len(lines)
    assert sorted({line.split(" ||| ")[0] for line in first.splitlines()}) == ["0", "1", "2", "3"]
    assert run_cli([*sample, "--seed", "4"], monkeypatch, capsys)[1] == first
    prefix = tmp_path / "prefix.de"
    prefix.write_text("Drei Katzen\n\n\nIch\n", encoding="utf-8")
    code, out, _ = run_cli([*base, "--prefix", str(prefix), "--beam", "2"], monkeypatch, capsys)
    outputs = out.splitlines()
    assert code == 0 and outputs[0].startswith("Drei Katzen") and outputs[3].startswith("Ich")
    plain = run_cli([*base, "--beam", "2"], monkeypatch, capsys)[1].splitlines()
    assert outputs[1:3] == plain[1:3]  # empty prefix lines: as without --prefix


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sampling", "topk:0"], "--sampling: topk:0"),
        (["--sampling", "topp:1.5"], "--sampling: topp:1.5"),
        (["--sampling", "beam"], "--sampling: got 'beam'"),
        (["--temperature", "0.5"], "--temperature: applies to --sampling only"),
        (["--sampling", "full", "--beam", "3"], "--beam 3: --sampling"),
        (["--sampling", "full", "--temperature", "-1"], "--temperature"),
        (["--prefix", "PREFIX2"], "has 2 lines but the input"),
        (["--stopping", "never"], "--stopping: invalid choice: 'never'"),
    ],
)
def test_translate_bad_decoding_options(tiny, tmp_path, monkeypatch, capsys, extra, message):
    run_dir, data = tiny
    (tmp_path / "prefix.de").write_text("a\nb\n", encoding="utf-8")
    extra = [str(tmp_path / "prefix.de") if x == "PREFIX2" else x for x in extra]
    out = tmp_path / "out.de"
    args = ["translate", str(run_dir), "--input", str(data / "test.en"), "--output", str(out)]
    code, _, err = run_cli([*args, *extra], monkeypatch, capsys)
    assert code == 2 and message in err
    assert not out.exists() and not list(tmp_path.glob(".*tmp*"))


def test_translate_stopping_rule(tiny, tmp_path, monkeypatch, capsys):
    from seq2seq.inference.translate import Translator

    run_dir, data = tiny
    lines = (data / "test.en").read_text(encoding="utf-8").splitlines()[:8]
    args = ["translate", str(run_dir), "--input", str(data / "test.en"), "--beam", "3"]
    code, out, _ = run_cli([*args, "--stopping", "early"], monkeypatch, capsys)
    assert code == 0
    expected = Translator.load(run_dir, device="cpu", beam=3, stopping="early").translate(lines)
    assert out.splitlines()[: len(lines)] == [t.text for t in expected]


def test_translate_workers_give_the_same_output(tiny, tmp_path, monkeypatch, capsys):
    run_dir, data = tiny
    args = ["translate", str(run_dir), "--input", str(data / "test.en"), "--batch-size", "3"]
    outs = []
    for extra in (["--workers", "1"], ["--workers", "2", "--threads", "1"]):
        code, out, _ = run_cli([*args, *extra], monkeypatch, capsys)
        assert code == 0
        outs.append(out)
    assert outs[0] == outs[1] and len(outs[0].splitlines()) > 6  # several batches


@pytest.mark.parametrize(
    ("cores", "device", "given", "workers", "threads"),
    [
        (4, "cpu", (None, None), 2, 2),
        (2, "cpu", (None, None), 2, 1),
        (1, "cpu", (None, None), 1, 1),
        (3, "cuda", (None, None), 1, 3),
        (4, "cpu", (3, None), 3, 1),
        (4, "cpu", (1, 2), 1, 2),
    ],
)
def test_decode_workers_and_threads(monkeypatch, cores, device, given, workers, threads):
    """--workers and --threads, or their defaults: two workers on a CPU with two cores or
    more, the cores divided among the workers; on CUDA one."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    args = argparse.Namespace(workers=given[0], threads=given[1], device=device)
    assert decode_workers(args) == workers
    assert torch.get_num_threads() == threads
