"""Reading corpora: plain and gzip files, line terminators, UTF-8 and file errors."""

from __future__ import annotations

import gzip
import io
import logging

import pytest

from seq2seq.data import DataError, iter_lines, read_lines, read_parallel
from seq2seq.data.pharaoh import format_alignment, parse_alignment, read_alignments

RAW = "first line\r\nzweite Zeile mit Umlauten äöü\nthird\rstill third\nlast without newline"
EXPECTED = [
    "first line",
    "zweite Zeile mit Umlauten äöü",
    "third\rstill third",
    "last without newline",
]


def test_read_plain_and_gzip_give_the_same_lines(tmp_path):
    plain = tmp_path / "a.txt"
    plain.write_bytes(RAW.encode("utf-8"))
    packed = tmp_path / "a.txt.gz"
    packed.write_bytes(gzip.compress(RAW.encode("utf-8")))
    assert read_lines(plain) == EXPECTED
    assert read_lines(str(packed)) == EXPECTED


def test_blank_lines_are_kept_and_bom_dropped(tmp_path):
    path = tmp_path / "b.txt"
    path.write_bytes("\ufeffone\n\n  three  \n".encode())
    assert read_lines(path) == ["one", "", "  three  "]


@pytest.mark.parametrize("gz", [False, True])
def test_invalid_utf8_names_file_and_line(tmp_path, gz):
    data = b"ok\nalso ok\nbad \xff\xfe byte\nfine\n"
    path = tmp_path / ("bad.de.gz" if gz else "bad.de")
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(DataError) as info:
        read_lines(path)
    message = str(info.value)
    assert str(path) in message
    assert "line 3" in message
    assert "UTF-8" in message


def test_missing_empty_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match="not found") as info:
        read_lines(tmp_path / "nope.en")
    assert "nope.en" in str(info.value)
    empty = tmp_path / "empty.en"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        read_lines(empty)
    empty_gz = tmp_path / "empty.en.gz"
    empty_gz.write_bytes(gzip.compress(b""))
    with pytest.raises(DataError, match="empty"):
        read_lines(empty_gz)
    fake_gz = tmp_path / "fake.en.gz"
    fake_gz.write_bytes(b"not gzip at all\n")
    with pytest.raises(DataError, match=r"fake\.en\.gz"):
        read_lines(fake_gz)
    with pytest.raises(DataError, match="directory"):
        read_lines(tmp_path)
    assert issubclass(DataError, ValueError)


def test_read_parallel_checks_line_counts(tmp_path):
    src, tgt = tmp_path / "train.en", tmp_path / "train.de"
    src.write_text("a\nb\nc\n", encoding="utf-8")
    tgt.write_text("x\ny\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_parallel(src, tgt)
    message = str(info.value)
    assert str(src) in message and str(tgt) in message
    assert "3 lines" in message and "has 2" in message
    tgt.write_text("x\ny\nz\n", encoding="utf-8")
    assert read_parallel(src, tgt) == (["a", "b", "c"], ["x", "y", "z"])


def test_iter_lines_strict_and_replace(caplog):
    data = b"eins\r\nzw\xc3i\ndrei"
    lines = iter_lines(io.BytesIO(data), name="stdin")
    assert next(lines) == "eins"
    with pytest.raises(DataError, match=r"stdin, line 2"):
        next(lines)
    with caplog.at_level(logging.WARNING):
        out = list(iter_lines(io.BytesIO(data), errors="replace", name="stdin"))
    assert out == ["eins", "zw\ufffdi", "drei"]
    assert "line 2" in caplog.text


def test_iter_lines_reads_text_streams_through_their_buffer():
    stream = io.TextIOWrapper(io.BytesIO("a\nb\xe4\n".encode()), encoding="utf-8")
    assert list(iter_lines(stream)) == ["a", "b\xe4"]
    assert list(iter_lines(["x\n", "y"])) == ["x", "y"]
    with pytest.raises(ValueError, match="errors"):
        list(iter_lines(io.BytesIO(b"a"), errors="ignore"))  # type: ignore[arg-type]


def test_pharaoh_sure_and_possible_links(tmp_path):
    sure, possible = parse_alignment("0-0 2p1 1-2")
    assert sure == {(0, 0), (1, 2)}
    assert possible == {(0, 0), (1, 2), (2, 1)}  # possible includes sure
    assert format_alignment(sure, possible) == "0-0 1-2 2p1"
    assert parse_alignment("0-0 2?1 1-2") == (sure, possible)
    with pytest.raises(DataError, match="bad link"):
        parse_alignment("0-1 3x4")
    path = tmp_path / "gold.align"
    path.write_text("0-0 1p1\n\n2-0\n", encoding="utf-8")
    assert read_alignments(path) == [
        ({(0, 0)}, {(0, 0), (1, 1)}),
        (set(), set()),
        ({(2, 0)}, {(2, 0)}),
    ]
    path.write_text("0-0\n0-x\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2"):
        read_alignments(path)
