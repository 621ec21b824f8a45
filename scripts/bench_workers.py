"""Decoding workers against intra-op threads: N workers x T/N threads against 1 x T threads.

Usage:
    python scripts/bench_workers.py RUN_DIR                  # 2 x 1 against 1 x 2, 8 rounds
    python scripts/bench_workers.py RUN_DIR --threads 4 --workers 2 --sentences 1000

On the first --sentences of Multi30k test_2016_flickr (the run's source language;
data/multi30k, else ../shared/data/multi30k), beam --beam, batch --batch: one Translator with
one worker on --threads threads and one with --workers workers on --threads / --workers threads
each (the same model, loaded once per translator), alternating round after round in one
process, so that both meet the same drift of the machine. Prints each round's sentences/s and
their ratio, then the medians, and whether the outputs were equal.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_ensemble import test_set

from seq2seq.checkpoint import load_run
from seq2seq.inference.translate import Translator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", metavar="RUN_DIR")
    parser.add_argument("--threads", type=int, default=2, help="threads in all (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="workers (default 2)")
    parser.add_argument("--sentences", type=int, default=512, help="test sentences (512)")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args(argv)
    if args.threads % args.workers:
        parser.error(f"--threads {args.threads} is not a multiple of --workers {args.workers}")

    def translator(workers: int) -> Translator:
        torch.set_num_threads(args.threads // workers)  # the workers take this thread's count
        run = load_run(args.run, device=torch.device("cpu"))
        options = {"beam": args.beam, "batch_size": args.batch, "pack": True}
        return Translator.from_run(run, precision="fp32", workers=workers, **options)

    one, many = translator(1), translator(args.workers)
    src, _ = test_set(one.config)
    src = src[: args.sentences]
    threads_of = {id(one): args.threads, id(many): args.threads // args.workers}
    outputs: dict[int, list[str]] = {}

    def speed(t: Translator) -> float:
        torch.set_num_threads(threads_of[id(t)])  # the one worker is this thread
        start = time.perf_counter()
        found = t.translate(src)
        seconds = time.perf_counter() - start
        outputs.setdefault(id(t), [x.text for x in found])
        return len(src) / seconds

    one.translate(src[: args.batch]), many.translate(src[: 2 * args.batch])  # warm-up
    label = f"{args.workers} x {args.threads // args.workers}"
    print(f"{args.run}: {len(src)} sentences, beam {args.beam}, batch {args.batch}")
    rows = []
    for r in range(args.rounds):
        a, b = speed(one), speed(many)
        rows.append((a, b))
        print(
            f"round {r + 1}: 1 x {args.threads}: {a:.1f}  {label}: {b:.1f} sent/s  ({b / a:.2f}x)"
        )
    a, b = (statistics.median(col) for col in zip(*rows, strict=True))
    ratio = statistics.median(y / x for x, y in rows)
    same = sum(x == y for x, y in zip(outputs[id(one)], outputs[id(many)], strict=True))
    print(
        f"median: 1 x {args.threads}: {a:.1f}  {label}: {b:.1f} sent/s; median ratio {ratio:.2f}x"
    )
    print(f"outputs equal: {same} of {len(src)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
