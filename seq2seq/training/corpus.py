"""The corpora of a run: the prepared training data (see ``seq2seq.data.prepared``), the
validation set encoded in memory, and the test set's check."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seq2seq.data import DataError, TokenBatchSampler, Tokenizer, read_parallel
from seq2seq.data.io import check_same_length, count_lines
from seq2seq.data.pharaoh import read_alignments
from seq2seq.data.prepared import PreparedData
from seq2seq.training.distributed import DistInfo
from seq2seq.training.validation import ValidSet, make_batches

logger = logging.getLogger(__name__)


@dataclass
class Corpora:
    """The validation set's text and gold alignments (the training text is streamed by
    ``prepare``; the test set is only checked)."""

    valid_src: list[str]
    valid_tgt: list[str]
    valid_gold: list[Any] | None  # gold word alignments of the validation pairs, or None
    gold_path: Path | None


def gold_alignment_path(src_path: str) -> Path | None:
    """``dir/valid.align`` beside ``dir/valid.en`` (also ``.gz``), if such a file exists."""
    path = Path(src_path)
    stem = Path(path.stem).stem if path.suffix == ".gz" else path.stem
    for name in (f"{stem}.align", f"{stem}.align.gz"):
        candidate = path.with_name(name)
        if candidate.is_file():
            return candidate
    return None


def read_corpora(data_cfg: Any) -> Corpora:
    """Reads the validation set and checks the test set, raising DataError (file, line, what
    was expected) before anything is written; the training files are checked by ``prepare``."""
    valid_src, valid_tgt = read_parallel(data_cfg.valid.src, data_cfg.valid.tgt)
    if data_cfg.test is not None:
        test = data_cfg.test
        check_same_length(test.src, count_lines(test.src), test.tgt, count_lines(test.tgt))
    gold_path = gold_alignment_path(data_cfg.valid.src)
    gold = None
    if gold_path is not None:
        gold = read_alignments(gold_path)
        if len(gold) != len(valid_src):
            raise DataError(
                f"{gold_path}: {len(gold)} alignment lines but {data_cfg.valid.src} has "
                f"{len(valid_src)} sentences; expected one alignment line per sentence pair"
            )
    return Corpora(valid_src, valid_tgt, gold, gold_path)


def make_sampler(cfg: Any, data: PreparedData, info: DistInfo) -> TokenBatchSampler:
    """The token-budget sampler of this process (its shard of every global batch)."""
    src_lengths, tgt_lengths = data.tensor_lengths()
    return TokenBatchSampler(
        src_lengths=src_lengths,
        tgt_lengths=tgt_lengths,
        batch_tokens=cfg.train.batch_tokens,
        seed=cfg.train.seed,
        shuffle=True,
        rank=info.rank,
        world_size=info.world_size,
    )


def validation_set(cfg: Any, corpora: Corpora, tokenizer: Tokenizer) -> ValidSet:
    """The encoded validation set; sides longer than the model accepts are truncated."""
    limit = cfg.model.max_positions - 1  # room for EOS on either side, within the model's range
    src_ids = tokenizer.encode_src_batch(corpora.valid_src)
    tgt_ids = tokenizer.encode_tgt_batch(corpora.valid_tgt)
    long = sum(len(s) > limit or len(t) > limit for s, t in zip(src_ids, tgt_ids, strict=True))
    if long:
        logger.warning(
            "%d validation pairs truncated to model.max_positions - 1 = %d tokens", long, limit
        )
    src_ids = [s[:limit] for s in src_ids]  # an empty source is just </s> (collate_src)
    tgt_ids = [t[:limit] for t in tgt_ids]
    lengths = [max(len(s), len(t)) + 1 for s, t in zip(src_ids, tgt_ids, strict=True)]
    return ValidSet(
        src_ids=src_ids,
        tgt_ids=tgt_ids,
        src_text=corpora.valid_src,
        refs=corpora.valid_tgt,
        gold=corpora.valid_gold,
        batches=make_batches(lengths, max(cfg.train.batch_tokens, max(lengths))),
    )
