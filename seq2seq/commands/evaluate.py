"""`seq2seq evaluate`: translate a test set and score it with sacrebleu.

    seq2seq evaluate RUN_DIR --src data/demo/test.en --ref data/demo/test.de
    seq2seq evaluate RUN_DIR --src test.en --ref test.de --beam 5 --hyp-out test.hyp --json
    seq2seq evaluate RUN_DIR --src test.en --ref test.de --gold-alignments test.align

Prints corpus BLEU, chrF and TER with their sacrebleu signatures (the numbers are sacrebleu's
own on the detokenized translations), and BLEU on lowercased text. --lowercase makes BLEU and
chrF case-insensitive as well (TER ignores case, as in sacrebleu's default). --json prints one
JSON object instead: bleu, chrf, ter, bleu_lowercase and their *_signature strings, sentences,
beam, checkpoint, and aer with --gold-alignments.

--gold-alignments FILE (Pharaoh: "i-j" sure, "ipj" or "i?j" possible links, one line per
sentence pair of --src/--ref) forces each reference through the model, extracts word alignments
from its cross-attention (--align-layer, --align-head) and reports the alignment error rate
(AER, Och & Ney 2003; lower is better). --hyp-out may not name one of the input files.
"""

from __future__ import annotations

import argparse
import json
import sys

from seq2seq.commands import check_outputs, model_inputs
from seq2seq.commands.translate import add_decode_options, atomic_output, load_translator


def add_parser(subparsers) -> None:
    """Register the `evaluate` subcommand."""
    p = subparsers.add_parser(
        "evaluate",
        help="translate a test set and score BLEU, chrF, TER (sacrebleu)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_decode_options(p)
    p.add_argument("--src", required=True, metavar="FILE", help="source sentences")
    p.add_argument("--ref", required=True, metavar="FILE", help="reference translations")
    p.add_argument("--hyp-out", metavar="FILE", help="also write the translations here")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--lowercase", action="store_true", help="case-insensitive BLEU and chrF")
    p.add_argument(
        "--gold-alignments", metavar="FILE", help="gold word alignments of src/ref: report AER"
    )
    p.set_defaults(func=run)


def _read_gold(path: str, n_pairs: int) -> list[tuple[set, set]]:
    """(sure, possible) links of every line of a gold alignment file with n_pairs lines."""
    from seq2seq.data import DataError
    from seq2seq.data.pharaoh import read_alignments

    gold = read_alignments(path)
    if len(gold) != n_pairs:
        raise DataError(
            f"{path} has {len(gold)} lines but --src has {n_pairs}; expected one "
            "alignment line per sentence pair"
        )
    return gold


def run(args: argparse.Namespace) -> int:
    """Translate --src, score against --ref, print the scores."""
    from tqdm import tqdm

    from seq2seq.data import read_parallel
    from seq2seq.evaluation.metrics import corpus_scores
    from seq2seq.evaluation.word_alignment import alignment_error_rate

    check_outputs(
        [("--hyp-out", args.hyp_out)],
        [
            ("--src", args.src),
            ("--ref", args.ref),
            ("--gold-alignments", args.gold_alignments),
            *model_inputs(args.run),
        ],
    )
    src, ref = read_parallel(args.src, args.ref)
    gold = _read_gold(args.gold_alignments, len(src)) if args.gold_alignments else None
    translator = load_translator(args, alignments=False, n_best=1)
    if gold is not None:
        translator.check_align_options()  # before the long part
    progress = tqdm(
        translator.stream(src),
        total=len(src),
        unit="sent",
        desc="evaluate",
        disable=not sys.stderr.isatty(),
        dynamic_ncols=True,
    )
    hyps = [t.text for t in progress]
    if args.hyp_out is not None:
        with atomic_output(args.hyp_out) as f:
            f.writelines(h + "\n" for h in hyps)
    scores = corpus_scores(hyps, ref, lowercase=args.lowercase)
    aer = None
    if gold is not None:  # alignments of the references, forced through the model
        predicted = translator.align(src, ref)
        aer = alignment_error_rate(predicted, [s for s, _ in gold], [p for _, p in gold])
    if args.json:
        result: dict[str, object] = {}
        for name, score in scores.items():
            result[name] = score.score
            result[f"{name}_signature"] = score.signature
        result.update(
            sentences=len(src),
            beam=translator.beam,
            checkpoint=_names(translator.checkpoint_path),
            precision=translator.precision,
        )
        if aer is not None:
            result["aer"] = aer
        print(json.dumps(result))
        return 0
    for name, score in scores.items():
        label = " (lowercased)" if name == "bleu_lowercase" else ""
        print(f"{score.summary}{label}\n    {score.signature}")
    if aer is not None:
        head = "mean" if args.align_head is None else args.align_head
        print(
            f"AER = {100 * aer:.2f} % (gold: {args.gold_alignments}, cross-attention layer "
            f"{args.align_layer}, head {head})"
        )
    return 0


def _names(paths) -> str | list[str]:
    """The checkpoint's path, or the list of an ensemble's."""
    return [str(p) for p in paths] if isinstance(paths, list) else str(paths)
