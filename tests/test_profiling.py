"""seq2seq.profiling: the operator table and the Chrome trace of a profiled block."""

from __future__ import annotations

import json

import torch

from seq2seq.profiling import profiled


def test_profiled_block_writes_table_and_trace(tmp_path):
    a = torch.randn(64, 64)
    with profiled(tmp_path / "prof" / "mm", row_limit=10) as prof:
        for _ in range(3):
            torch.mm(a, a)
    assert prof.table_path == tmp_path / "prof" / "mm.txt"
    assert "aten::mm" in prof.table and "Self CPU" in prof.table
    assert prof.table_path.read_text().strip() == prof.table.strip()
    trace = json.loads(prof.trace_path.read_text())
    names = {event.get("name") for event in trace["traceEvents"]}
    assert "aten::mm" in names
    assert not [p for p in (tmp_path / "prof").iterdir() if p.name.endswith(".tmp")]
