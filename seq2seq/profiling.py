"""``torch.profiler`` around a block of work, written as a table and a Chrome trace.

    with profiled("runs/profile/train") as prof:
        ... a few training steps ...
    print(prof.table)

writes ``runs/profile/train.txt`` (the time inside each of ``phases``, the labels that
``torch.profiler.record_function`` puts around parts of the work, then the operators by self
CPU time, the top ``row_limit``; CUDA time too when the work ran on a GPU) and
``runs/profile/train.trace.json`` (open it in chrome://tracing or https://ui.perfetto.dev).
``scripts/bench_train.py --profile`` and ``scripts/bench_decode.py --profile`` use it;
docs/performance.md reads their tables.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
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
def profiled(
    out: str | os.PathLike[str], *, row_limit: int = 30, phases: Sequence[str] = ()
) -> Iterator[Profile]:
    """Profile the block (CPU, and CUDA when available); ``out`` is the path without suffix.

    ``phases``: ``record_function`` labels (or label prefixes, such as ``Optimizer.step``) whose
    total CPU time, and share of the block's wall-clock time, head the table.
    """
    out = Path(out)
    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    result = Profile(
        table_path=out.with_name(out.name + ".txt"),
        trace_path=out.with_name(out.name + ".trace.json"),
    )
    with profile(activities=activities, record_shapes=True) as prof:
        start = time.perf_counter()
        yield result
        wall = time.perf_counter() - start
    sort = "self_cuda_time_total" if ProfilerActivity.CUDA in activities else "self_cpu_time_total"
    averages = prof.key_averages()
    result.table = phase_table(averages, phases, wall) + averages.table(
        sort_by=sort, row_limit=row_limit
    )
    write_atomic(result.table + "\n", result.table_path, parents=True)
    write_with(result.trace_path, lambda tmp: prof.export_chrome_trace(str(tmp)))


def phase_table(averages, phases: Sequence[str], wall: float) -> str:
    """Markdown rows: each phase's total CPU time (ms) and its share of ``wall`` seconds."""
    if not phases:
        return ""
    lines = [
        f"wall-clock time of the profiled block: {wall * 1e3:.1f} ms",
        "",
        "| phase | calls | CPU total ms | share of wall time |",
        "|---|---|---|---|",
    ]
    for phase in phases:
        events = [e for e in averages if e.key == phase or e.key.startswith(phase + "#")]
        total_ms = sum(e.cpu_time_total for e in events) / 1e3
        calls = sum(e.count for e in events)
        lines.append(f"| {phase} | {calls} | {total_ms:.1f} | {total_ms / (wall * 1e3):.1%} |")
    return "\n".join(lines) + "\n\n"
