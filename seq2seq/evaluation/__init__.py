"""Scoring: sacrebleu BLEU / chrF / TER, word alignments from attention and their AER."""

from seq2seq.evaluation.alignment import (
    AlignmentError,
    Link,
    alignment_error_rate,
    attention_alignment,
    format_pharaoh,
    parse_pharaoh,
    pieces_to_words,
    select_attention,
)
from seq2seq.evaluation.metrics import MetricScore, corpus_bleu, corpus_scores

__all__ = [
    "AlignmentError",
    "Link",
    "MetricScore",
    "alignment_error_rate",
    "attention_alignment",
    "corpus_bleu",
    "corpus_scores",
    "format_pharaoh",
    "parse_pharaoh",
    "pieces_to_words",
    "select_attention",
]
