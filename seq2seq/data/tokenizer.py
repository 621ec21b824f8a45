"""Subword tokenization with sentencepiece.

SentencePiece: Kudo & Richardson 2018, arXiv:1808.06226. Unigram language model: Kudo 2018,
arXiv:1804.10959. Byte-pair encoding: Sennrich et al. 2016, arXiv:1508.07909.

The special ids come from `seq2seq.vocab` and are written into every model trained here, so the
models, the search and the tokenizer agree on them. A run directory holds either one joint model
(`spm.model`) or one model per side (`spm.src.model`, `spm.tgt.model`).
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import sentencepiece as spm

from seq2seq.data.io import DataError
from seq2seq.fileio import write_atomic
from seq2seq.vocab import BOS, BOS_ID, EOS, EOS_ID, PAD, PAD_ID, UNK, UNK_ID

if TYPE_CHECKING:
    from seq2seq.config import TokenizerConfig

logger = logging.getLogger(__name__)

JOINT_MODEL = "spm.model"
SRC_MODEL = "spm.src.model"
TGT_MODEL = "spm.tgt.model"
WORD_START = "\u2581"  # "▁": sentencepiece's marker of a piece that begins a word
SPECIAL_PIECES = frozenset({PAD, BOS, EOS})  # pieces that are words of their own
_SPECIAL_IDS = frozenset({PAD_ID, BOS_ID, EOS_ID})
_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")
_TOO_LOW = re.compile(r"smaller than required_chars\. (\d+) vs (\d+)")


def sample_indices(total: int, k: int, seed: int) -> np.ndarray:
    """``min(k, total)`` distinct line numbers out of ``range(total)``, drawn uniformly by
    ``seed``, in increasing order (all of them when ``total <= k``)."""
    if k < 1:
        raise ValueError(f"sample size: expected >= 1, got {k}")
    if total <= k:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=k, replace=False))


def take_lines(lines: Sequence[str] | SampleSource, indices: np.ndarray) -> list[str]:
    """The lines at ``indices`` (increasing) of a list, or of a source that streams them."""
    if hasattr(lines, "take"):
        return lines.take(indices)
    return [lines[i] for i in indices.tolist()]


class SampleSource(Protocol):
    """Lines that are too many to hold: their count, and the lines at given line numbers."""

    def __len__(self) -> int: ...

    def take(self, indices: np.ndarray) -> list[str]: ...


def train_sentencepiece(
    lines: Iterable[str],
    *,
    model_type: str,
    vocab_size: int,
    character_coverage: float,
    name: str = "corpus",
) -> bytes:
    """Train a sentencepiece model in memory and return its serialized form (no files written).

    It is trained on the non-empty ones of `lines` (see `Tokenizer.train` for the sample).

    When the text is too small for `vocab_size` pieces, sentencepiece refuses; the model is then
    trained again with the largest size the text supports and a warning says so (the model
    config reads the real vocabulary size from the tokenizer, so nothing else has to change).
    A vocabulary too small to hold every character of the text is an error.
    """
    sentences = [line for line in lines if line.strip()]
    if not sentences:
        raise DataError(f"{name}: no non-empty lines to train the subword model on")
    size = vocab_size
    for _ in range(3):
        try:
            return _train_once(sentences, model_type, size, character_coverage)
        except RuntimeError as e:
            too_high, too_low = _TOO_HIGH.search(str(e)), _TOO_LOW.search(str(e))
            if too_low:
                raise DataError(
                    f"data.tokenizer.vocab_size={vocab_size} is too small for {name}: its text"
                    f" needs {too_low.group(2)} pieces for its characters and the special"
                    f" tokens; set data.tokenizer.vocab_size >= {too_low.group(2)} or lower"
                    " data.tokenizer.character_coverage"
                ) from None
            if not too_high:
                raise DataError(f"{name}: sentencepiece training failed: {e}") from None
            size = int(too_high.group(2))
            logger.warning(
                "%s: the training text supports at most %d subword pieces; using"
                " vocab_size=%d instead of %d (set data.tokenizer.vocab_size <= %d to avoid"
                " this warning)",
                name,
                size,
                size,
                vocab_size,
                size,
            )
    raise DataError(
        f"{name}: sentencepiece could not train a model near data.tokenizer.vocab_size="
        f"{vocab_size}; set a smaller data.tokenizer.vocab_size"
    )


def _train_once(sentences: list[str], model_type: str, vocab_size: int, coverage: float) -> bytes:
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=buffer,
        model_type=model_type,
        vocab_size=vocab_size,
        character_coverage=coverage,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        pad_piece=PAD,
        unk_piece=UNK,
        bos_piece=BOS,
        eos_piece=EOS,
        input_sentence_size=0,  # sampling is done above, reproducibly by seed
        shuffle_input_sentence=False,
        num_threads=max(1, min(4, os.cpu_count() or 1)),
        minloglevel=2,
    )
    return buffer.getvalue()


def _processor(proto: bytes, name: str) -> spm.SentencePieceProcessor:
    try:
        sp = spm.SentencePieceProcessor(model_proto=proto)
    except (RuntimeError, OSError) as e:
        raise DataError(f"{name}: not a valid sentencepiece model ({e})") from None
    found = (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id())
    if found != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
        raise DataError(
            f"{name}: special ids (pad, unk, bos, eos) are {found}, expected"
            f" {(PAD_ID, UNK_ID, BOS_ID, EOS_ID)}; train the model with `seq2seq train`"
        )
    return sp


class Tokenizer:
    """Source and target subword models; joint when both sides share one model."""

    def __init__(self, *, src_model: bytes, tgt_model: bytes | None = None) -> None:
        """src_model/tgt_model: serialized sentencepiece models; tgt_model None = joint."""
        self.joint = tgt_model is None
        self._protos = {"src": src_model, "tgt": src_model if tgt_model is None else tgt_model}
        self._src = _processor(src_model, "source subword model")
        self._tgt = (
            self._src if tgt_model is None else _processor(tgt_model, "target subword model")
        )

    @classmethod
    def train(
        cls,
        cfg: TokenizerConfig,
        src_lines: Sequence[str] | SampleSource,
        tgt_lines: Sequence[str] | SampleSource,
        out_dir: str | os.PathLike[str] | None = None,
        *,
        seed: int = 1,
    ) -> Tokenizer:
        """Train on the training text (cfg: type, vocab_size, joint, character_coverage,
        sample_sentences) and save the model(s) in `out_dir` (None: not saved).

        Each model is trained on `cfg.sample_sentences` lines drawn uniformly by `seed` (all
        lines of a smaller text; empty lines are left out): for a joint model out of both
        sides together, else out of each side. The sides may be `SampleSource`s that stream
        the lines from their files, so only the sample is ever held in memory.
        """
        options = {
            "model_type": cfg.type,
            "vocab_size": cfg.vocab_size,
            "character_coverage": cfg.character_coverage,
        }
        k = cfg.sample_sentences
        if cfg.joint:
            n_src = len(src_lines)
            chosen = sample_indices(n_src + len(tgt_lines), k, seed)
            cut = int(np.searchsorted(chosen, n_src))
            lines = take_lines(src_lines, chosen[:cut]) + take_lines(
                tgt_lines, chosen[cut:] - n_src
            )
            tokenizer = cls(src_model=train_sentencepiece(lines, name="joint text", **options))
        else:
            src_sample = take_lines(src_lines, sample_indices(len(src_lines), k, seed))
            tgt_sample = take_lines(tgt_lines, sample_indices(len(tgt_lines), k, seed))
            src = train_sentencepiece(src_sample, name="source text", **options)
            tgt = train_sentencepiece(tgt_sample, name="target text", **options)
            tokenizer = cls(src_model=src, tgt_model=tgt)
        if out_dir is not None:
            tokenizer.save(out_dir)
        logger.info(
            "trained %s %s subword model(s): src vocab %d, tgt vocab %d",
            "joint" if cfg.joint else "separate",
            cfg.type,
            tokenizer.src_vocab_size,
            tokenizer.tgt_vocab_size,
        )
        return tokenizer

    def save(self, out_dir: str | os.PathLike[str]) -> list[Path]:
        """Write spm.model (joint) or spm.src.model + spm.tgt.model atomically; returns paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = self.to_bytes()
        for name in {JOINT_MODEL, SRC_MODEL, TGT_MODEL} - files.keys():
            (out / name).unlink(missing_ok=True)  # a stale model of the other layout
        for name, data in files.items():
            write_atomic(data, out / name)
        return [out / name for name in files]

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> Tokenizer:
        """Load the model(s) saved in a run directory."""
        run = Path(run_dir)
        if (run / JOINT_MODEL).is_file():
            return cls(src_model=(run / JOINT_MODEL).read_bytes())
        if (run / SRC_MODEL).is_file() and (run / TGT_MODEL).is_file():
            return cls(
                src_model=(run / SRC_MODEL).read_bytes(), tgt_model=(run / TGT_MODEL).read_bytes()
            )
        raise DataError(
            f"{run}: no subword model found; expected {JOINT_MODEL} or both {SRC_MODEL} and"
            f" {TGT_MODEL}"
        )

    def to_bytes(self) -> dict[str, bytes]:
        """The serialized model(s) by file name, e.g. to store them in a checkpoint."""
        if self.joint:
            return {JOINT_MODEL: self._protos["src"]}
        return {SRC_MODEL: self._protos["src"], TGT_MODEL: self._protos["tgt"]}

    @classmethod
    def from_bytes(cls, files: dict[str, bytes]) -> Tokenizer:
        """Inverse of `to_bytes`."""
        if JOINT_MODEL in files:
            return cls(src_model=files[JOINT_MODEL])
        return cls(src_model=files[SRC_MODEL], tgt_model=files[TGT_MODEL])

    @property
    def src_vocab_size(self) -> int:
        return self._src.get_piece_size()

    @property
    def tgt_vocab_size(self) -> int:
        return self._tgt.get_piece_size()

    def encode_src(self, text: str) -> list[int]:
        """Source ids, no BOS/EOS added."""
        return self._src.encode(text)

    def encode_tgt(self, text: str) -> list[int]:
        """Target ids, no BOS/EOS added."""
        return self._tgt.encode(text)

    def encode_src_batch(self, texts: Sequence[str], threads: int = -1) -> list[list[int]]:
        """Source ids of many texts (``threads``: sentencepiece's threads, -1 = all cores)."""
        return self._src.encode(list(texts), num_threads=threads) if texts else []

    def encode_tgt_batch(self, texts: Sequence[str], threads: int = -1) -> list[list[int]]:
        return self._tgt.encode(list(texts), num_threads=threads) if texts else []

    def decode_src(self, ids: Sequence[int]) -> str:
        """Text of source ids; stops at EOS, drops PAD and BOS."""
        return self._src.decode(_content_ids(ids))

    def decode_tgt(self, ids: Sequence[int]) -> str:
        """Text of target ids; stops at EOS, drops PAD and BOS."""
        return self._tgt.decode(_content_ids(ids))

    def src_pieces(self, ids: Sequence[int]) -> list[str]:
        """The piece of each source id (specials included), e.g. for plot labels."""
        return [self._src.id_to_piece(int(i)) for i in ids]

    def tgt_pieces(self, ids: Sequence[int]) -> list[str]:
        return [self._tgt.id_to_piece(int(i)) for i in ids]

    @staticmethod
    def piece_word_ids(pieces: Sequence[str]) -> list[int]:
        """Word index of each piece, starting at 0.

        A piece beginning with "▁" starts a new word (the first piece always starts word 0);
        the specials <s>, </s> and <pad> are words of their own. Words are thus the
        whitespace-separated tokens of the text, the unit of Pharaoh alignments.
        """
        ids: list[int] = []
        for i, piece in enumerate(pieces):
            new = piece.startswith(WORD_START) or piece in SPECIAL_PIECES
            new = new or (i > 0 and pieces[i - 1] in SPECIAL_PIECES)
            ids.append(0 if i == 0 else ids[-1] + int(new))
        return ids

    @staticmethod
    def words(pieces: Sequence[str]) -> list[str]:
        """The words of a piece sequence (see `piece_word_ids`), "▁" markers removed."""
        word_ids = Tokenizer.piece_word_ids(pieces)
        words = [""] * (word_ids[-1] + 1 if word_ids else 0)
        for piece, i in zip(pieces, word_ids, strict=True):
            words[i] += piece if piece in SPECIAL_PIECES else piece.replace(WORD_START, "")
        return words


def _content_ids(ids: Sequence[int]) -> list[int]:
    """Ids up to the first EOS, without PAD/BOS (accepts lists and 1-D tensors)."""
    out: list[int] = []
    for i in ids.tolist() if hasattr(ids, "tolist") else ids:
        i = int(i)
        if i == EOS_ID:
            break
        if i not in _SPECIAL_IDS:
            out.append(i)
    return out
