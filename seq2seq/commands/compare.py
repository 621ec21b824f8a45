"""`seq2seq compare`: train several configs under the same time budget and compare them.

    seq2seq compare configs/multi30k/*.yaml --max-time 20m --out runs/compare-multi30k
    seq2seq compare a.yaml b.yaml --max-time 90s --set train.max_steps=null --beam 1

Trains the configs one after another (they share the machine), each for at most --max-time
of wall-clock time (train.max_time; the configs' other limits, such as train.max_steps, still
apply: --set train.max_steps=null lifts them) into OUT/runs/<config name>, in a process of its
own, so that its peak memory is its own. Each --set KEY=VALUE applies to every config. Every
variant is then evaluated on its config's data.test (best.pt, beam --beam or decode.beam,
sacrebleu BLEU cased and lowercased, chrF). OUT receives:

  report.md          the table (variant, model, parameters, steps, target tokens/s, best
                     validation BLEU, test BLEU, lowercased BLEU, chrF, peak memory, training
                     time), the sacrebleu signatures, how each column is measured, this command
  results.json       the raw numbers, validation curves and training segments
  bleu_vs_time.png   validation BLEU against training time, one line per variant
  alignments.png     the cross-attention (last layer, mean of heads) of every variant's greedy
                     translation of one sentence (--sentence, default the first test sentence)

Running the same command again skips finished variants (those with compare_result.json in
their run directory) and continues an interrupted one from its last checkpoint with the
budget it has left; the report is rewritten from all results. A finished variant whose config
changed since (another --max-time, --set or config file) is an error: use another --out.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from seq2seq.commands import add_config_args, positive_int

DEFAULT_OUT = "runs/compare"


def add_parser(subparsers) -> None:
    """Register the `compare` subcommand."""
    p = subparsers.add_parser(
        "compare",
        help="train several configs under one time budget and compare them",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "configs",
        nargs="+",
        metavar="CONFIG.yaml",
        help="one config file per variant (named after the file)",
    )
    p.add_argument(
        "--max-time",
        required=True,
        metavar="T",
        help="wall-clock training budget of each variant, e.g. 20m, 1h30m, 90s",
    )
    p.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"output directory (default {DEFAULT_OUT})",
    )
    add_config_args(p)
    p.add_argument(
        "--beam",
        type=positive_int,
        help="beam size of the test translations (default: each config's decode.beam)",
    )
    p.add_argument(
        "--sentence",
        metavar="TEXT",
        help="the sentence of alignments.png (default: the first test sentence)",
    )
    p.set_defaults(func=run)


def command_line(args: argparse.Namespace) -> str:
    """The `seq2seq compare ...` command that reproduces ``args``."""
    words = ["seq2seq", "compare", *args.configs, "--max-time", args.max_time, "--out", args.out]
    for item in args.overrides:
        words += ["--set", item]
    if args.beam is not None:
        words += ["--beam", str(args.beam)]
    if args.sentence is not None:
        words += ["--sentence", args.sentence]
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    from seq2seq.experiments import run_comparison
    from seq2seq.experiments.report import COLUMNS, table_row

    comparison = run_comparison(
        args.configs,
        out_dir=args.out,
        max_time=args.max_time,
        overrides=args.overrides,
        beam=args.beam,
        sentence=args.sentence,
        command=command_line(args),
    )
    print(" | ".join(COLUMNS))
    for result in comparison.results:
        print(" | ".join(table_row(result)))
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0
