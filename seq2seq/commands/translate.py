"""`seq2seq translate`: translate text with a trained model.

    seq2seq translate RUN_DIR < input.en > output.de
    seq2seq translate RUN_DIR --input test.en --output test.de --beam 5 --alignments test.align
    seq2seq translate RUN_DIR --input test.en --n-best 3 --beam 5

Reads one sentence per line (stdin by default, or --input FILE, plain or .gz) and writes one
translation per line in the same order (stdout by default, or --output FILE, written atomically:
the file appears complete or not at all). An empty line gives an empty line. Lines longer than
the model's maximum length are truncated with a warning. Decoding defaults (beam, length
penalty, maximum output length, batch size) come from the run's config, section `decode`.

With --n-best K (K <= beam) every sentence gives up to K lines in the Moses n-best format
    SENTENCE ||| HYPOTHESIS ||| SCORE
where SENTENCE is the 0-based input line number and SCORE the length-normalised
log-probability (GNMT penalty; the plain log-probability with --beam 1), best first. An empty
input line gives one line with an empty hypothesis and score 0.

--alignments FILE writes one line per sentence in Pharaoh format, "i-j" linking source word i
to target word j of the (best) translation, 0-based, words = whitespace-separated tokens. Links
come from the cross-attention of one layer (--align-layer, default the last), averaged over its
heads (or one head, --align-head), merged from subword pieces into words.

An output that is the same file as an input (--input or a redirected stdin, the checkpoint,
the subword model) or as the other output is refused before anything is read or written. On
Ctrl-C or SIGTERM no output file, complete or partial, and no temporary file is left.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch

from seq2seq.commands import check_outputs, model_inputs, number_in, positive_int
from seq2seq.fileio import atomic_open
from seq2seq.inference.decode import DecodeError as TranslateError
from seq2seq.inference.sampling import SamplingError
from seq2seq.inference.search import STOPPING_RULES
from seq2seq.runtime.device import DEVICES
from seq2seq.runtime.precision import INFERENCE_PRECISIONS

#: Ranges of the decoding options. Beyond them the output is meaningless: a length penalty
#: exponent of 100 already sends the penalty of a long output past the float range, a
#: non-finite one makes every score 0 or NaN (the search then ends at once).
LENGTH_PENALTY_MAX = 10.0
MAX_LEN_RATIO_MAX = 100.0
MAX_LEN_OFFSET_MAX = 100_000
TEMPERATURE_MAX = 100.0


def add_decode_options(p: argparse.ArgumentParser) -> None:
    """Options shared by `translate` and `evaluate` (defaults: the run's `decode` section)."""
    p.add_argument(
        "run",
        nargs="+",
        metavar="RUN_DIR|CHECKPOINT",
        help="run directory (uses best.pt, else last.pt) or a .pt checkpoint; several decode "
        "as an ensemble (their log-probabilities averaged at each step; one subword model)",
    )
    p.add_argument("--beam", type=positive_int, help="beam size; 1 = greedy decoding")
    p.add_argument("--batch-size", type=positive_int, help="sentences per batch")
    p.add_argument(
        "--length-penalty",
        type=number_in(float, ge=0, le=LENGTH_PENALTY_MAX),
        metavar="A",
        help=f"GNMT length penalty exponent alpha, 0 (none) to {LENGTH_PENALTY_MAX:g}",
    )
    p.add_argument(
        "--stopping",
        choices=STOPPING_RULES,
        help="when beam search stops: exact (no live hypothesis could still win) or early "
        "(none would win if it ended at its next token; sooner with a length penalty)",
    )
    p.add_argument(
        "--max-len-ratio",
        type=number_in(float, gt=0, le=MAX_LEN_RATIO_MAX),
        metavar="R",
        help="output limit = R * source length + offset (subword tokens), 0 < R <= "
        f"{MAX_LEN_RATIO_MAX:g}",
    )
    p.add_argument(
        "--max-len-offset",
        type=number_in(int, ge=0, le=MAX_LEN_OFFSET_MAX),
        metavar="N",
        help="offset of the output limit, >= 0",
    )
    p.add_argument(
        "--precision",
        choices=INFERENCE_PRECISIONS,
        default="auto",
        help="auto: bf16 where the hardware computes it natively, else fp32; int8: linear "
        "layers quantized to int8 (CPU)",
    )
    p.add_argument(
        "--device", choices=DEVICES, default="auto", help="auto: CUDA when present, else the CPU"
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="batches decoded at once, on one copy of the model (default on the CPU: 2 with "
        "2 cores or more, else 1; on CUDA 1)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="torch intra-op threads of each worker (default: the cores divided among them)",
    )
    p.add_argument(
        "--align-layer",
        type=int,
        default=-1,
        metavar="N",
        help="cross-attention layer used for word alignments (default -1: the last)",
    )
    p.add_argument(
        "--align-head",
        type=int,
        default=None,
        metavar="N",
        help="cross-attention head used for word alignments (default: mean of heads)",
    )


def add_parser(subparsers) -> None:
    """Register the `translate` subcommand."""
    p = subparsers.add_parser(
        "translate",
        help="translate text with a trained model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_decode_options(p)
    p.add_argument("--input", metavar="FILE", help="input file (default: stdin)")
    p.add_argument("--output", metavar="FILE", help="output file (default: stdout)")
    p.add_argument(
        "--n-best",
        type=positive_int,
        metavar="K",
        help="print the K best hypotheses per sentence with scores (K <= beam)",
    )
    p.add_argument("--alignments", metavar="FILE", help="write Pharaoh word alignments here")
    p.add_argument(
        "--prefix",
        metavar="FILE",
        help="target prefixes, one line per input line (empty line: none): each translation "
        "starts with its prefix and the search continues from it",
    )
    p.add_argument(
        "--sampling",
        metavar="full|topk:K|topp:P",
        help="draw random translations instead of searching (back-translation); "
        "--n-best N draws N per sentence",
    )
    p.add_argument(
        "--temperature",
        type=number_in(float, ge=0, le=TEMPERATURE_MAX),
        metavar="T",
        help="sampling temperature, 0 (greedy) to 100 (default 1)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of --sampling (default 0)")
    p.add_argument(
        "--errors",
        choices=("strict", "replace"),
        default="strict",
        help="invalid UTF-8 input: stop with an error naming the line (strict) or "
        "replace the bad bytes and warn (replace)",
    )
    p.set_defaults(func=run)


def load_translator(
    args: argparse.Namespace,
    *,
    alignments: bool = False,
    n_best: int | None = None,
    chunk_size: int | None = None,
    workers: int | None = None,
):
    """The Translator of the run(s) named by args.run, with the decoding options of `args`
    (`workers`: instead of `decode_workers(args)`, which also sets the threads)."""
    from seq2seq.inference.translate import Translator

    runs = args.run if isinstance(args.run, list) else [args.run]
    workers = decode_workers(args) if workers is None else workers
    sampling = getattr(args, "sampling", None)
    if getattr(args, "temperature", None) is not None and sampling is None:
        raise TranslateError("--temperature: applies to --sampling only; give --sampling too")
    if sampling is not None and args.beam not in (None, 1):
        raise TranslateError(
            f"--beam {args.beam}: --sampling draws --n-best samples and does not combine "
            "with beam search; leave out --beam"
        )
    try:
        return Translator.load(
            runs[0] if len(runs) == 1 else runs,
            device=args.device,
            precision=args.precision,
            beam=args.beam,
            n_best=n_best,
            length_penalty=args.length_penalty,
            max_len_ratio=args.max_len_ratio,
            max_len_offset=args.max_len_offset,
            stopping=args.stopping,
            batch_size=args.batch_size,
            alignments=alignments,
            align_layer=args.align_layer,
            align_head=args.align_head,
            chunk_size=chunk_size,
            sampling=sampling,
            temperature=getattr(args, "temperature", None),
            seed=getattr(args, "seed", 0),
            workers=workers,
        )
    except SamplingError as e:
        raise TranslateError(f"--{e}") from None


def decode_workers(args: argparse.Namespace) -> int:
    """Workers of `args` (--workers, or the default: on the CPU two when it has two cores or
    more, else one; on CUDA one) after setting this thread's intra-op threads to --threads or
    the cores divided among them; the workers take this thread's count."""
    from seq2seq.runtime.device import configure_threads

    cores = configure_threads(None)  # all of them, or what the affinity mask allows
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    workers = args.workers or (1 if cuda else min(2, cores))
    configure_threads(args.threads or max(1, cores // workers))
    return workers


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str] | None) -> Iterator[IO[str]]:
    """A text file that replaces `path` only when the block completes (stdout for None)."""
    if path is None:
        if (sys.stdout.encoding or "").lower().replace("-", "") != "utf8":
            sys.stdout.reconfigure(encoding="utf-8")  # e.g. under LANG=C
        yield sys.stdout
        return
    with atomic_open(path, "w") as f:
        yield f


def _open_input(path: str | None) -> IO[Any]:
    if path is None:
        return contextlib.nullcontext(sys.stdin)
    if not Path(path).is_file():
        raise FileNotFoundError(2, "no such file (expected a text file, plain or .gz)", path)
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _count_lines(path: str) -> int:
    with _open_input(path) as f:
        return sum(1 for _ in f)


def format_nbest(index: int, nbest: list[tuple[str, float]]) -> str:
    """Moses-style n-best lines "index ||| hypothesis ||| score" for one sentence."""
    return "".join(f"{index} ||| {text} ||| {score:.4f}\n" for text, score in nbest)


def run(args: argparse.Namespace) -> int:
    """Translate the input stream chunk by chunk and write translations (and alignments)."""
    from tqdm import tqdm

    from seq2seq.data import iter_lines
    from seq2seq.data.pharaoh import format_alignment

    output = ("--output", args.output) if args.output else ("the standard output", sys.stdout)
    given = ("--input", args.input) if args.input else ("the standard input", sys.stdin)
    inputs = [given, ("--prefix", args.prefix), *model_inputs(args.run)]
    check_outputs([output, ("--alignments", args.alignments)], inputs)
    interactive = args.input is None and sys.stdin.isatty() and args.prefix is None
    translator = load_translator(
        args,
        alignments=args.alignments is not None,
        n_best=args.n_best,
        chunk_size=1 if interactive else None,
    )
    n_best = args.n_best is not None  # the n-best format, even for --n-best 1
    total = _count_lines(args.input) if args.input is not None and args.output else None
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(_open_input(args.input))
        out = stack.enter_context(atomic_output(args.output))
        align_out = (
            stack.enter_context(atomic_output(args.alignments))
            if args.alignments is not None
            else None
        )
        lines = iter_lines(source, errors=args.errors, name=args.input or "<stdin>")
        prefixes = None
        if args.prefix is not None:  # checked against the whole input before any output
            lines = list(lines)
            prefixes = _read_prefixes(args.prefix, len(lines), args.input or "<stdin>")
        progress = stack.enter_context(
            tqdm(
                total=total,
                unit="sent",
                desc="translate",
                disable=args.output is None,
                dynamic_ncols=True,
            )
        )
        for index, translation in enumerate(translator.stream(lines, prefixes)):
            out.write(format_nbest(index, translation.nbest) if n_best else translation.text + "\n")
            if align_out is not None:
                align_out.write(format_alignment(translation.alignment or []) + "\n")
            progress.update(1)
            if (index + 1) % translator.chunk_size == 0:
                out.flush()
        out.flush()
    return 0


def _read_prefixes(path: str, count: int, name: str) -> list[str]:
    """The --prefix file's lines, which must be as many as the `count` input lines."""
    from seq2seq.data import DataError, read_lines

    prefixes = read_lines(path)
    if len(prefixes) != count:
        raise DataError(
            f"--prefix {path} has {len(prefixes)} lines but the input {name} has "
            f"{count}; expected one prefix line per input line (an empty line for none)"
        )
    return prefixes
