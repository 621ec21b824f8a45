"""The Python API of a trained translator: translate, score, align and look at attention.

    from seq2seq import Translator
    t = Translator.load("runs/demo", device="cpu", beam=5)   # a run directory or a .pt
    t.translate(["I have twenty-three cats."])               # -> [Translation]
    t.score(["I have cats."], ["Ich habe Katzen."])          # forced decoding log-probs
    t.attention("I have cats.")                              # every slot, layer and head

Loading needs the checkpoint and the subword model beside it, never the training data.
Texts are encoded with the run's subword model, decoded through :func:`decode_ids` (sorted by
length, batched, in input order) and detokenized. Empty texts give empty translations without
touching the model; sources longer than the model's ``max_positions`` subwords are truncated
with a warning naming the line. The command line (`translate`, `evaluate`, `plot`) and the
HTTP server are built on this class.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from seq2seq.evaluation.word_alignment import (
    Link,
    attention_alignment,
    pieces_to_words,
    select_attention,
)
from seq2seq.inference.attention import example_of, forced_weights, hypothesis_example
from seq2seq.inference.decode import (
    DecodeError,
    DecodeOptions,
    PairScore,
    decode_ids,
    model_device,
    score_ids,
    truncate,
)
from seq2seq.inference.ensemble import Ensemble, check_same_vocabulary
from seq2seq.inference.results import Translation, check_texts, zip_equal
from seq2seq.inference.sampling import Sampler, parse_sampling
from seq2seq.inference.search import Hypothesis
from seq2seq.runtime.device import resolve_device
from seq2seq.runtime.packed import pack_linears
from seq2seq.runtime.precision import (
    DECODE_PRECISIONS,
    INFERENCE_PRECISIONS,
    INT8,
    quantize_int8,
    resolve_precision,
)
from seq2seq.viz.example import AttentionExample
from seq2seq.vocab import UNK_ID

logger = logging.getLogger(__name__)

__all__ = ["DecodeOptions", "PairScore", "TranslateError", "Translation", "Translator"]

#: Decoding errors are ValueErrors naming the option; the old name stays for callers.
TranslateError = DecodeError


class Translator:
    """Batched translation with greedy (beam 1) or beam search; see the module docstring.

    ``pack``: for float32 decoding on the CPU, replace the model's large linear layers, in
    place, by copies with oneDNN-prepacked weights (`seq2seq.runtime.packed`). `load` does, as
    the model it loads is the translator's own; a model handed to the constructor is left as it
    is unless asked (validation decodes the model being trained).

    ``workers``: batches decoded at once, each in a thread of its own with the intra-op thread
    count that the constructing thread has (torch's setting is per thread); on a small CPU two
    single-threaded workers decode more sentences per second than one with two threads. The
    model is shared, not copied. Sampling decodes one batch at a time.
    """

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
        stopping: str = "exact",
        batch_size: int = 64,
        precision: str = "fp32",
        alignments: bool = False,
        align_layer: int = -1,
        align_head: int | None = None,
        chunk_size: int | None = None,
        sampling: str | Sampler | None = None,
        temperature: float | None = None,
        seed: int = 0,
        config: Any = None,
        checkpoint_path: Path | list[Path] | None = None,
        pack: bool = False,
        workers: int = 1,
    ) -> None:
        if isinstance(sampling, str):
            sampling = parse_sampling(sampling, 1.0 if temperature is None else temperature)
        elif temperature is not None:
            if sampling is None:
                raise TranslateError("temperature: applies to sampling only; give a sampling too")
            sampling = dataclasses.replace(sampling, temperature=temperature)
        self.options = DecodeOptions(
            beam=beam,
            n_best=n_best,
            length_penalty=length_penalty,
            max_len_ratio=max_len_ratio,
            max_len_offset=max_len_offset,
            stopping=stopping,
            sampling=sampling,
            seed=seed,
        )
        if batch_size < 1:
            raise TranslateError(f"batch size: got {batch_size}, expected an integer >= 1")
        if workers < 1:
            raise TranslateError(f"workers: got {workers}, expected an integer >= 1")
        self.workers = workers
        self._map: Any = map  # how batches are decoded: in order, or by the workers' pool
        if workers > 1:
            self._map = ThreadPoolExecutor(
                workers,
                thread_name_prefix="seq2seq-decode",
                initializer=torch.set_num_threads,
                initargs=(torch.get_num_threads(),),
            ).map
        self.model, self.tokenizer = model, tokenizer  # the searches run it in eval mode
        self.config, self.checkpoint_path = config, checkpoint_path
        self.batch_size = batch_size
        self.chunk_size = chunk_size or 16 * batch_size
        self.device = model_device(model)
        if precision not in INFERENCE_PRECISIONS:
            raise TranslateError(
                f"precision: got {precision!r}, expected one of {', '.join(INFERENCE_PRECISIONS)}"
            )
        self.int8 = precision == INT8
        try:
            if self.int8:
                quantize_int8(model)
            self._precision = resolve_precision(
                "fp32" if self.int8 else precision,
                self.device,
                allowed=DECODE_PRECISIONS,
                option="precision",
            )
        except ValueError as e:
            raise TranslateError(str(e)) from None
        if pack and not self.int8 and self._precision.name == "fp32" and self.device.type == "cpu":
            pack_linears(model)  # the model is the translator's own (see load)
        self.alignments, self.align_layer, self.align_head = alignments, align_layer, align_head
        self.max_src_len = int(model.max_positions) - 1  # the source + EOS must fit
        if alignments:
            self.check_align_options()

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        **options: Any,
    ) -> Translator:
        """The translator of a run directory (its best.pt, else last.pt) or a .pt checkpoint;
        a list of them decodes as an ensemble (they must share the subword model).

        device: auto (CUDA when present), cpu, cuda or a torch.device. precision: auto, fp32,
        bf16 or int8 (CPU). options: any keyword of the constructor (beam, n_best,
        length_penalty, max_len_ratio, max_len_offset, stopping, batch_size, sampling,
        temperature, seed, align_layer, align_head, workers); those not given, or None, come
        from the (first) run's ``decode`` config section.
        """
        from seq2seq.checkpoint import load_run

        if not isinstance(device, torch.device):
            try:
                device = resolve_device(str(device))
            except ValueError as e:
                raise TranslateError(str(e).replace("train.device", "device")) from None
        options = {"pack": True, **options}  # the models loaded here are the translator's own
        if isinstance(path, str | os.PathLike):
            return cls.from_run(load_run(path, device=device), precision=precision, **options)
        runs = [load_run(p, device=device) for p in path]
        return cls.from_run(runs, precision=precision, **options)

    @classmethod
    def from_run(cls, run: Any, **options: Any) -> Translator:
        """The translator of a loaded run (`seq2seq.checkpoint.load_run`), or of a list of
        runs (an ensemble), with the decoding defaults of the (first) run's ``decode``
        section; options given and not None win."""
        runs = run if isinstance(run, list) else [run]  # a Run is itself a tuple
        model = runs[0].model if len(runs) == 1 else _ensemble(runs)
        decode = runs[0].config.decode
        merged: dict[str, Any] = {
            "beam": decode.beam,
            "n_best": decode.n_best,
            "length_penalty": decode.length_penalty,
            "max_len_ratio": decode.max_len_ratio,
            "max_len_offset": decode.max_len_offset,
            "stopping": decode.stopping,
            "batch_size": decode.batch_size,
        }
        given = {key: value for key, value in options.items() if value is not None}
        merged.update(given)
        if given.get("sampling") is not None and "beam" not in given:
            merged["beam"] = 1  # sampling replaces the config's beam search
        if "n_best" not in given:  # the config's n_best may exceed a beam given here
            merged["n_best"] = min(merged["n_best"], merged["beam"])
        paths = [r.checkpoint_path for r in runs]
        return cls(
            model=model,
            tokenizer=runs[0].tokenizer,
            config=runs[0].config,
            checkpoint_path=paths[0] if len(paths) == 1 else paths,
            **merged,
        )

    # --- the API ------------------------------------------------------------------------------

    @property
    def beam(self) -> int:
        return self.options.beam

    @property
    def n_best(self) -> int:
        return self.options.n_best

    @property
    def precision(self) -> str:
        """The precision decoding runs in: fp32, bf16 or int8."""
        return INT8 if self.int8 else self._precision.name

    def translate(
        self,
        texts: str | Iterable[str],
        *,
        beam: int | None = None,
        n_best: int | None = None,
        alignments: bool | None = None,
        attention: bool = False,
        prefix: str | Iterable[str] | None = None,
    ) -> list[Translation]:
        """Translations of `texts` (a list of strings, or one string), in order.

        beam, n_best: this call's search (default: the translator's; with sampling, n_best
        samples); alignments: add word alignments (default: the translator's setting);
        attention: add each translation's attention as an AttentionExample; prefix: per text,
        the words its translation must start with ("" for none; the search continues from
        them). An empty list gives an empty list.
        """
        texts = check_texts(texts, "texts")
        prefixes = None if prefix is None else check_texts(prefix, "prefix")
        if prefixes is not None and len(prefixes) != len(texts):
            raise TranslateError(f"prefix: got {len(prefixes)} prefixes for {len(texts)} texts")
        options = self.options
        if options.sampling is not None:
            options = options.replace(n_best=n_best)
        elif beam is not None or n_best is not None:
            beam = options.beam if beam is None else beam
            options = options.replace(beam=beam, n_best=n_best or min(options.n_best, beam))
        want_links = self.alignments if alignments is None else alignments
        if want_links and not self.alignments:
            self.check_align_options()
        return self._translate(texts, 1, options, want_links, attention, prefixes)

    def stream(
        self, lines: Iterable[str], prefixes: Iterable[str] | None = None
    ) -> Iterator[Translation]:
        """Translations of `lines`, in order, computed `chunk_size` lines at a time (files);
        `prefixes`, when given, has one prefix per line ("" for none)."""
        pairs = ((line, None) for line in lines) if prefixes is None else zip_equal(lines, prefixes)
        chunk: list[tuple[str, str | None]] = []
        first = 1  # number of the chunk's first line, for warnings
        for pair in pairs:
            chunk.append(pair)
            if len(chunk) >= self.chunk_size:
                yield from self._chunk(chunk, first, prefixes is not None)
                first, chunk = first + len(chunk), []
        if chunk:
            yield from self._chunk(chunk, first, prefixes is not None)

    def _chunk(self, chunk, first: int, with_prefix: bool) -> list[Translation]:
        texts = [text for text, _ in chunk]
        prefixes = [p for _, p in chunk] if with_prefix else None
        return self._translate(texts, first, self.options, self.alignments, False, prefixes)

    def score(self, sources: Sequence[str], targets: Sequence[str]) -> list[PairScore]:
        """Forced-decoding scores of (source, target) pairs: each target's log-probability
        (EOS included), its token count and the length-normalised score beam search would
        report for it."""
        src_ids, tgt_ids = self._encode_pairs(sources, targets)
        return score_ids(
            self.model,
            src_ids,
            tgt_ids,
            alpha=self.options.length_penalty,
            batch_size=self.batch_size,
            autocast=self._precision.autocast,
            map_batches=self._map,
        )

    def align(self, sources: Sequence[str], targets: Sequence[str]) -> list[list[Link]]:
        """Word alignments of given pairs, read off their teacher-forced cross-attention."""
        self.check_align_options()
        src_ids, tgt_ids = self._encode_pairs(sources, targets)
        return self._alignments(src_ids, tgt_ids)

    def attention(
        self, source: str, target: str | None = None, *, beam: int | None = None
    ) -> AttentionExample:
        """The attention of every slot, layer and head on one sentence, with the pieces.

        Without `target` the sentence is translated (this translator's search, or `beam`)
        and the weights are those the model used to produce its translation; with `target`
        that target is forced. ``example.matrices(slot)`` is a numpy [L, H, Tq, Tk] array,
        ``example.labels(slot)`` its (row, column) piece labels.
        """
        (source,) = check_texts([source], "source")
        if not source.strip():
            raise TranslateError("source: the sentence is empty: nothing to attend to")
        if target is None:
            found = self.translate([source], beam=beam, n_best=1, attention=True)
            example = found[0].attention
        else:
            (target,) = check_texts([target], "target")
            src_ids, tgt_ids = self._encode_pairs([source], [target])
            weights = self._forced_weights(src_ids, tgt_ids)[0]
            example = None
            if weights is not None:
                example = example_of(self.tokenizer, src_ids[0], tgt_ids[0], weights)
        if example is None:
            raise TranslateError("target: the sentence is empty: nothing to attend to")
        example.title = source
        return example

    def describe(self) -> dict[str, Any]:
        """What the model is: languages, architecture, attention of each slot, size, search."""
        cfg = self.config
        slots = {}
        for name in getattr(self.model, "slots", ()):
            spec = getattr(cfg.model.attention, name, None) if cfg is not None else None
            slots[name] = {"type": spec.type, "heads": spec.heads} if spec is not None else {}
        return {
            "src_lang": cfg.data.src_lang if cfg is not None else None,
            "tgt_lang": cfg.data.tgt_lang if cfg is not None else None,
            "arch": self._arch(),
            "attention": slots,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "max_positions": int(self.model.max_positions),
            "src_vocab_size": self.tokenizer.src_vocab_size,
            "tgt_vocab_size": self.tokenizer.tgt_vocab_size,
            "beam": self.options.beam,
            "length_penalty": self.options.length_penalty,
            "stopping": self.options.stopping,
            "precision": self.precision,
            "device": str(self.device),
        }

    def _arch(self) -> str:
        if isinstance(self.model, Ensemble):
            return f"ensemble of {len(self.model.members)}"
        return self.config.model.arch if self.config is not None else type(self.model).__name__

    def check_align_options(self) -> None:
        """Raise for an align layer or head the model lacks, or a model without cross."""
        shapes = self.attention_shapes
        if "cross" not in shapes:
            raise TranslateError(
                f"the model has no cross-attention to align with (slots: {sorted(shapes)})"
            )
        select_attention(torch.zeros(shapes["cross"]), layer=self.align_layer, head=self.align_head)

    @functools.cached_property
    def attention_shapes(self) -> dict[str, tuple[int, ...]]:
        """{slot: (L, H, 1, 1)}: the layers and heads of each attention slot of the model
        (read once, from a forced pass over one token)."""
        weights = self._forced_weights([[UNK_ID]], [[UNK_ID]])[0]
        assert weights is not None
        return {slot: (*w.shape[:2], 1, 1) for slot, w in weights.items()}

    # --- internals ----------------------------------------------------------------------------

    def _encode(self, texts: Sequence[str], first: int, side: str = "src") -> list[list[int]]:
        """Subword ids of one side's texts, truncated (with a warning) to what the model takes."""
        if side == "src":
            ids, what = self.tokenizer.encode_src_batch(list(texts)), "input line"
        else:
            ids, what = self.tokenizer.encode_tgt_batch(list(texts)), "target line"
        return truncate(ids, self.max_src_len, what, first)

    def _encode_pairs(
        self, sources: Sequence[str], targets: Sequence[str]
    ) -> tuple[list[list[int]], list[list[int]]]:
        sources, targets = check_texts(sources, "sources"), check_texts(targets, "targets")
        if len(sources) != len(targets):
            raise TranslateError(f"got {len(sources)} sources but {len(targets)} targets")
        return self._encode(sources, 1), self._encode(targets, 1, "tgt")

    def _forced_weights(self, src_ids, tgt_ids) -> list[dict[str, torch.Tensor] | None]:
        return forced_weights(
            self.model,
            src_ids,
            tgt_ids,
            batch_size=self.batch_size,
            autocast=self._precision.autocast,
        )

    def _translate(
        self,
        texts: Sequence[str],
        first: int,
        options: DecodeOptions,
        alignments: bool,
        attention: bool,
        prefixes: list[str] | None = None,
    ) -> list[Translation]:
        src_ids = self._encode(texts, first)
        prefix_ids = None
        if prefixes is not None:  # room for the prefix and at least one more token
            prefix_ids = self.tokenizer.encode_tgt_batch(prefixes)
            prefix_ids = truncate(prefix_ids, self.max_src_len - 1, "prefix of line", first)
        found = decode_ids(
            self.model,
            src_ids,
            options,
            batch_size=self.batch_size,
            autocast=self._precision.autocast,
            need_weights=attention,
            prefix_ids=prefix_ids,
            map_batches=self._map,
        )
        out = [self._translation(hyps) for hyps in found]
        if attention:
            for t, ids, hyps in zip(out, src_ids, found, strict=True):
                if ids:
                    t.attention = hypothesis_example(self.tokenizer, ids, hyps[0])
        if alignments:
            links = self._alignments(src_ids, [t.tokens for t in out])
            for t, found in zip(out, links, strict=True):
                t.alignment = found
        return out

    def _translation(self, hyps: list[Hypothesis]) -> Translation:
        best = hyps[0]
        nbest = [(self.tokenizer.decode_tgt(h.tokens), h.score) for h in hyps]
        return Translation(
            text=nbest[0][0],
            score=best.score,
            log_prob=best.log_prob,
            tokens=best.tokens,
            pieces=self.tokenizer.tgt_pieces(best.tokens) if best.tokens else [],
            nbest=nbest,
        )

    def _alignments(self, src_ids, tgt_ids) -> list[list[Link]]:
        """Word links of id pairs, from their forced cross-attention ([] for an empty side)."""
        out = []
        for src, tgt, weights in zip(
            src_ids, tgt_ids, self._forced_weights(src_ids, tgt_ids), strict=True
        ):
            if weights is None:
                out.append([])
                continue
            matrix = select_attention(
                weights["cross"], layer=self.align_layer, head=self.align_head
            )
            src_words = pieces_to_words(self.tokenizer.src_pieces(src))
            tgt_words = pieces_to_words(self.tokenizer.tgt_pieces(tgt))
            out.append(attention_alignment(matrix, src_words, tgt_words))
        return out


def _ensemble(runs: Sequence[Any]) -> Ensemble:
    """The models of `runs` as one Ensemble, refusing runs with different subword models."""
    from seq2seq.checkpoint import subword_files

    names = [str(r.checkpoint_path) for r in runs]
    check_same_vocabulary([subword_files(r.checkpoint_path.parent) for r in runs], names)
    return Ensemble([r.model for r in runs])
