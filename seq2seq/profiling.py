"""``torch.profiler`` around a block of work, written as a table and a Chrome trace.

    with profiled("runs/profile/train") as prof:
        ... a few training steps ...
    print(prof.table)

writes ``runs/profile/train.txt`` (operators by self CPU time, the top ``row_limit``; CUDA time
too when the work ran on a GPU) and ``runs/profile/train.trace.json`` (open it in
chrome://tracing or https://ui.perfetto.dev). ``scripts/bench_train.py --profile`` and
``scripts/bench_decode.py --profile`` use it; docs/performance.md reads their tables.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from seq2seq.fileio import write_atomic, write_with

__all__ = ["Profile", "profiled"]


@dataclass
class Profile:
    table: str = ""  # filled when the block completes
    table_path: Path | None = None
    trace_path: Path | None = None


@contextmanager
def profiled(out: str | os.PathLike[str], *, row_limit: int = 30) -> Iterator[Profile]:
    """Profile the block (CPU, and CUDA when available); ``out`` is the path without suffix."""
    out = Path(out)
    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    result = Profile(
        table_path=out.with_name(out.name + ".txt"),
        trace_path=out.with_name(out.name + ".trace.json"),
    )
    with profile(activities=activities, record_shapes=True) as prof:
        yield result
    sort = "self_cuda_time_total" if ProfilerActivity.CUDA in activities else "self_cpu_time_total"
    result.table = prof.key_averages().table(sort_by=sort, row_limit=row_limit)
    write_atomic(result.table + "\n", result.table_path, parents=True)
    write_with(result.trace_path, lambda tmp: prof.export_chrome_trace(str(tmp)))
