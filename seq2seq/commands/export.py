"""`seq2seq export`: write a trained run in another inference engine's format.

    seq2seq export runs/demo --format ctranslate2 --out exported/demo-ct2
    seq2seq export runs/demo/best.pt --format ctranslate2 --out exported/demo-int8 \\
        --quantization int8 --overwrite

CTranslate2 (https://github.com/OpenNMT/CTranslate2) runs the exported Transformer with its
own CPU and GPU kernels; install it with the export extra: pip install -e '.[export]'. Every
attention slot must be multi-head scaled_dot (heads set); pre- or post-norm, sinusoidal or
learned positions, relu or gelu, shared or separate embeddings and vocabularies are supported.
Anything else (an LSTM, another attention type, a slot without heads) is refused with the
setting named. The export directory holds model.bin, config.json, the vocabulary, the subword
model(s), export.json and a README.md with a Python example. --out must not exist, unless
--overwrite is given and it is a previous export; on any error nothing is written.
--quantization stores the weights as float32 (default), int16 or int8.
"""

from __future__ import annotations

import argparse

FORMATS = ("ctranslate2",)


def add_parser(subparsers) -> None:
    """Register the `export` subcommand."""
    from seq2seq.export import QUANTIZATIONS

    p = subparsers.add_parser(
        "export",
        help="export a trained Transformer to CTranslate2",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "run",
        metavar="RUN_DIR|CHECKPOINT",
        help="run directory (uses best.pt, else last.pt) or a .pt checkpoint",
    )
    p.add_argument("--format", required=True, choices=FORMATS, help="the target format")
    p.add_argument("--out", required=True, metavar="DIR", help="the directory to write")
    p.add_argument(
        "--quantization",
        choices=QUANTIZATIONS,
        default="float32",
        help="weight type of the exported model (default: float32)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace --out if it is a previous export"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from seq2seq.export import export_ctranslate2

    out = export_ctranslate2(
        args.run, args.out, quantization=args.quantization, overwrite=args.overwrite
    )
    print(f"{out}: CTranslate2 model ({args.quantization}); see {out}/README.md")
    return 0
