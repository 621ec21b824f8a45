"""`seq2seq plot`: draw the attention of a trained model on a sentence.

    seq2seq plot RUN_DIR --src "twenty-three" --out align.png
    seq2seq plot RUN_DIR --src "I love you" --tgt "je t'aime" --layer all --head all --out grid.pdf
    seq2seq plot RUN_DIR --input sentences.txt --out attention.html

Without --tgt the sentence is translated (greedy, or beam search with --beam N) and the plot
shows what the model attended to while producing its translation; with --tgt the given target
is forced and the plot shows the alignment of that pair. A .html output is one self-contained
page with controls for sentence, slot, layer and head, opening on --slot/--layer/--head
("all" opens on the mean). For a static output, --layer all and/or --head all draw a grid of
layers x heads. With --input FILE every non-empty line is a source sentence (optionally
followed by a tab and a target to force); a .html output holds all of them, a static output
(.png/.svg/.pdf) is written once per sentence as OUT_STEM_<line number>.<suffix>.
--words merges subword pieces into words: weights of a word's source pieces are summed, rows
of a word's target pieces averaged. An output may not be one of the input files.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from seq2seq.commands import check_outputs, model_inputs, positive_int
from seq2seq.viz.common import SUPPORTED_SUFFIXES, PlotError, output_format
from seq2seq.viz.example import SLOTS, AttentionExample

logger = logging.getLogger(__name__)


def _index_choice(value: str) -> int | str:
    """argparse type of --layer/--head: an integer index, "all" or "mean"."""
    if value in ("all", "mean"):
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer index, 'all' or 'mean', got {value!r}"
        ) from None


def add_parser(subparsers) -> None:
    """Register the `plot` subcommand."""
    p = subparsers.add_parser(
        "plot",
        help="plot attention matrices of a trained model (PNG, SVG, PDF or HTML)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "run",
        nargs="+",
        metavar="RUN_DIR|CHECKPOINT",
        help="run directory or .pt checkpoint; with several, the ensemble translates and the "
        "plot shows the first model's attention",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--src", metavar="TEXT", help="source sentence")
    source.add_argument(
        "--input",
        metavar="FILE",
        help="file of source sentences, one per line (SRC<TAB>TGT forces a target)",
    )
    p.add_argument("--tgt", metavar="TEXT", help="target to force (default: translate)")
    p.add_argument(
        "--out", required=True, metavar="FILE", help=f"output file: {', '.join(SUPPORTED_SUFFIXES)}"
    )
    p.add_argument(
        "--beam",
        type=positive_int,
        default=1,
        metavar="N",
        help="beam size when translating (default 1: greedy)",
    )
    p.add_argument("--slot", choices=SLOTS, default="cross", help="attention slot (default cross)")
    p.add_argument(
        "--layer",
        type=_index_choice,
        default=-1,
        metavar="N|all|mean",
        help="layer index (negative from the end; default -1, the last), all, or mean",
    )
    p.add_argument(
        "--head",
        type=_index_choice,
        default="mean",
        metavar="N|all|mean",
        help="head index, all, or mean (default)",
    )
    p.add_argument("--words", action="store_true", help="merge subword pieces into words")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Gather the attention of every requested sentence and write the plot(s)."""
    from seq2seq.inference.translate import Translator
    from seq2seq.viz.figures import select_layers_heads

    suffix = "." + output_format(args.out, SUPPORTED_SUFFIXES)
    if args.input is not None and args.tgt is not None:
        raise PlotError("--tgt cannot be combined with --input; write SRC<TAB>TGT lines instead")
    inputs = [("--input", args.input), *model_inputs(args.run)]
    check_outputs([("--out", args.out)], inputs)
    pairs = _read_pairs(args.input) if args.input is not None else [(1, args.src, args.tgt)]
    targets = _targets(args, suffix, [line for line, _, _ in pairs])
    check_outputs([(f"the plot of --input line {n}", path) for n, path in targets], inputs)
    runs = args.run[0] if len(args.run) == 1 else args.run
    translator = Translator.load(runs, device="cpu", precision="fp32", beam=args.beam)
    slots = tuple(translator.model.slots)
    if args.slot not in slots:
        raise PlotError(
            f"--slot {args.slot}: this {translator.describe()['arch']} model has no such "
            f"attention; available: {', '.join(slots)}"
        )
    examples = []
    for _, src, tgt in pairs:
        example = translator.attention(src, tgt)
        examples.append(
            example.to_words(translator.tokenizer.piece_word_ids) if args.words else example
        )
    # the layer/head indices exist (checked here for the HTML page too, which has no grid)
    select_layers_heads(examples[0].matrices(args.slot), args.layer, args.head, args.slot)
    for path in _write(examples, [path for _, path in targets], args, suffix):
        print(path)
    return 0


def _targets(args, suffix: str, lines: list[int]) -> list[tuple[int, Path]]:
    """(input line number, output file) of every plot: --out itself for one sentence or a
    .html page, else OUT_STEM_<line>.<suffix> per sentence."""
    out = Path(args.out)
    if suffix == ".html" or args.input is None:
        return [(lines[0], out)]
    return [(line, out.with_name(f"{out.stem}_{line:03d}{suffix}")) for line in lines]


def _write(examples: list[AttentionExample], targets: list[Path], args, suffix: str) -> list[Path]:
    from seq2seq.viz.figures import plot_example
    from seq2seq.viz.html import write_attention_html

    if suffix == ".html":
        layer = "mean" if args.layer == "all" else args.layer
        head = "mean" if args.head == "all" else args.head
        title = f"Attention of {' + '.join(Path(run).name for run in args.run)}"
        return [
            write_attention_html(
                examples, targets[0], title, slot=args.slot, layer=layer, head=head
            )
        ]
    return [
        plot_example(example, target, slot=args.slot, layer=args.layer, head=args.head)
        for example, target in zip(examples, targets, strict=True)
    ]


def _read_pairs(path: str) -> list[tuple[int, str, str | None]]:
    """(line number, source, target or None) of every non-empty line of `path`."""
    from seq2seq.data.io import read_lines

    pairs = []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            logger.warning("%s, line %d: empty line skipped", path, number)
            continue
        src, sep, tgt = line.partition("\t")
        pairs.append((number, src, tgt if sep else None))
    if not pairs:
        raise PlotError(f"{path}: no non-empty lines; expected one source sentence per line")
    return pairs
