"""Translating text with a trained model: batching, truncation, precision, detokenization.

`Translator.translate(lines)` streams: it reads a chunk of lines, sorts the chunk by length so
that batches hold sentences of similar length (little padding), decodes batch by batch and
yields the translations in input order. Empty lines give empty translations without touching
the model. Source lines longer than the model's `max_positions` subwords are truncated with a
warning naming the line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from seq2seq.data import collate_src, pad_ids
from seq2seq.evaluation.alignment import (
    Link,
    attention_alignment,
    pieces_to_words,
    select_attention,
)
from seq2seq.inference.search import (
    Hypothesis,
    beam_search,
    forced_attention,
    greedy_search,
    max_output_lengths,
)
from seq2seq.runtime.device import cpu_has_native_bf16, cuda_has_native_bf16
from seq2seq.vocab import UNK_ID

logger = logging.getLogger(__name__)

__all__ = [
    "PRECISIONS",
    "TranslateError",
    "Translation",
    "Translator",
    "build_translator",
    "resolve_precision",
]

PRECISIONS = ("auto", "fp32", "bf16")


class TranslateError(ValueError):
    """Decoding options or a model that cannot be used: the message names the option."""


@dataclass
class Translation:
    """The translation of one input line.

    text: the best hypothesis, detokenized ("" for an empty line).
    nbest: up to n_best (text, score) pairs, best first; score is the length-normalised
        log-probability (the plain log-probability under greedy decoding).
    alignment: (source word, target word) links of the best hypothesis when asked for.
    tokens: target token ids of the best hypothesis (no BOS/EOS).
    """

    text: str
    nbest: list[tuple[str, float]]
    alignment: list[Link] | None = None
    tokens: list[int] = field(default_factory=list)


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `name` in auto|fp32|bf16 on `device`; None means float32.

    auto is bf16 where the processor computes it natively (CPU with AVX512-BF16/AMX, or a GPU
    of compute capability 8.0 or later), else float32.
    """
    if name not in PRECISIONS:
        raise TranslateError(f"precision: got {name!r}, expected one of {', '.join(PRECISIONS)}")
    if name == "fp32":
        return None
    native = cuda_has_native_bf16() if device.type == "cuda" else cpu_has_native_bf16()
    if name == "auto":
        return torch.bfloat16 if native else None
    if not native:
        if device.type == "cuda":
            raise TranslateError(
                "precision: bf16 needs a GPU with native bf16 (compute capability 8.0 or later); "
                "use fp32 or auto"
            )
        logger.warning(
            "this CPU has no native bf16 arithmetic: bf16 decoding is emulated and slower than fp32"
        )
    return torch.bfloat16


