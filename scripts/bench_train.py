"""Steady-state training speed of a config: what `seq2seq train` would do, without validation.

    python scripts/bench_train.py configs/multi30k/transformer.yaml --steps 100 --warmup 20
    python scripts/bench_train.py configs/demo.yaml --set train.precision=fp32 --json
    python scripts/bench_train.py configs/multi30k/transformer.yaml --profile runs/profile/train

Prints target tokens/s, sentences/s, the padding fraction of the batches, peak resident memory
and the model FLOPs utilisation (MFU): the FLOPs of one training step (forward + backward,
counted by torch.utils.flop_counter.FlopCounterMode on a real step) per second, over the
matrix-multiply rate this machine reaches in the precision used (measured here with
torch.matmul on 1024 x 1024 matrices). The data are prepared (subword model and encoded ids)
in a temporary directory, or in --run-dir, where prepared data that are up to date are reused.
With --profile, the phase table includes "data wait": the time the loop waited for the
background thread that collates batches.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from seq2seq.commands import add_config_args
from seq2seq.config import load_config
from seq2seq.data import Tokenizer
from seq2seq.data.prepared import prepare
from seq2seq.profiling import profiled
from seq2seq.runtime.allocator import retain_freed_memory
from seq2seq.runtime.device import (
    configure_threads,
    peak_memory_mib,
    resolve_device,
    set_tf32,
)
from seq2seq.runtime.precision import Precision, resolve_precision
from seq2seq.training.distributed import DistInfo
from seq2seq.training.rundir import MetricsLog
from seq2seq.training.session import Session
from seq2seq.training.startup import new_session
from seq2seq.training.trainer import train_update, update_batches

logger = logging.getLogger("bench_train")


def matmul_rate(
    precision: Precision, device: torch.device, n: int = 1024, seconds: float = 0.5, trials: int = 3
) -> float:
    """FLOP/s of ``n x n`` matrix products in the autocast dtype (float32 for fp32): the best
    of a few timed trials, so that a busy moment does not lower the reference."""
    a = torch.randn(n, n, device=device, dtype=precision.dtype)
    b = torch.randn(n, n, device=device, dtype=precision.dtype)
    for _ in range(3):
        torch.matmul(a, b)
    best = 0.0
    for _ in range(trials):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            torch.matmul(a, b)
            count += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 * count / (time.perf_counter() - start))
    return best


def build(cfg, run_dir: Path) -> Session:
    """A training session on the config's data, prepared in ``run_dir`` (no validation)."""
    device = resolve_device(cfg.train.device)
    set_tf32(cfg.train.tf32)
    if device.type == "cpu":
        configure_threads(cfg.train.threads)
    data = prepare(cfg, run_dir, progress=False)
    return new_session(
        cfg,
        run_dir=run_dir,
        info=DistInfo(),
        device=device,
        precision=resolve_precision(cfg.train.precision, device),
        tokenizer=Tokenizer.load(run_dir),
        data=data,
        valid=None,
        metrics=MetricsLog(None),
    )


def measure(s: Session, steps: int, warmup: int) -> dict[str, float]:
    batches = update_batches(s)
    for _ in range(warmup):
        train_update(s, next(batches))
        s.state.step += 1
    with FlopCounterMode(display=False) as counter:
        step_batches = next(batches)
        train_update(s, step_batches)
    flops_per_token = counter.get_total_flops() / sum(b.tgt_tokens for b in step_batches)
    tokens = sentences = flops = 0.0
    padding: list[float] = []
    s.loader.take_wait_seconds()
    start = time.perf_counter()
    for _ in range(steps):
        group = next(batches)
        train_update(s, group)
        s.state.step += 1
        tokens += sum(b.tgt_tokens for b in group)
        sentences += sum(b.size for b in group)
        padding += [b.padding for b in group]
    if s.device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    flops = flops_per_token * tokens
    peak = matmul_rate(s.precision, s.device)
    return {
        "steps": steps,
        "seconds": elapsed,
        "tgt_tokens_per_s": tokens / elapsed,
        "sentences_per_s": sentences / elapsed,
        "padding": sum(padding) / len(padding),
        "model_gflops_per_s": flops / elapsed / 1e9,
        "matmul_gflops_per_s": peak / 1e9,
        "mfu": flops / elapsed / peak,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mib": peak_memory_mib(s.device),
        "data_wait": s.loader.take_wait_seconds() / elapsed,
        "parameters": sum(p.numel() for p in s.model.parameters()),
        "precision": s.precision.name,
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config")
    parser.add_argument("--steps", type=int, default=50, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    add_config_args(parser)
    parser.add_argument(
        "--run-dir", metavar="DIR", help="prepare the data here, or reuse those prepared here"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--profile",
        metavar="OUT",
        help="then profile --profile-steps more steps with torch.profiler: OUT.txt (operators "
        "by self time) and OUT.trace.json",
    )
    parser.add_argument("--profile-steps", type=int, default=5, metavar="N")
    args = parser.parse_args(argv)
    retain_freed_memory()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_config(args.config, args.overrides)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        session = build(cfg, Path(args.run_dir or tmp))
        result = measure(session, args.steps, args.warmup)
        if args.profile:
            batches = update_batches(session)
            phases = ("data wait", "forward", "loss", "backward", "clip_grad_norm")
            phases += ("Optimizer.step",)
            with profiled(args.profile, phases=phases) as prof:
                for _ in range(args.profile_steps):
                    train_update(session, next(batches))
                    session.state.step += 1
            print(prof.table)
            print(f"written: {prof.table_path}, {prof.trace_path}")
    result["config"] = args.config
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{args.config}: {result['parameters']:,} parameters, {result['precision']}, "
        f"{result['threads']} thread(s), {result['steps']} steps in {result['seconds']:.1f} s"
    )
    print(f"  target tokens/s   {result['tgt_tokens_per_s']:10,.0f}")
    print(f"  sentences/s       {result['sentences_per_s']:10,.1f}")
    print(f"  padding           {100 * result['padding']:10.1f} %")
    print(f"  data wait         {100 * result['data_wait']:10.1f} % of the time")
    print(f"  peak memory       {result['peak_rss_mib']:10,.0f} MiB (resident)")
    if result["peak_gpu_mib"] is not None:
        print(f"  peak GPU memory   {result['peak_gpu_mib']:10,.0f} MiB (allocated)")
    print(
        f"  model FLOP/s      {result['model_gflops_per_s']:10,.1f} G "
        f"(matmul rate {result['matmul_gflops_per_s']:,.1f} G in {result['precision']})"
    )
    print(f"  MFU               {100 * result['mfu']:10.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
