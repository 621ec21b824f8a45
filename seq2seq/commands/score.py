"""`seq2seq score`: the model's log-probability of given translations (forced decoding).

    seq2seq score RUN_DIR --src test.en --tgt test.de
    seq2seq score RUN_DIR --src test.en --tgt hyps.de --output scores.tsv

Writes one line per sentence pair, tab-separated:
    LOG_PROB    TOKENS    SCORE
LOG_PROB is the sum of the log-probabilities of the target's subword tokens and of the final
end-of-sentence token, TOKENS their number (subwords + 1) and SCORE = LOG_PROB / ((5 + TOKENS)
/ 6) ** alpha, the length-normalised score beam search ranks by (alpha: --length-penalty, by
default the run's `decode.length_penalty`): scoring a translation that beam search produced
gives back the score `translate --n-best` printed for it. Pairs are scored in batches sorted
by length; an empty source scores 0 over 0 tokens. --src and --tgt must have the same number of
lines. --output is written atomically and may not be one of the inputs.
"""

from __future__ import annotations

import argparse

from seq2seq.commands import check_outputs, model_inputs
from seq2seq.commands.translate import add_decode_options, atomic_output, load_translator


def add_parser(subparsers) -> None:
    """Register the `score` subcommand."""
    p = subparsers.add_parser(
        "score",
        help="log-probabilities of given translations (forced decoding)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_decode_options(p)
    p.add_argument("--src", required=True, metavar="FILE", help="source sentences")
    p.add_argument("--tgt", required=True, metavar="FILE", help="translations to score")
    p.add_argument("--output", metavar="FILE", help="output file (default: stdout)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Score every (--src, --tgt) pair and write LOG_PROB, TOKENS, SCORE lines."""
    import sys

    from seq2seq.data import read_parallel

    output = ("--output", args.output) if args.output else ("the standard output", sys.stdout)
    inputs = [("--src", args.src), ("--tgt", args.tgt), *model_inputs(args.run)]
    check_outputs([output], inputs)
    src, tgt = read_parallel(args.src, args.tgt)
    translator = load_translator(args)
    scores = translator.score(src, tgt)
    with atomic_output(args.output) as out:
        out.writelines(f"{s.log_prob:.6f}\t{s.tokens}\t{s.score:.6f}\n" for s in scores)
    return 0
