"""Scoring: sacrebleu BLEU / chrF / TER, word alignments from attention and their AER."""

from seq2seq.evaluation.metrics import MetricScore, corpus_bleu, corpus_scores
from seq2seq.evaluation.word_alignment import (
    AlignmentError,
    Link,
    alignment_error_rate,
    attention_alignment,
    pieces_to_words,
    select_attention,
)

__all__ = [
    "AlignmentError",
    "Link",
    "MetricScore",
    "alignment_error_rate",
    "attention_alignment",
    "corpus_bleu",
    "corpus_scores",
    "pieces_to_words",
    "select_attention",
]
