"""Corpus-level BLEU, chrF and TER with sacrebleu, each with its reproducibility signature.

BLEU: Papineni et al. 2002; sacrebleu: Post 2018, arXiv:1804.08771 (signatures make scores
comparable across papers); chrF: Popović 2015; TER: Snover et al. 2006. The numbers are
sacrebleu's own (`sacrebleu.metrics.BLEU().corpus_score`, ...) with its default settings
(13a tokenization, exponential smoothing, chrF2 with character 6-grams; TER, like
sacrebleu's `corpus_ter`, is case-insensitive).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sacrebleu.metrics import BLEU, CHRF, TER

__all__ = ["MetricScore", "corpus_bleu", "corpus_scores"]


@dataclass(frozen=True)
class MetricScore:
    """One corpus score: value, sacrebleu signature and sacrebleu's one-line summary."""

    name: str  # "bleu" | "bleu_lowercase" | "chrf" | "ter"
    score: float
    signature: str  # e.g. "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
    summary: str  # e.g. "BLEU = 47.29 75.0/66.7/40.0/25.0 (BP = 1.000 ...)"


def _check(hyps: Sequence[str], refs: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    if isinstance(hyps, str) or isinstance(refs, str):
        raise ValueError("hypotheses and references must be sequences of sentences, got a str")
    if len(hyps) != len(refs):
        raise ValueError(
            f"got {len(hyps)} hypotheses but {len(refs)} references; expected one hypothesis "
            "per reference sentence"
        )
    if not hyps:
        raise ValueError("cannot score an empty corpus (0 hypotheses)")
    return list(hyps), [list(refs)]


def _score(name: str, metric: Any, hyps: list[str], refs: list[list[str]]) -> MetricScore:
    result = metric.corpus_score(hyps, refs)
    return MetricScore(
        name=name,
        score=float(result.score),
        signature=str(metric.get_signature()),
        summary=str(result),
    )


def corpus_bleu(hyps: Sequence[str], refs: Sequence[str], *, lowercase: bool = False) -> float:
    """sacrebleu corpus BLEU of detokenized hypotheses against one reference each."""
    hyps, refs2 = _check(hyps, refs)
    return float(BLEU(lowercase=lowercase).corpus_score(hyps, refs2).score)


def corpus_scores(
    hyps: Sequence[str], refs: Sequence[str], *, lowercase: bool = False
) -> dict[str, MetricScore]:
    """BLEU and chrF (case-insensitive with `lowercase`), TER, plus lowercased BLEU.

    TER is case-insensitive as in sacrebleu's default (`case:lc` in its signature).

    Returns {"bleu", "chrf", "ter", "bleu_lowercase"} -> MetricScore.
    """
    hyps, refs2 = _check(hyps, refs)
    return {
        "bleu": _score("bleu", BLEU(lowercase=lowercase), hyps, refs2),
        "chrf": _score("chrf", CHRF(lowercase=lowercase), hyps, refs2),
        "ter": _score("ter", TER(), hyps, refs2),
        "bleu_lowercase": _score("bleu_lowercase", BLEU(lowercase=True), hyps, refs2),
    }
