"""Atomic output (seq2seq.fileio): all or nothing, beside the target, with open()'s permissions."""

from __future__ import annotations

import os
import stat

import pytest

from seq2seq.fileio import atomic_open, atomic_path, write_atomic, write_with


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_write_atomic_bytes_and_text_replace_the_file(tmp_path):
    path = tmp_path / "out.bin"
    assert write_atomic(b"\x00\x01", path) == path
    assert path.read_bytes() == b"\x00\x01"
    write_atomic("größe\n", path)  # str is written as UTF-8
    assert path.read_bytes() == "größe\n".encode()
    assert _leftovers(tmp_path) == []


def test_an_error_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old\n")
    with pytest.raises(RuntimeError, match="boom"), atomic_open(path) as f:
        f.write("half of the new")
        raise RuntimeError("boom")
    assert path.read_text() == "old\n"
    assert _leftovers(tmp_path) == []
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "new.txt") as tmp:
        tmp.write_text("x")
        raise KeyboardInterrupt
    assert not (tmp_path / "new.txt").exists() and _leftovers(tmp_path) == []


def test_text_mode_is_utf8_with_unix_newlines(tmp_path):
    path = tmp_path / "t.txt"
    with atomic_open(path) as f:
        f.write("a\nß\n")
    assert path.read_bytes() == "a\nß\n".encode()
    with pytest.raises(ValueError, match="mode"), atomic_open(path, "a"):
        pass


def test_permissions_follow_the_umask_like_open(tmp_path):
    old = os.umask(0o027)
    try:
        write_atomic("x", tmp_path / "atomic")
        with open(tmp_path / "plain", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "atomic").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o640


def test_temporary_lies_beside_the_target_and_parents(tmp_path):
    seen = []

    def write(tmp):
        seen.append(tmp)
        tmp.write_text("figure")

    path = tmp_path / "a" / "b" / "fig.png"
    with pytest.raises(FileNotFoundError):
        write_with(path, write)
    assert write_with(path, write, parents=True) == path
    assert seen[-1].parent == path.parent and seen[-1].name.startswith(".fig.png.")
    assert path.read_text() == "figure" and _leftovers(path.parent) == []


def test_a_directory_target_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError, match="expected an output file"):
        write_atomic("x", tmp_path)
    assert tmp_path.is_dir()


def test_errors_name_the_target_not_the_temporary(tmp_path):
    path = tmp_path / "no-such-dir" / "out.de"
    with pytest.raises(FileNotFoundError) as info:
        write_atomic("x", path)
    assert info.value.filename == str(path) and ".tmp" not in str(info.value)

    def denied(tmp):  # e.g. a plotting library failing on the path it was given
        raise PermissionError(13, "Permission denied", str(tmp))

    with pytest.raises(PermissionError) as info:
        write_with(tmp_path / "fig.png", denied)
    assert info.value.filename == str(tmp_path / "fig.png")
    assert _leftovers(tmp_path) == []

    def other_file(tmp):  # an error about another file keeps its name
        raise FileNotFoundError(2, "No such file or directory", "input.en")

    with pytest.raises(FileNotFoundError) as info:
        write_with(tmp_path / "fig.png", other_file)
    assert info.value.filename == "input.en"


def test_the_rename_is_flushed_to_the_directory(tmp_path, monkeypatch):
    flushed = []
    fsync = os.fsync

    def recording_fsync(fd):
        flushed.append(os.fstat(fd))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    write_atomic("x", tmp_path / "out.txt")
    directory = os.stat(tmp_path)
    assert [stat.S_ISDIR(s.st_mode) for s in flushed] == [False, True]  # the file, then its dir
    assert (flushed[1].st_dev, flushed[1].st_ino) == (directory.st_dev, directory.st_ino)
