"""scripts/get_multi30k.sh --from DIR: copies, verifies checksums, is idempotent, fails clearly."""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "get_multi30k.sh"
CANDIDATES = [REPO.parent / "shared" / "data" / "multi30k", Path("/work/shared/data/multi30k")]
SHARED = next((p for p in CANDIDATES if (p / "train.en.gz").is_file()), None)
NAMES = [
    f"{split}.{lang}.gz"
    for split in ("train", "val", "test_2016_flickr")
    for lang in ("en", "de", "fr", "cs")
]
LINES = {"train": 29_000, "val": 1_014, "test_2016_flickr": 1_000}

pytestmark = [
    pytest.mark.skipif(SHARED is None, reason="no local Multi30k copy (../shared/data/multi30k)"),
    pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash"),
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_copy_verify_and_rerun(tmp_path):
    out = tmp_path / "multi30k"
    result = run("--from", str(SHARED), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(NAMES)  # no temporary files left
    embedded = dict(
        (name, digest)
        for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", SCRIPT.read_text(), flags=re.M)
    )
    assert sorted(embedded) == sorted(NAMES)
    for name in NAMES:
        data = (out / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == embedded[name]
        split = name.rsplit(".", 2)[0]
        assert gzip.decompress(data).decode("utf-8").count("\n") == LINES[split]
    stamp = {name: (out / name).stat().st_mtime_ns for name in NAMES}
    again = run("--from", str(SHARED), "--out", str(out))
    assert again.returncode == 0 and "0 file(s) fetched" in again.stdout
    assert {name: (out / name).stat().st_mtime_ns for name in NAMES} == stamp


def test_checksum_mismatch_fails_and_leaves_nothing(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in NAMES:
        shutil.copyfile(SHARED / name, source / name)
    with open(source / "val.de.gz", "ab") as f:
        f.write(b"tampered")
    out = tmp_path / "out"
    result = run("--from", str(source), "--out", str(out))
    assert result.returncode != 0
    assert "checksum mismatch" in result.stderr and "val.de.gz" in result.stderr
    assert not (out / "val.de.gz").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_bad_arguments(tmp_path):
    missing = run("--from", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"))
    assert missing.returncode != 0 and "nowhere" in missing.stderr
    (tmp_path / "partial").mkdir()
    partial = run("--from", str(tmp_path / "partial"), "--out", str(tmp_path / "o"))
    assert partial.returncode != 0 and "train.en.gz" in partial.stderr
    assert list((tmp_path / "o").iterdir()) == []  # the temporary file was removed
    unknown = run("--frm", "x")
    assert unknown.returncode != 0 and "--frm" in unknown.stderr
