"""Prepared data: encoded once into memory-mapped arrays, checked, rebuilt or refused."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seq2seq.config import Config, config_from_dict, save_config
from seq2seq.data import DataError, Tokenizer, collate, read_parallel
from seq2seq.data import prepared as prepared_module
from seq2seq.data.batching import greedy_cut
from seq2seq.data.prepared import PREPARED_DIR, PreparedData, prepare, stale_reason
from seq2seq.demo.corpus import generate_demo


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo corpus with an empty source line and an over-long pair mixed in."""
    data = tmp_path_factory.mktemp("corpus")
    generate_demo(data, seed=2, n_train=300, n_valid=5, n_test=5)
    for side, extra in (("en", ["", "long " * 80]), ("de", ["leer", "kurz"])):
        path = data / f"train.{side}"
        lines = path.read_text(encoding="utf-8").splitlines()
        lines[7:7] = extra
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data


def make_config(data: Path, **data_keys) -> Config:
    return config_from_dict(
        {
            "data": {
                "train": {"src": str(data / "train.en"), "tgt": str(data / "train.de")},
                "valid": {"src": str(data / "valid.en"), "tgt": str(data / "valid.de")},
                "max_len": 60,
                "tokenizer": {"vocab_size": 100},
                **data_keys,
            },
            "model": {"max_positions": 64},
        }
    )


def reference_pairs(cfg: Config, tokenizer: Tokenizer) -> tuple[list, dict[str, int]]:
    """The kept pairs and drop counts, computed in memory from the text: the spec."""
    src, tgt = read_parallel(cfg.data.train.src, cfg.data.train.tgt)
    pairs, dropped = [], {"too_long": 0, "empty_source": 0}
    for s, t in zip(tokenizer.encode_src_batch(src), tokenizer.encode_tgt_batch(tgt), strict=True):
        if not s:
            dropped["empty_source"] += 1
        elif max(len(s), len(t)) > cfg.data.max_len:
            dropped["too_long"] += 1
        else:
            pairs.append((s, t))
    return pairs, dropped


@pytest.mark.parametrize("workers", [1, 2])
def test_prepared_arrays_hold_the_encoded_corpus(tmp_path: Path, corpus: Path, workers: int):
    cfg = make_config(corpus, workers=workers)
    data = prepare(cfg, tmp_path / "run", progress=False)
    pairs, dropped = reference_pairs(cfg, Tokenizer.load(tmp_path / "run"))
    header = data.header
    assert header["pairs"] == {"read": 302, "kept": len(pairs), "dropped": dropped}
    assert dropped["empty_source"] == 1 and dropped["too_long"] >= 1  # the two lines added
    assert header["dtype"] == "uint8"  # 100 pieces: ids fit one byte
    assert data.lengths["src"].dtype == np.uint8  # data.max_len = 60
    assert isinstance(data.tokens["src"], np.memmap)
    assert [data.pair(i) for i in range(len(data))] == pairs
    index = np.array([4, 0, 17, len(pairs) - 1])
    got, want = data.collate(index), collate([pairs[i] for i in index])
    for name in ("src", "tgt_in", "tgt_out"):
        assert getattr(got, name).tolist() == getattr(want, name).tolist(), name
    assert (got.src_tokens, got.tgt_tokens, got.size) == (
        want.src_tokens,
        want.tgt_tokens,
        want.size,
    )
    assert got.padding == pytest.approx(want.padding)
    src_len, tgt_len = data.tensor_lengths()
    assert src_len.tolist() == [len(s) + 1 for s, _ in pairs]
    assert tgt_len.tolist() == [len(t) + 1 for _, t in pairs]
    assert header["sources"]["src"]["sha256"] == prepared_module.file_sha256(corpus / "train.en")
    assert not list((tmp_path / "run").glob(".*"))  # no temporary folder left