class Translator:
    """Batched translation of text lines with greedy (beam=1) or beam search."""

    def __init__(
        self,
        *,
        model: Any,
        tokenizer: Any,
        beam: int = 5,
        n_best: int = 1,
        length_penalty: float = 0.6,
        max_len_ratio: float = 1.5,
        max_len_offset: int = 10,
        batch_size: int = 64,
        precision: str = "fp32",
        alignments: bool = False,
        align_layer: int = -1,
        align_head: int | None = None,
        chunk_size: int | None = None,
    ) -> None:
        if beam < 1:
            raise TranslateError(f"beam: got {beam}, expected an integer >= 1")
        if not 1 <= n_best <= beam:
            raise TranslateError(f"n-best: got {n_best}, expected 1 <= n-best <= beam ({beam})")
        if batch_size < 1:
            raise TranslateError(f"batch size: got {batch_size}, expected an integer >= 1")
        if max_len_ratio <= 0 or max_len_offset < 0:
            raise TranslateError(
                f"max length: got ratio {max_len_ratio} and offset "
                f"{max_len_offset}, expected ratio > 0 and offset >= 0"
            )
        self.model, self.tokenizer = model.eval(), tokenizer
        self.beam, self.n_best, self.length_penalty = beam, n_best, length_penalty
        self.max_len_ratio, self.max_len_offset = max_len_ratio, max_len_offset
        self.batch_size = batch_size
        self.chunk_size = chunk_size or 16 * batch_size
        param = next(iter(model.parameters()), None)
        self.device = param.device if param is not None else torch.device("cpu")
        self.dtype = resolve_precision(precision, self.device)
        self.precision = "fp32" if self.dtype is None else "bf16"
        self.alignments, self.align_layer, self.align_head = alignments, align_layer, align_head
        self.max_src_len = int(model.max_positions)
        if alignments:
            self.check_align_options()

    # --- public API ---------------------------------------------------------------------------

    def translate(self, lines: Iterable[str]) -> Iterator[Translation]:
        """Translations of `lines`, in order, computed a chunk of lines at a time."""
        chunk: list[str] = []
        first = 1  # 1-based number of the chunk's first line, for warnings
        for line in lines:
            chunk.append(line)
            if len(chunk) >= self.chunk_size:
                yield from self._translate_chunk(chunk, first)
                first, chunk = first + len(chunk), []
        if chunk:
            yield from self._translate_chunk(chunk, first)

    def align(self, src_lines: Sequence[str], tgt_lines: Sequence[str]) -> list[list[Link]]:
        """Word alignments of given sentence pairs from teacher-forced cross-attention."""
        if len(src_lines) != len(tgt_lines):
            raise TranslateError(
                f"align: got {len(src_lines)} source but {len(tgt_lines)} target lines"
            )
        self.check_align_options()
        src_ids = self._encode_src(src_lines, first=1)
        tgt_ids = self.tokenizer.encode_tgt_batch(list(tgt_lines))
        for n, ids in enumerate(tgt_ids):
            if len(ids) >= self.max_src_len:  # BOS + target must fit in max_positions
                logger.warning(
                    "target line %d: %d subword tokens, more than the model's "
                    "maximum of %d; aligned on its first %d",
                    n + 1,
                    len(ids),
                    self.max_src_len - 1,
                    self.max_src_len - 1,
                )
                tgt_ids[n] = ids[: self.max_src_len - 1]
        links: list[list[Link]] = [[] for _ in src_lines]
        order = sorted(range(len(src_lines)), key=lambda i: (len(src_ids[i]), len(tgt_ids[i])))
        order = [i for i in order if src_ids[i] and tgt_ids[i]]
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            aligned = self._align_ids([src_ids[i] for i in batch], [tgt_ids[i] for i in batch])
            for i, result in zip(batch, aligned, strict=True):
                links[i] = result
        return links

    def check_align_options(self) -> None:
        """Raise TranslateError/AlignmentError for an align layer or head the model lacks."""
        one = torch.tensor([UNK_ID], device=self.device)
        weights = forced_attention(self.model, one, one)
        if "cross" not in weights:
            raise TranslateError(
                f"the model has no cross-attention to align with (slots: {sorted(weights)})"
            )
        select_attention(weights["cross"], layer=self.align_layer, head=self.align_head)

    # --- internals ----------------------------------------------------------------------------

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def _encode_src(self, lines: Sequence[str], first: int) -> list[list[int]]:
        ids = self.tokenizer.encode_src_batch(list(lines))
        for n, seq in enumerate(ids):
            if len(seq) >= self.max_src_len:  # the source + EOS must fit in max_positions
                logger.warning(
                    "input line %d: %d subword tokens, more than the model's maximum "
                    "of %d; truncated to its first %d",
                    first + n,
                    len(seq),
                    self.max_src_len - 1,
                    self.max_src_len - 1,
                )
                ids[n] = seq[: self.max_src_len - 1]
        return ids

    def _translate_chunk(self, lines: list[str], first: int) -> list[Translation]:
        src_ids = self._encode_src(lines, first)
        out = [
            Translation(text="", nbest=[("", 0.0)], alignment=[] if self.alignments else None)
            for _ in lines
        ]  # empty lines keep these
        order = sorted((i for i, ids in enumerate(src_ids) if ids), key=lambda i: len(src_ids[i]))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            for i, translation in zip(
                batch, self._translate_ids([src_ids[i] for i in batch]), strict=True
            ):
                out[i] = translation
        return out

    def _search(self, src: torch.Tensor) -> list[list[Hypothesis]]:
        limit = max_output_lengths(
            src,
            ratio=self.max_len_ratio,
            offset=self.max_len_offset,
            max_positions=self.max_src_len,
        )
        with self._autocast():
            if self.beam == 1:
                return [[h] for h in greedy_search(self.model, src, max_len=limit)]
            return beam_search(
                self.model,
                src,
                beam=self.beam,
                n_best=self.n_best,
                length_penalty=self.length_penalty,
                max_len=limit,
            )

    def _translate_ids(self, src_ids: list[list[int]]) -> list[Translation]:
        results = self._search(collate_src(src_ids).to(self.device))
        translations = [
            Translation(
                text=self.tokenizer.decode_tgt(hyps[0].tokens),
                nbest=[(self.tokenizer.decode_tgt(h.tokens), h.score) for h in hyps],
                tokens=hyps[0].tokens,
            )
            for hyps in results
        ]
        if self.alignments:
            best = [hyps[0].tokens for hyps in results]
            keep = [i for i, tokens in enumerate(best) if tokens]
            aligned = self._align_ids([src_ids[i] for i in keep], [best[i] for i in keep])
            for t in translations:
                t.alignment = []
            for i, links in zip(keep, aligned, strict=True):
                translations[i].alignment = links
        return translations

    def _align_ids(self, src_ids: list[list[int]], tgt_ids: list[list[int]]) -> list[list[Link]]:
        """Alignments of non-empty id sequences, one batch."""
        if not src_ids:
            return []
        src = collate_src(src_ids).to(self.device)
        tgt = pad_ids(tgt_ids).to(self.device)  # no BOS/EOS
        with self._autocast():
            weights = forced_attention(self.model, src, tgt)
        links = []
        for n, (s, t) in enumerate(zip(src_ids, tgt_ids, strict=True)):
            matrix = select_attention(
                weights["cross"][n].cpu(), layer=self.align_layer, head=self.align_head
            )
            links.append(
                attention_alignment(
                    matrix,
                    pieces_to_words(self.tokenizer.src_pieces(s)),
                    pieces_to_words(self.tokenizer.tgt_pieces(t)),
                )
            )
        return links


def build_translator(run: Any, **overrides: Any) -> Translator:
    """A Translator for a loaded run (`seq2seq.checkpoint.load_run`), with the decoding
    defaults of its config's `decode` section; keyword arguments given and not None win."""
    decode = run.config.decode
    options: dict[str, Any] = {
        "beam": decode.beam,
        "n_best": decode.n_best,
        "length_penalty": decode.length_penalty,
        "max_len_ratio": decode.max_len_ratio,
        "max_len_offset": decode.max_len_offset,
        "batch_size": decode.batch_size,
    }
    given = {key: value for key, value in overrides.items() if value is not None}
    options.update(given)
    if "n_best" not in given:  # the config's n_best may exceed a beam given on the command line
        options["n_best"] = min(options["n_best"], options["beam"])
    return Translator(model=run.model, tokenizer=run.tokenizer, **options)
