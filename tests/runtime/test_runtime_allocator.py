"""seq2seq.runtime.allocator: freed tensors stay in the heap, so that re-allocating them costs no
page faults; the user's own malloc settings and SEQ2SEQ_MALLOC=system leave malloc alone."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from seq2seq.cli import main

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="mallopt thresholds are glibc's",
)

# Holds a 64 MiB tensor and reads glibc's count of bytes in mmapped blocks (mallinfo2); then
# 30 rounds of a training-like pattern (two 64 MiB tensors, filled so that their pages are
# touched, then freed) after three warm-up rounds, counting the minor page faults.
_PROBE = """
import ctypes, json, resource, torch
from seq2seq.runtime.allocator import retain_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2
applied = retain_freed_memory()
held = torch.empty(16 * 1024 * 1024)
mmapped = mallinfo2().hblkhd
del held
def rounds(n):
    for _ in range(n):
        x = torch.empty(16 * 1024 * 1024)
        x.fill_(1.0)
        y = x * 2
        del x, y
rounds(3)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds(30)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"applied": applied, "mmapped": mmapped, "faults": faults}))
"""

_MIB64 = 64 * 1024 * 1024
_PAGES = 2 * 30 * _MIB64 // 4096  # pages touched by the 30 rounds


def _probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    clean.pop("SEQ2SEQ_MALLOC", None)
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env={**clean, "OMP_NUM_THREADS": "1", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


@glibc
def test_freed_blocks_are_reused_without_page_faults():
    retained = _probe()
    system = _probe(SEQ2SEQ_MALLOC="system")
    assert retained["applied"] is True
    assert system["applied"] is False
    # glibc's default: a 64 MiB block is an mmap of its own, faulted in page by page each time
    assert system["mmapped"] >= _MIB64
    assert system["faults"] > 0.9 * _PAGES
    # retained: the block comes from the heap and freed blocks are used again
    assert retained["mmapped"] < _MIB64
    # (a few rounds may still grow the heap before its free blocks fit the requests)
    assert retained["faults"] < 0.25 * _PAGES


@glibc
def test_the_users_malloc_settings_stand():
    probe = _probe(MALLOC_MMAP_THRESHOLD_=str(128 * 1024))
    assert probe["applied"] is False
    assert probe["mmapped"] >= _MIB64


def test_a_bad_choice_is_an_error_naming_the_variable(monkeypatch, capsys):
    from seq2seq.runtime.allocator import retain_freed_memory

    monkeypatch.setenv("SEQ2SEQ_MALLOC", "jemalloc")
    with pytest.raises(ValueError, match=r"SEQ2SEQ_MALLOC.*'jemalloc'.*retain.*system"):
        retain_freed_memory()
    assert main(["average", "--help"]) == 0  # --help never reaches it
    code = main(["average", "nothing-here", "--out", "x.pt"])
    assert code == 2
    assert "SEQ2SEQ_MALLOC" in capsys.readouterr().err


@glibc
def test_release_returns_freed_blocks():
    from seq2seq.runtime.allocator import release_freed_memory

    assert release_freed_memory() is True