def test_worker_count_does_not_change_the_files(tmp_path: Path, corpus: Path):
    one = prepare(make_config(corpus, workers=1), tmp_path / "a", progress=False)
    prepared_module.CHUNK_LINES, chunk = 37, prepared_module.CHUNK_LINES  # many chunks
    try:
        two = prepare(make_config(corpus, workers=2), tmp_path / "b", progress=False)
    finally:
        prepared_module.CHUNK_LINES = chunk
    assert one.header["files"] == two.header["files"]


def test_prepared_data_are_reused_not_encoded_again(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
):
    cfg = make_config(corpus)
    first = prepare(cfg, tmp_path, progress=False)

    def no_build(*args, **kwargs):
        raise AssertionError("prepared data were built again")

    monkeypatch.setattr(prepared_module, "build", no_build)
    again = prepare(cfg, tmp_path, progress=False)
    assert again.header == first.header
    monkeypatch.undo()
    changed = make_config(corpus, max_len=20)
    assert "data.max_len" in stale_reason(changed, tmp_path)
    assert len(prepare(changed, tmp_path, progress=False)) < len(first)


def copy_corpus(corpus: Path, out: Path) -> Path:
    out.mkdir()
    for path in corpus.iterdir():
        (out / path.name).write_bytes(path.read_bytes())
    return out


def test_a_changed_source_file_is_named_and_prepared_again(tmp_path: Path, corpus: Path):
    data = copy_corpus(corpus, tmp_path / "data")
    cfg = make_config(data)
    prepare(cfg, tmp_path / "run", progress=False)
    source = data / "train.de"
    text = source.read_bytes()
    source.write_bytes(text.replace(b"a", b"o", 1))  # same size, other content
    os.utime(source, ns=(0, 1))
    reason = stale_reason(cfg, tmp_path / "run")
    assert str(source) in reason and "same size" in reason
    source.write_bytes(text + b"one more line\n")
    assert "bytes, was" in stale_reason(cfg, tmp_path / "run")
    with pytest.raises(DataError, match="differ in length"):
        prepare(cfg, tmp_path / "run", progress=False)
    (data / "train.en").write_bytes((data / "train.en").read_bytes() + b"one more\n")
    rebuilt = prepare(cfg, tmp_path / "run", progress=False)
    assert rebuilt.header["pairs"]["read"] == 303
    assert stale_reason(cfg, tmp_path / "run") is None


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_a_damaged_prepared_file_is_detected_and_rebuilt(tmp_path: Path, corpus: Path, damage: str):
    cfg = make_config(corpus)
    good = prepare(cfg, tmp_path, progress=False).header
    path = tmp_path / PREPARED_DIR / "tgt.tokens.bin"
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        del raw[-3:]
    else:
        raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    reason = stale_reason(cfg, tmp_path)
    assert str(path) in reason
    assert ("truncated" if damage == "truncate" else "corrupted") in reason
    assert prepare(cfg, tmp_path, progress=False).header["files"] == good["files"]


def test_a_full_disk_leaves_no_half_written_data(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
):
    data = copy_corpus(corpus, tmp_path / "data")
    cfg = make_config(data)
    old = prepare(cfg, tmp_path / "run", progress=False).header
    (data / "train.en").write_bytes((data / "train.en").read_bytes().replace(b"e", b"E", 3))
    written = {"bytes": 0}
    real_write = prepared_module._HashingWriter.write

    def write(self, data):
        written["bytes"] += len(data)
        if written["bytes"] > 200:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(prepared_module._HashingWriter, "write", write)
    with pytest.raises(DataError, match=r"cannot write the prepared data \(No space left"):
        prepare(cfg, tmp_path / "run", progress=False)
    run_files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert not [name for name in run_files if name.startswith(".")]  # temporary folder gone
    assert json.loads((tmp_path / "run" / PREPARED_DIR / "header.json").read_text()) == old
    assert "changed" in stale_reason(cfg, tmp_path / "run")  # the old data are never used


