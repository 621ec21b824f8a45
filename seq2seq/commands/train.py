"""`seq2seq train`: train a translator from a config file.

    seq2seq train configs/demo.yaml                      # run directory runs/demo
    seq2seq train configs/demo.yaml --set train.max_steps=500 --run-dir runs/short
    seq2seq train configs/demo.yaml --resume             # continue runs/demo from last.pt
    torchrun --nproc_per_node=2 -m seq2seq train configs/demo.yaml   # data parallel

The config and data files are checked before anything is written. The run directory then
receives config.yaml, the sentencepiece model(s), best.pt (best validation BLEU), last.pt,
step_N.pt, metrics.jsonl, train.log, curves.png and alignments/. A directory that already
holds a run is refused unless --resume (continue it exactly) or --overwrite (replace it).
"""

from __future__ import annotations

import argparse
import shlex
import sys

from seq2seq.commands import add_run_config_args, run_dir_of


def add_parser(subparsers) -> None:
    """Register the `train` subcommand."""
    p = subparsers.add_parser(
        "train",
        help="train a model from a config file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_config_args(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in the run directory from its last.pt",
    )
    mode.add_argument(
        "--overwrite", action="store_true", help="replace a run already in the run directory"
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar; log lines only (for non-interactive logs)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from seq2seq.config import load_config
    from seq2seq.training.trainer import TrainingError, train

    overrides = list(args.overrides)
    if args.quiet:
        overrides.append("train.quiet=true")
    cfg = load_config(args.config, overrides)
    run_dir = run_dir_of(args)
    try:
        result = train(cfg, run_dir, resume=args.resume, overwrite=args.overwrite)
    except TrainingError as e:
        print(f"seq2seq train: error: {e}", file=sys.stderr)
        return 1
    if result.signal is not None:
        sets = "".join(f" --set {shlex.quote(item)}" for item in args.overrides)
        resume = f"seq2seq train {shlex.quote(args.config)} --run-dir {run_dir}{sets} --resume"
        print(
            f"seq2seq train: {result.stop_reason} at step {result.step}: {run_dir / 'last.pt'}"
            f" holds the run; continue it with: {resume}",
            file=sys.stderr,
        )
        return 128 + result.signal  # 130 for SIGINT, 143 for SIGTERM
    best = "-" if result.best_bleu is None else f"{result.best_bleu:.2f}"
    print(
        f"{result.run_dir}: stopped at step {result.step} ({result.stop_reason}); "
        f"best valid BLEU {best}"
    )
    return 0
