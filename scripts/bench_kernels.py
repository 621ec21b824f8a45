"""Kernel choices of CPU inference, timed at decoding sizes (docs/performance.md).

    python scripts/bench_kernels.py [--threads 2] [--rounds 5]

Two tables, medians of --rounds timing loops each:
* attention: ``F.scaled_dot_product_attention`` against the explicit products
  (softmax(q kᵀ · scale) v, as `attention.kernel.explicit_attention` computes them) for the
  shapes of a beam-search step (one query per row against the self-attention cache; a
  sentence's beam of 5 queries against the source) and of teacher forcing, under
  ``torch.inference_mode``: what `attention.kernel.prefers_fused` decides.
* linear: ``F.linear`` (the BLAS) against oneDNN with a prepacked weight
  (`seq2seq.runtime.packed.PackedLinear`) for the Multi30k Transformer's shapes (d_model 256,
  feed-forward 1,024, vocabulary 8,000) at the row counts of a beam-search step: what
  `runtime.packed.MIN_PACKED` decides.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch
import torch.nn.functional as F

from seq2seq.runtime.packed import PackedLinear, packing_available

ATTENTION = [  # (batch, heads, queries, keys, masked)
    (160, 4, 1, 10, False),
    (160, 4, 1, 30, False),
    (160, 4, 1, 20, True),
    (32, 4, 5, 20, True),
    (32, 4, 20, 20, False),
    (64, 4, 30, 30, False),
]
LINEAR = [(256, 8000), (256, 1024), (1024, 256), (256, 256)]  # (in, out)
ROWS = (5, 20, 64, 160)


def timed(fn, rounds: int, reps: int = 50) -> float:
    """Median seconds per call over ``rounds`` loops of ``reps`` calls, after a warm-up."""
    for _ in range(5):
        fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        times.append((time.perf_counter() - start) / reps)
    return statistics.median(times)


def explicit(q, k, v, mask, scale):
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.matmul(scores.softmax(-1), v)


def attention_table(rounds: int) -> None:
    print("| rows x heads, queries x keys | mask | SDPA µs | explicit µs | SDPA / explicit |")
    print("|---|---|---|---|---|")
    gen = torch.Generator().manual_seed(0)
    for batch, heads, tq, tk, masked in ATTENTION:
        q, k, v = (torch.randn(batch, heads, t, 64, generator=gen) for t in (tq, tk, tk))
        mask = None
        if masked:
            mask = torch.rand(batch, 1, 1, tk, generator=gen) > 0.2
            mask[..., 0] = True
        with torch.inference_mode():
            fused = timed(
                partial(F.scaled_dot_product_attention, q, k, v, attn_mask=mask, scale=0.125),
                rounds,
            )
            plain = timed(partial(explicit, q, k, v, mask, 0.125), rounds)
        print(
            f"| {batch} x {heads}, {tq} x {tk} | {'yes' if masked else 'no'} | {fused * 1e6:.0f} "
            f"| {plain * 1e6:.0f} | {fused / plain:.2f} |"
        )


def linear_table(rounds: int) -> None:
    if not packing_available():
        print("oneDNN packed linear: not available in this torch build")
        return
    print("| rows | in x out | F.linear µs | packed µs | F.linear / packed |")
    print("|---|---|---|---|---|")
    gen = torch.Generator().manual_seed(0)
    for rows in ROWS:
        for d_in, d_out in LINEAR:
            layer = torch.nn.Linear(d_in, d_out)
            packed = PackedLinear(layer.weight, layer.bias)
            x = torch.randn(rows, 1, d_in, generator=gen)
            with torch.inference_mode():
                blas = timed(partial(F.linear, x, layer.weight, layer.bias), rounds)
                onednn = timed(partial(packed, x), rounds)
            print(
                f"| {rows} | {d_in} x {d_out} | {blas * 1e6:.0f} | {onednn * 1e6:.0f} "
                f"| {blas / onednn:.2f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    isa = torch.backends.cpu.get_cpu_capability()
    print(f"# torch {torch.__version__}, {args.threads} threads, CPU capability {isa}")
    attention_table(args.rounds)
    print()
    linear_table(args.rounds)


if __name__ == "__main__":
    main()