def test_invalid_utf8_deep_in_a_large_file_names_the_line(tmp_path: Path):
    lines = 3_000_000
    src, tgt = tmp_path / "train.en", tmp_path / "train.de"
    with open(src, "wb") as f:
        f.write(b"a b\n" * lines + b"ok \xff\xfe line\n" + b"c d\n" * 5)
    tgt.write_bytes(b"x\n" * (lines + 6))
    (tmp_path / "valid.en").write_text("a\n")
    (tmp_path / "valid.de").write_text("x\n")
    cfg = make_config(tmp_path)
    with pytest.raises(DataError, match=rf"{src}, line 3000001: invalid UTF-8"):
        prepare(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # nothing written


def test_an_empty_training_file_is_refused(tmp_path: Path, corpus: Path):
    data = copy_corpus(corpus, tmp_path / "data")
    (data / "train.de").write_bytes(b"")
    with pytest.raises(DataError, match=rf"{data / 'train.de'}: file is empty"):
        prepare(make_config(data), tmp_path / "run", progress=False)


def test_prepare_command(tmp_path: Path, corpus: Path):
    config = tmp_path / "c.yaml"
    save_config(make_config(corpus), config)
    command = [sys.executable, "-m", "seq2seq", "prepare", str(config), "--quiet"]
    done = subprocess.run(
        [*command, "--run-dir", str(tmp_path / "run")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    pairs = PreparedData(tmp_path / "run" / PREPARED_DIR).header["pairs"]
    assert (
        f"{pairs['kept']} of 302 pairs ({pairs['dropped']['too_long']} longer than"
        " data.max_len=60, 1 with an empty source)" in done.stdout
    )
    bad = subprocess.run(
        [*command, "--run-dir", str(tmp_path / "x"), "--set", "data.train.src=missing.en"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert "seq2seq prepare: error: missing.en: file not found" in bad.stderr


def test_greedy_cut_equals_the_one_by_one_loop():
    def reference(widths, budget, min_size):
        batches, batch, widest = [], [], 0
        for i, width in enumerate(widths):
            wider = max(widest, width)
            if batch and len(batch) >= min_size and (len(batch) + 1) * wider > budget:
                batches.append(batch)
                batch, wider = [], width
            batch.append(i)
            widest = wider
        if len(batch) < min_size and batches:
            batches[-1].extend(batch)
        elif batch:
            batches.append(batch)
        return [0, *np.cumsum([len(b) for b in batches]).tolist()]

    rng = np.random.default_rng(5)
    for _ in range(300):
        n = int(rng.integers(3, 300))
        widths = rng.integers(1, 60, n)
        budget, min_size = int(rng.integers(1, 400)), int(rng.integers(1, 4))
        assert greedy_cut(widths, budget, min_size).tolist() == reference(widths, budget, min_size)


def test_blank_sides_are_refused_before_anything_is_written(tmp_path: Path, corpus: Path, caplog):
    data = copy_corpus(corpus, tmp_path / "data")
    lines = (data / "train.en").read_text(encoding="utf-8").count("\n")
    (data / "train.en").write_text(" \n" * lines, encoding="utf-8")
    with pytest.raises(DataError, match=rf"{data / 'train.en'}: all {lines} lines are empty"):
        prepare(make_config(data), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    (data / "train.en").write_bytes((corpus / "train.en").read_bytes())
    targets = (data / "train.de").read_text(encoding="utf-8").splitlines()
    targets[:10] = [""] * 10  # 10 of 302: over 1 %
    (data / "train.de").write_text("\n".join(targets) + "\n", encoding="utf-8")
    prepare(make_config(data), tmp_path / "run", progress=False)
    assert "10 of 302 target lines (3.3%) are empty" in caplog.text


def test_no_pair_left_writes_nothing(tmp_path: Path, corpus: Path):
    with pytest.raises(DataError, match=r"no training pair is left .* raise data.max_len"):
        prepare(make_config(corpus, max_len=1), tmp_path / "run", progress=False)
    assert list((tmp_path / "run").iterdir()) == []  # no subword model, no prepared data
