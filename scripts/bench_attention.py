"""Benchmark attention: fused SDPA path vs explicit softmax path, forward + backward.

Usage:
    python scripts/bench_attention.py                       # full run (several minutes)
    python scripts/bench_attention.py --sizes 32 128 --repeats 5 --threads 2
    python scripts/bench_attention.py --device cuda --bf16 --causal

Setting: multi-head self-attention, ``build_attention({"type": T, "heads": 4}, 256, 256)``,
batch 32, 4 heads of 64, float32 (``--bf16``: under bfloat16 autocast), no mask
(``--causal``: causal attention on both paths, ``causal=True``: SDPA's ``is_causal`` on the
fused path, a materialised causal mask on the explicit one), on the CPU (``--device cuda``:
the GPU).
The fused path is ``need_weights=False`` (``F.scaled_dot_product_attention``); the explicit
path is ``need_weights=True`` (scores, float32 softmax, weights @ V: what a caller asking for
weights gets). Two levels are measured:

* ``core``: ``Attention.attend`` on per-head tensors q, k, v [B, 4, T, 64] (with the score's
  key-side ``prepare_keys``): the attention itself, where the two paths differ;
* ``module``: the whole module on x [B, T, 256], including the Q/K/V/output projections,
  which cost the same on both paths and dilute the ratio at small T.

What is reported:

* time: median of ``--repeats`` forward + backward runs (``output.backward(grad)``), after
  ``--warmup`` runs; both paths run alternately in the same process, so a busy machine slows
  both alike. Speedup = explicit median / fused median.
* peak memory on CUDA: the allocator's peak of allocated memory during one forward + backward
  (``torch.cuda.reset_peak_memory_stats``, then ``seq2seq.runtime.device.peak_memory_mib``)
  minus what was allocated before it, in this process.
* peak memory on the CPU: CPU tensors have no allocator statistics and tracemalloc does not
  see them, so every (configuration, path) runs once in a fresh subprocess: after building the
  module and inputs it reads its resident set size (VmRSS), resets the kernel's peak-RSS
  counter (``/proc/self/clear_refs`` = 5), runs one forward + backward and reads the peak
  (VmHWM).
  The figure is peak - baseline, the extra resident memory of one forward + backward. The
  child runs with ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed tensors return to the OS at
  once and RSS follows live memory. A tiny forward + backward (B = 1, T = 8) runs first so that
  one-time costs (thread pools, kernel caches) stay out of the figure. Where clear_refs is
  unavailable the process peak (ru_maxrss) is used, which can only overstate the figure.

Every score type is also measured at ``--score-size`` (default T = 128); additive has no fused
kernel, so only its explicit path is shown.
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
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seq2seq.attention import build_attention
from seq2seq.runtime.device import peak_memory_mib, resolve_device

D_MODEL, HEADS = 256, 4
SCORE_TYPES = ("scaled_dot", "dot", "general", "additive")
LEVELS = ("core", "module")


def make_case(
    level: str,
    score_type: str,
    batch: int,
    size: int,
    causal: bool,
    bf16: bool,
    device: torch.device,
):
    """(step(explicit) doing one forward + backward, whether a fused path exists)."""
    torch.manual_seed(0)
    module = build_attention({"type": score_type, "heads": HEADS}, D_MODEL, D_MODEL).to(device)
    grad = torch.randn(batch, size, D_MODEL, device=device)
    leaves = [
        torch.randn(batch, size, D_MODEL, device=device, requires_grad=True) for _ in range(3)
    ]

    def run_module(explicit: bool) -> tuple[torch.Tensor, torch.Tensor]:
        x = leaves[0]
        context, _ = module(x, x, x, causal=causal, need_weights=explicit)
        return context, grad

    head_grad = grad.view(batch, size, HEADS, -1).transpose(1, 2)

    def run_core(explicit: bool) -> tuple[torch.Tensor, torch.Tensor]:
        # [B, T, 256] -> [B, 4, T, 64], the layout the module's projections produce
        q, k, v = (x.view(batch, size, HEADS, -1).transpose(1, 2) for x in leaves)
        keys = module.score.prepare_keys(k)
        context, _ = module.attend(q, keys, v, None, explicit, causal=causal)
        return context, head_grad

    run = run_core if level == "core" else run_module

    def step(explicit: bool) -> None:
        module.zero_grad(set_to_none=True)
        for x in leaves:
            x.grad = None
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
            context, output_grad = run(explicit)
        context.backward(output_grad.to(context.dtype))
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # time the work, not its launch

    return step, module.fused_scale is not None


def time_paths(step: Callable[[bool], None], paths, warmup: int, repeats: int) -> dict:
    """Median seconds of each path (True = explicit), runs interleaved side by side."""
    for _ in range(warmup):
        for explicit in paths:
            step(explicit)
    times: dict[bool, list[float]] = {explicit: [] for explicit in paths}
    for r in range(repeats):
        for explicit in paths if r % 2 == 0 else paths[::-1]:
            start = time.perf_counter()
            step(explicit)
            times[explicit].append(time.perf_counter() - start)
    return {explicit: statistics.median(ts) for explicit, ts in times.items()}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(config: list[str], batch: int, causal: bool, bf16: bool) -> None:
    """Subprocess entry: print the extra peak RSS (MiB) of one forward + backward as JSON."""
    level, score_type, size, explicit = config
    cpu = torch.device("cpu")
    tiny, _ = make_case(level, score_type, 1, 8, causal, bf16, cpu)
    tiny(explicit == "1")  # start thread pools and kernel caches outside the measurement
    del tiny
    step, _ = make_case(level, score_type, batch, int(size), causal, bf16, cpu)
    try:
        baseline = _status_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        step(explicit == "1")
        peak = _status_kib("VmHWM")
    except (OSError, RuntimeError):
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        step(explicit == "1")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_mib": (peak - baseline) / 1024}))


def gpu_memory(step: Callable[[bool], None], explicit: bool, device: torch.device) -> float:
    """Extra peak GPU memory (MiB) of one forward + backward over what was allocated before."""
    step(explicit)  # kernel selection and workspaces outside the measurement
    torch.cuda.reset_peak_memory_stats(device)
    baseline = torch.cuda.memory_allocated(device) / 2**20
    step(explicit)
    return peak_memory_mib(device) - baseline


def measure_memory(args, level: str, score_type: str, size: int, explicit: bool) -> float:
    config = [level, score_type, str(size), str(int(explicit))]
    cmd = [sys.executable, __file__, "--memory-child", *config]
    cmd += ["--batch", str(args.batch), "--threads", str(args.threads)]
    cmd += ["--causal"] if args.causal else []
    cmd += ["--bf16"] if args.bf16 else []
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mib"]


def bench_row(args, level: str, score_type: str, size: int) -> str:
    """One Markdown table row: time and memory of both paths of one configuration."""
    step, has_fused = make_case(
        level, score_type, args.batch, size, args.causal, args.bf16, args.device
    )
    paths = [False, True] if has_fused else [True]
    times = time_paths(step, paths, args.warmup, args.repeats)
    memory = {}
    if args.no_memory:
        pass
    elif args.device.type == "cuda":
        memory = {e: gpu_memory(step, e, args.device) for e in paths}
    else:
        del step  # the CPU figures come from fresh processes: free this one's tensors first
        memory = {e: measure_memory(args, level, score_type, size, e) for e in paths}
    dash = "—"
    cells = [level, score_type, str(size)]
    cells += [f"{times[e] * 1e3:.1f}" if e in times else dash for e in (False, True)]
    cells += [f"{times[True] / times[False]:.2f}x" if has_fused else dash]
    cells += [f"{memory[e]:.1f}" if e in memory else dash for e in (False, True)]
    ratio_ok = len(memory) == 2 and memory[False] > 0
    cells += [f"{memory[True] / memory[False]:.2f}x" if ratio_ok else dash]
    return "| " + " | ".join(cells) + " |"


def header(device: torch.device) -> str:
    """The Markdown table header; peak memory is the GPU's on CUDA, resident memory otherwise."""
    peak = "peak GPU MiB" if device.type == "cuda" else "peak MiB"
    return (
        f"| level | type | T | fused ms | explicit ms | speedup | fused {peak} "
        f"| explicit {peak} | memory ratio |\n|---|---|---|---|---|---|---|---|---|"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 128, 512, 1024])
    parser.add_argument("--score-size", type=int, default=128, help="T of the score-type rows")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per path (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per path")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--causal", action="store_true", help="causal attention on both paths")
    parser.add_argument("--bf16", action="store_true", help="run under bfloat16 autocast")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child, args.batch, args.causal, args.bf16)
        return
    args.device = resolve_device(args.device)
    precision = "bf16 autocast" if args.bf16 else "float32"
    mask = "causal" if args.causal else "none"
    print(
        f"torch {torch.__version__}, {args.device}, threads {args.threads}, batch {args.batch}, "
        f"d_model {D_MODEL}, heads {HEADS}, {precision}, mask {mask}; "
        f"forward + backward, median of {args.repeats}\n"
    )
    print("multi-head scaled_dot, fused vs explicit:\n\n" + header(args.device), flush=True)
    for level in LEVELS:
        for size in args.sizes:
            print(bench_row(args, level, "scaled_dot", size), flush=True)
    title = f"\nevery score type (multi-head), T = {args.score_size}:\n\n"
    print(title + header(args.device), flush=True)
    for level in LEVELS:
        for score_type in SCORE_TYPES:
            print(bench_row(args, level, score_type, args.score_size), flush=True)


if __name__ == "__main__":
    main()
