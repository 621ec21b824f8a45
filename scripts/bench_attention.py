"""Benchmark attention: fused SDPA path vs explicit softmax path, forward + backward.

Usage:
    python scripts/bench_attention.py                       # full run (several minutes)
    python scripts/bench_attention.py --sizes 32 128 --repeats 5 --threads 2

What is measured, for multi-head self-attention (``build_attention({"type": T, "heads": 4},
256, 256)``: batch 32, 4 heads of 64) on inputs x [B, T, 256], no mask unless ``--causal``:

* time: one forward + backward (``ctx.backward(grad)``) of the whole module, including the
  Q/K/V/output projections. The fused path is ``need_weights=False`` (it runs
  ``F.scaled_dot_product_attention``), the explicit path is ``need_weights=True`` (scores,
  float32 softmax, weights @ V — exactly what a caller asking for weights gets). Both paths
  run alternately in the same process after ``--warmup`` runs each; the table shows the median
  of ``--repeats`` runs and the speedup explicit / fused from those medians.
* peak memory: CPU tensors have no allocator statistics, and tracemalloc does not see them, so
  every (config, path) runs once in a fresh subprocess: after building the module and inputs
  it reads its resident set size (VmRSS), resets the kernel's peak-RSS counter
  (``/proc/self/clear_refs`` = 5), runs one forward + backward and reads the peak (VmHWM).
  The reported figure is peak - baseline: the extra resident memory of one forward + backward.
  The child runs with ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed tensors go back to the
  OS at once and RSS follows live memory. It includes one-time costs of the first call
  (thread pools, kernel caches), a few MiB. Without clear_refs (non-Linux), the process-wide
  peak (ru_maxrss) is used instead, which can only overstate the figure.

Every score type (multi-head) is also measured at ``--score-size`` (default T = 128); types
without a fused kernel (additive) only have the explicit path.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seq2seq.attention import build_attention, causal_mask

D_MODEL, HEADS = 256, 4
SCORE_TYPES = ("scaled_dot", "dot", "general", "additive")


def make_case(score_type: str, batch: int, size: int, causal: bool):
    """Module, input, output gradient and mask of one benchmark configuration."""
    torch.manual_seed(0)
    module = build_attention({"type": score_type, "heads": HEADS}, D_MODEL, D_MODEL)
    x = torch.randn(batch, size, D_MODEL, requires_grad=True)
    grad = torch.randn(batch, size, D_MODEL)
    mask = causal_mask(size) if causal else None
    return module, x, grad, mask


def step(module, x, grad, mask, explicit: bool) -> None:
    """One forward + backward of self-attention on x."""
    module.zero_grad(set_to_none=True)
    x.grad = None
    context, _ = module(x, x, x, mask=mask, need_weights=explicit)
    context.backward(grad)


def time_paths(case, paths: list[bool], warmup: int, repeats: int) -> dict[bool, float]:
    """Median seconds of each path (True = explicit), runs interleaved side by side."""
    for _ in range(warmup):
        for explicit in paths:
            step(*case, explicit)
    times: dict[bool, list[float]] = {explicit: [] for explicit in paths}
    for r in range(repeats):
        for explicit in paths if r % 2 == 0 else paths[::-1]:
            start = time.perf_counter()
            step(*case, explicit)
            times[explicit].append(time.perf_counter() - start)
    return {explicit: statistics.median(ts) for explicit, ts in times.items()}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(score_type: str, batch: int, size: int, explicit: bool, causal: bool) -> None:
    """Subprocess entry: print the extra peak RSS (MiB) of one forward + backward as JSON."""
    case = make_case(score_type, batch, size, causal)
    try:
        baseline = _status_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        step(*case, explicit)
        peak = _status_kib("VmHWM")
    except (OSError, RuntimeError):
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        step(*case, explicit)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_mib": (peak - baseline) / 1024}))


def measure_memory(score_type: str, args, size: int, explicit: bool) -> float:
    cmd = [sys.executable, __file__, "--memory-child", score_type, str(size), str(int(explicit))]
    cmd += ["--batch", str(args.batch), "--threads", str(args.threads)]
    cmd += ["--causal"] if args.causal else []
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mib"]


def bench_row(score_type: str, size: int, args) -> dict:
    """Time (and memory) of both paths of one configuration."""
    case = make_case(score_type, args.batch, size, args.causal)
    has_fused = case[0].fused_scale is not None
    paths = [False, True] if has_fused else [True]
    times = time_paths(case, paths, args.warmup, args.repeats)
    del case
    row = {"type": score_type, "T": size, "times": times, "memory": {}}
    if not args.no_memory:
        row["memory"] = {
            explicit: measure_memory(score_type, args, size, explicit) for explicit in paths
        }
    return row


def format_row(row: dict) -> str:
    times, memory = row["times"], row["memory"]
    fused_ms = f"{times[False] * 1e3:.1f}" if False in times else "—"
    explicit_ms = f"{times[True] * 1e3:.1f}"
    speedup = f"{times[True] / times[False]:.2f}x" if False in times else "—"
    mem = [f"{memory[k]:.0f}" if k in memory else "—" for k in (False, True)]
    ratio = (
        f"{memory[True] / memory[False]:.2f}x" if len(memory) == 2 and memory[False] > 0 else "—"
    )
    cells = [row["type"], str(row["T"]), fused_ms, explicit_ms, speedup, *mem, ratio]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 128, 512, 1024])
    parser.add_argument("--score-size", type=int, default=128, help="T for the score-type rows")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per path (median)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--causal", action="store_true", help="pass a causal mask to both paths")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument(
        "--memory-child", nargs=3, metavar=("TYPE", "T", "EXPLICIT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        score_type, size, explicit = args.memory_child
        memory_child(score_type, args.batch, int(size), explicit == "1", args.causal)
        return
    print(
        f"torch {torch.__version__}, threads {args.threads}, batch {args.batch}, "
        f"d_model {D_MODEL}, heads {HEADS}, repeats {args.repeats} (median), "
        f"mask {'causal' if args.causal else 'none'}; time = forward + backward\n"
    )
    header = (
        "| type | T | fused ms | explicit ms | speedup | fused peak MiB | explicit peak MiB "
        "| memory ratio |\n|---|---|---|---|---|---|---|---|"
    )
    print("multi-head scaled_dot, fused vs explicit:\n\n" + header, flush=True)
    rows = {}
    for size in args.sizes:
        rows[("scaled_dot", size)] = bench_row("scaled_dot", size, args)
        print(format_row(rows[("scaled_dot", size)]), flush=True)
    print(f"\nevery score type (multi-head), T = {args.score_size}:\n\n" + header, flush=True)
    for score_type in SCORE_TYPES:
        key = (score_type, args.score_size)
        row = rows.get(key) or bench_row(score_type, args.score_size, args)
        print(format_row(row), flush=True)


if __name__ == "__main__":
    main()
