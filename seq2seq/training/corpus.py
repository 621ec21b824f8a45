"""The training and validation corpora: read and checked, subword model, encoded pairs."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seq2seq.data import DataError, TokenBatchSampler, Tokenizer, read_parallel
from seq2seq.data.align import read_alignments
from seq2seq.data.batching import Pair, encode_corpus, pair_lengths
from seq2seq.training.distributed import DistInfo
from seq2seq.training.validation import ValidSet, make_batches

logger = logging.getLogger(__name__)


@dataclass
class Corpora:
    """The raw text of the training and validation sets (the test set is only checked)."""

    train_src: list[str]
    train_tgt: list[str]
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
    """Reads every configured corpus, raising DataError (file, line, what was expected) early."""
    train_src, train_tgt = read_parallel(data_cfg.train.src, data_cfg.train.tgt)
    valid_src, valid_tgt = read_parallel(data_cfg.valid.src, data_cfg.valid.tgt)
    if data_cfg.test is not None:
        read_parallel(data_cfg.test.src, data_cfg.test.tgt)
    gold_path = gold_alignment_path(data_cfg.valid.src)
    gold = None
    if gold_path is not None:
        gold = read_alignments(gold_path)
        if len(gold) != len(valid_src):
            raise DataError(
                f"{gold_path}: {len(gold)} alignment lines but {data_cfg.valid.src} has "
                f"{len(valid_src)} sentences; expected one alignment line per sentence pair"
            )
    return Corpora(train_src, train_tgt, valid_src, valid_tgt, gold, gold_path)


def train_tokenizer(cfg: Any, corpora: Corpora) -> Tokenizer:
    """Trains the subword model(s) on the training text, in memory (``save`` writes them)."""
    with tempfile.TemporaryDirectory(prefix="seq2seq-spm-") as tmp:
        return Tokenizer.train(
            cfg.data.tokenizer, corpora.train_src, corpora.train_tgt, tmp, seed=cfg.train.seed
        )


def training_pairs(cfg: Any, corpora: Corpora, tokenizer: Tokenizer) -> list[Pair]:
    """Encoded training pairs without those longer than ``data.max_len`` (counted in the log)."""
    pairs, dropped = encode_corpus(
        tokenizer, corpora.train_src, corpora.train_tgt, cfg.data.max_len
    )
    logger.info(
        "training pairs: kept %d, dropped %d (longer than data.max_len=%d or empty source)",
        len(pairs),
        dropped,
        cfg.data.max_len,
    )
    if not pairs:
        raise DataError(
            f"{cfg.data.train.src}: no training pair is left after dropping pairs longer than "
            f"data.max_len={cfg.data.max_len} subword tokens; raise data.max_len"
        )
    return pairs


def make_sampler(cfg: Any, pairs: list[Pair], info: DistInfo) -> TokenBatchSampler:
    """The token-budget sampler of this process (its shard of every global batch)."""
    src_lengths, tgt_lengths = pair_lengths(pairs)
    sampler = TokenBatchSampler(
        src_lengths=src_lengths,
        tgt_lengths=tgt_lengths,
        batch_tokens=cfg.train.batch_tokens,
        seed=cfg.train.seed,
        shuffle=True,
        rank=info.rank,
        world_size=info.world_size,
    )
    logger.info(
        "batches: %d per epoch per process, %d target tokens each at most, padding %.1f%%",
        len(sampler),
        cfg.train.batch_tokens,
        100 * sampler.padding_fraction(),
    )
    return sampler


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
