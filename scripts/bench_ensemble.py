"""Test BLEU and decoding speed of trained runs alone, as an ensemble, and in int8.

Usage:
    python scripts/bench_ensemble.py RUN_A RUN_B [RUN_C ...] [--int8] [--rounds 3]

On Multi30k test_2016_flickr (the source and reference languages of the first run's config;
data/multi30k, else ../shared/data/multi30k), beam 5 and batch 64 at --threads (default 2):
each run alone, then all runs as one ensemble (their log-probabilities averaged at each step),
and with --int8 each run alone in int8 as well. Prints a markdown table of test BLEU (sacrebleu,
with its signature below), sentences/s (median of --rounds full passes, after one warm-up
batch) and the peak resident memory of the process so far.
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seq2seq.checkpoint import load_run
from seq2seq.data import read_lines
from seq2seq.evaluation.metrics import corpus_scores
from seq2seq.inference.translate import Translator
from seq2seq.runtime.device import configure_threads

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / "data" / "multi30k", ROOT.parent / "shared" / "data" / "multi30k")


def test_set(config) -> tuple[list[str], list[str]]:
    """The source and reference lines of test_2016_flickr for the config's languages."""
    for folder in DATA:
        src = folder / f"test_2016_flickr.{config.data.src_lang}.gz"
        ref = folder / f"test_2016_flickr.{config.data.tgt_lang}.gz"
        if src.is_file() and ref.is_file():
            return read_lines(src), read_lines(ref)
    raise FileNotFoundError(f"test_2016_flickr not found in {', '.join(map(str, DATA))}")


def measure(name: str, translator: Translator, src, refs, rounds: int) -> dict:
    """BLEU of one pass and the median sentences/s of `rounds` passes."""
    translator.translate(src[:64])  # warm-up
    speeds, hyps = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        hyps = [t.text for t in translator.translate(src)]
        speeds.append(len(src) / (time.perf_counter() - start))
    bleu = corpus_scores(hyps, refs)["bleu"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"name": name, "bleu": bleu, "sent_per_s": statistics.median(speeds), "peak": peak}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories (two or more for an ensemble)")
    parser.add_argument("--int8", action="store_true", help="also each run alone in int8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--beam", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    configure_threads(args.threads)
    runs = [load_run(path, device="cpu") for path in args.runs]
    src, refs = test_set(runs[0].config)
    options = {"beam": args.beam, "n_best": 1, "batch_size": 64, "precision": "fp32"}
    rows = []
    for path, run in zip(args.runs, runs, strict=True):
        label = f"{Path(path).name} ({run.config.model.arch})"
        rows.append(measure(label, Translator.from_run(run, **options), src, refs, args.rounds))
    if len(runs) > 1:
        ensemble = Translator.from_run(runs, **options)
        rows.append(measure("ensemble of all", ensemble, src, refs, args.rounds))
    if args.int8:
        for path in args.runs:  # loaded again: int8 quantizes the model in place
            int8 = Translator.load(path, device="cpu", **{**options, "precision": "int8"})
            rows.append(measure(f"{Path(path).name} int8", int8, src, refs, args.rounds))
    print(f"beam {args.beam}, batch 64, {args.threads} threads, {len(src)} sentences, "
          f"median of {args.rounds} rounds\n")  # fmt: skip
    print("| model | test BLEU | sentences/s | peak RSS so far (MiB) |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['name']} | {row['bleu'].score:.2f} | {row['sent_per_s']:.1f} | "
              f"{row['peak']:.0f} |")  # fmt: skip
    print(f"\n{rows[0]['bleu'].signature}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
