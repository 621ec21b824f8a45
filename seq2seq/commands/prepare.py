"""`seq2seq prepare`: encode a config's training data once, into the run directory.

    seq2seq prepare configs/multi30k/transformer.yaml             # into runs/transformer
    seq2seq prepare big.yaml --run-dir runs/big --set data.workers=8

Streams the training files (never the whole text in memory), trains the subword model on a
seeded sample of data.tokenizer.sample_sentences lines, encodes the pairs in data.workers
processes and writes memory-mapped arrays to RUN_DIR/prepared/ (see seq2seq.data.prepared).
`seq2seq train` does this itself when the prepared data are missing or out of date, and
reuses them otherwise: on a fresh run, a second run into the same directory, --resume and
`seq2seq compare`. Data that are already up to date are only checked.
"""

from __future__ import annotations

import argparse
import logging

from seq2seq.commands import add_run_config_args, run_dir_of

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    """Register the `prepare` subcommand."""
    p = subparsers.add_parser(
        "prepare",
        help="encode a config's training data into memory-mapped arrays",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_config_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from seq2seq.config import load_config
    from seq2seq.data.prepared import PREPARED_DIR, prepare, stale_reason
    from seq2seq.training.rundir import RunDirError, run_entries

    cfg = load_config(args.config, args.overrides)
    run_dir = run_dir_of(args)
    if run_entries(run_dir):
        reason = stale_reason(cfg, run_dir)
        if reason is not None:
            raise RunDirError(
                f"{run_dir} holds a trained run, whose data cannot be replaced under it: "
                f"{reason}. Use another --run-dir, or `seq2seq train --overwrite`"
            )
    data = prepare(cfg, run_dir, progress=not args.quiet)
    pairs = data.header["pairs"]
    size = sum(f["size"] for f in data.header["files"].values())
    print(
        f"{run_dir / PREPARED_DIR}: {pairs['kept']:,} of {pairs['read']:,} pairs "
        f"({pairs['dropped']['too_long']:,} longer than data.max_len={cfg.data.max_len}, "
        f"{pairs['dropped']['empty_source']:,} with an empty source), "
        f"{size / 2**20:,.1f} MiB, ids as {data.header['dtype']}"
    )
    return 0
