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


def test_phase_rows_sum_the_labelled_blocks(tmp_path):
    a = torch.randn(32, 32)
    with profiled(tmp_path / "p", phases=("work", "Optimizer.step", "absent")) as prof:
        for _ in range(2):
            with torch.profiler.record_function("work"):
                torch.mm(a, a)
        with torch.profiler.record_function("Optimizer.step#Adam.step"):  # a prefix match
            torch.mm(a, a)
    rows = {line.split(" | ")[0].strip("| "): line for line in prof.table.splitlines()}
    assert rows["work"].split(" | ")[1] == "2"
    assert rows["Optimizer.step"].split(" | ")[1] == "1"
    assert rows["absent"].split(" | ")[1:3] == ["0", "0.0"]
    assert prof.table.startswith("wall-clock time of the profiled block")
