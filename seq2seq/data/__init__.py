"""Data: reading corpora, subword tokenization, the prepared (memory-mapped) training data and
batching. The generated demo corpus is a package of its own, :mod:`seq2seq.demo`."""

from __future__ import annotations

from seq2seq.data.batching import (
    Batch,
    TokenBatchSampler,
    collate,
    collate_src,
    pad_ids,
)
from seq2seq.data.io import DataError, iter_lines, read_lines, read_parallel
from seq2seq.data.prepared import PreparedData, prepare
from seq2seq.data.tokenizer import Tokenizer

__all__ = [
    "Batch",
    "DataError",
    "PreparedData",
    "TokenBatchSampler",
    "Tokenizer",
    "collate",
    "collate_src",
    "iter_lines",
    "pad_ids",
    "prepare",
    "read_lines",
    "read_parallel",
]
