"""`seq2seq average`: average the parameters of several checkpoints of one run.

    seq2seq average runs/demo/step_1500.pt runs/demo/step_2000.pt --out runs/demo/averaged.pt
    seq2seq average runs/demo --last 5 --out runs/demo/averaged.pt
    seq2seq evaluate runs/demo/averaged.pt --src data/demo/test.en --ref data/demo/test.de

Writes the element-wise mean of the model parameters (checkpoint averaging, as in Vaswani et
al. 2017, arXiv:1706.03762) as a checkpoint that `translate`, `evaluate` and `plot` load like
any other. --last N takes the N newest step_N.pt files of a run directory: the trainer keeps
train.keep_checkpoints of them (default 1), so train with --set train.keep_checkpoints=5 to
average the last 5. The checkpoints must share the model and tokenizer config, the parameter
names and shapes and the subword model; the error names the checkpoint that differs.
The output holds no optimizer state (it cannot be resumed) and is written atomically; when it
lies outside the checkpoints' run directory, their subword model is written beside it.
--out must end in .pt, must not be a checkpoint the trainer writes (best.pt, last.pt,
step_N.pt) nor one of the inputs, and may replace an existing file only if that file is a
seq2seq checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from seq2seq.commands import check_outputs, positive_int

#: Checkpoints the trainer writes, and reads when translating (best.pt) or resuming: an
#: averaged checkpoint there would be overwritten by the next validation, or taken for the
#: best or a resumable one. (step_N.pt, pruned by the trainer, are refused too.)
TRAINER_CHECKPOINTS = ("best.pt", "last.pt")


def add_parser(subparsers) -> None:
    """Register the `average` subcommand."""
    p = subparsers.add_parser(
        "average",
        help="average the parameters of several checkpoints",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "checkpoints",
        nargs="+",
        metavar="CHECKPOINT|RUN_DIR",
        help=".pt checkpoints to average, or one run directory with --last N",
    )
    p.add_argument(
        "--last",
        type=positive_int,
        metavar="N",
        help="average the N newest step_N.pt checkpoints of the run directory",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="the averaged checkpoint (.pt)")
    p.set_defaults(func=run)


def checkpoint_paths(args: argparse.Namespace) -> list[Path]:
    """The checkpoint files named by the positional arguments and --last."""
    from seq2seq.training.averaging import AveragingError, last_step_checkpoints

    given = [Path(p) for p in args.checkpoints]
    if args.last is not None:
        if len(given) != 1 or not given[0].is_dir():
            raise AveragingError(
                f"--last {args.last} takes exactly one run directory, got "
                f"{' '.join(map(str, given))}"
            )
        return last_step_checkpoints(given[0], args.last)
    for path in given:
        if path.is_dir():
            raise AveragingError(
                f"{path} is a directory: give .pt checkpoint files, or one run directory "
                "with --last N"
            )
    return given


def run(args: argparse.Namespace) -> int:
    from seq2seq.training.averaging import write_averaged_checkpoint

    paths = checkpoint_paths(args)
    check_out(Path(args.out), paths)
    averaged = write_averaged_checkpoint(paths, args.out)
    steps = ", ".join(str(s) for s in averaged["averaged"]["steps"])
    print(f"{args.out}: mean of {len(paths)} checkpoint(s) (steps {steps})")
    return 0


def check_out(out: Path, checkpoints: list[Path]) -> None:
    """Refuses (AveragingError) an --out that could destroy a file: not a .pt name, a name the
    trainer uses, one of ``checkpoints`` or an existing file that is not a checkpoint."""
    from seq2seq.checkpoint import STEP_CHECKPOINT, load_checkpoint
    from seq2seq.training.averaging import AveragingError

    if out.suffix != ".pt":
        raise AveragingError(
            f"--out {out}: expected a checkpoint file name ending in .pt; nothing was written"
        )
    if out.name in TRAINER_CHECKPOINTS or STEP_CHECKPOINT.match(out.name):
        raise AveragingError(
            f"--out {out}: {out.name} is a checkpoint the trainer writes (and prunes, or reads "
            "to resume; translate takes best.pt for the best validated model): an average there "
            "would be overwritten or taken for it; choose another name, e.g. averaged.pt"
        )
    check_outputs([("--out", out)], [("one of the checkpoints", path) for path in checkpoints])
    if not out.exists():
        return
    if not out.is_file():
        raise AveragingError(f"--out {out} exists and is not a file; expected a checkpoint file")
    try:
        load_checkpoint(out, map_location="meta")
    except ValueError:  # CheckpointError: corrupt, foreign, another format
        raise AveragingError(
            f"--out {out} exists and is not a seq2seq checkpoint; average replaces only an "
            "existing checkpoint: choose another name (or remove the file yourself)"
        ) from None
