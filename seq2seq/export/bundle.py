"""The exported directory: checks on ``--out``, the files beside the model, the atomic write.

An export is written into a temporary directory beside ``--out`` and renamed into place at
the end, so that ``--out`` holds a complete export or is left as it was. Beside CTranslate2's
own files (model.bin, config.json, the vocabulary file(s)) it holds the run's subword
model(s), ``export.json`` (where the model came from and how the run decodes) and a README.md
with a Python example.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["ExportError", "check_output_dir", "readme_text", "write_bundle"]

#: The file that marks a directory as an exported model (an --overwrite may replace it).
MODEL_FILE = "model.bin"
METADATA_FILE = "export.json"


class ExportError(ValueError):
    """A model or an output that cannot be exported: the message names the option."""


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Refuses an existing ``out`` without ``overwrite``, and with it anything but an empty
    directory or a previous export (a directory holding model.bin)."""
    if not (out.exists() or out.is_symlink()):
        if out.parent.exists() and not out.parent.is_dir():
            raise ExportError(f"--out {out}: {out.parent} is not a directory")
        return
    if not overwrite:
        raise ExportError(f"--out {out} exists; pass --overwrite to replace it")
    if out.is_symlink() or not out.is_dir():
        raise ExportError(
            f"--out {out} exists and is not a directory; --overwrite replaces only a "
            "previous export: choose another --out"
        )
    if any(out.iterdir()) and not (out / MODEL_FILE).is_file():
        raise ExportError(
            f"--out {out} is a directory that holds no {MODEL_FILE}, so not an exported "
            "model; --overwrite replaces only a previous export: choose another --out"
        )


def write_bundle(out: Path, run: Any, *, quantization: str, fill: Callable[[Path], None]) -> Path:
    """Writes the export into a temporary directory beside ``out`` (``fill`` writes the
    model files), adds the subword model(s), export.json and README.md, then renames it to
    ``out`` (replacing a previous export). Returns ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        fill(tmp)
        tmp.mkdir(exist_ok=True)
        files = run.tokenizer.to_bytes()
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        metadata = export_metadata(run, quantization, sorted(files))
        (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(readme_text(out, metadata), encoding="utf-8")
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _move_into_place(tmp: Path, out: Path) -> None:
    """Renames ``tmp`` to ``out``; a previous ``out`` is set aside and removed afterwards,
    or put back if the rename fails."""
    if not out.exists():
        tmp.rename(out)
        return
    old = tmp.with_name(tmp.name[: -len(".tmp")] + ".old")
    out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def export_metadata(run: Any, quantization: str, subword_files: list[str]) -> dict[str, Any]:
    """What export.json records: the source checkpoint and the run's decoding rules."""
    cfg = run.config
    joint = len(subword_files) == 1
    return {
        "format": "ctranslate2",
        "quantization": quantization,
        "checkpoint": str(run.checkpoint_path),
        "src_lang": cfg.data.src_lang,
        "tgt_lang": cfg.data.tgt_lang,
        "subword_models": {
            "source": subword_files[0] if joint else "spm.src.model",
            "target": subword_files[0] if joint else "spm.tgt.model",
        },
        "max_positions": cfg.model.max_positions,
        "decode": {
            "beam": cfg.decode.beam,
            "length_penalty": cfg.decode.length_penalty,
            "max_len_ratio": cfg.decode.max_len_ratio,
            "max_len_offset": cfg.decode.max_len_offset,
        },
    }


def output_limit(src_tokens: int, *, max_len_ratio: float, max_len_offset: int, max_positions: int):
    """Our output limit of a source of ``src_tokens`` pieces (its EOS not counted here):
    floor((src_tokens + 1) * ratio + offset), at least 1, at most max_positions."""
    limit = math.floor((src_tokens + 1) * max_len_ratio + max_len_offset)
    return max(1, min(limit, max_positions))


def readme_text(out: Path, metadata: dict[str, Any]) -> str:
    """README.md of an export: what it is and a Python example that translates with it."""
    decode, models = metadata["decode"], metadata["subword_models"]
    max_positions = metadata["max_positions"]
    return f"""# CTranslate2 model exported by `seq2seq export`

From `{metadata["checkpoint"]}` ({metadata["src_lang"]} -> {metadata["tgt_lang"]}), weights
stored as {metadata["quantization"]}. Files: `model.bin`, `config.json` and the vocabulary
(CTranslate2's format), the sentencepiece model(s) `{models["source"]}` (source) and
`{models["target"]}` (target), and `export.json` (the run's decoding settings).

Translate (`pip install ctranslate2 sentencepiece`):

```python
import math

import ctranslate2
import sentencepiece as spm

model_dir = "{out}"
src_sp = spm.SentencePieceProcessor(model_file=f"{{model_dir}}/{models["source"]}")
tgt_sp = spm.SentencePieceProcessor(model_file=f"{{model_dir}}/{models["target"]}")
translator = ctranslate2.Translator(model_dir, device="cpu", intra_threads=2)

sources = ["A man is riding a bicycle."]
tokens = [src_sp.encode(s, out_type=str)[:{max_positions - 1}] for s in sources]
ratio, offset = {decode["max_len_ratio"]}, {decode["max_len_offset"]}  # seq2seq's output limit:
limit = max(min(math.floor((len(t) + 1) * ratio + offset), {max_positions}) for t in tokens)
results = translator.translate_batch(
    tokens,
    beam_size={decode["beam"]},
    length_penalty={decode["length_penalty"]},
    max_decoding_length=limit,
    min_decoding_length=0,
    suppress_sequences=[["<pad>"], ["<s>"]],
)
print([tgt_sp.decode(r.hypotheses[0]) for r in results])
```

`min_decoding_length=0` and the suppressed `<pad>` and `<s>` match what seq2seq's search
allows (CTranslate2 then renormalises the probabilities over the other tokens, so its scores
are a little higher than seq2seq's; without `suppress_sequences` they are equal). Greedy
decoding (`beam_size=1`) gives the tokens `seq2seq translate --beam 1` gives when every
sentence of a batch has the same limit (seq2seq sets it per sentence). Beam search differs a
little: CTranslate2 divides a hypothesis's log-probability by `n ** length_penalty`, seq2seq
by `((5 + n) / 6) ** length_penalty`; with `length_penalty=0` both rank by the
log-probability alone.
"""
