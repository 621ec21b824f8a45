"""Scores equal sacrebleu's own functions on the same sentences."""

from __future__ import annotations

import pytest
import sacrebleu
from sacrebleu.metrics import CHRF

from seq2seq.evaluation import corpus_bleu, corpus_scores

HYPS = ["The cat sat on the mat.", "There are Three dogs in the House.", "hello world", ""]
REFS = ["The cat sat on a mat.", "There are three dogs in the house.", "Hello, world!", "Yes."]


def test_scores_equal_sacrebleu():
    scores = corpus_scores(HYPS, REFS)
    assert scores["bleu"].score == sacrebleu.corpus_bleu(HYPS, [REFS]).score
    assert scores["chrf"].score == sacrebleu.corpus_chrf(HYPS, [REFS]).score
    assert scores["ter"].score == sacrebleu.corpus_ter(HYPS, [REFS]).score
    lower = sacrebleu.corpus_bleu(HYPS, [REFS], lowercase=True).score
    assert scores["bleu_lowercase"].score == lower
    assert lower > scores["bleu"].score  # "Three"/"House" only match when lowercased
    assert corpus_bleu(HYPS, REFS) == scores["bleu"].score
    assert scores["bleu"].signature.startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")
    assert "case:lc" in scores["bleu_lowercase"].signature
    assert scores["chrf"].signature.startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0")
    assert scores["ter"].signature.startswith("nrefs:1|case:lc|tok:tercom")
    assert scores["bleu"].summary.startswith("BLEU = ")


def test_lowercase_scores_everything_case_insensitively():
    scores = corpus_scores(HYPS, REFS, lowercase=True)
    assert scores["bleu"].score == sacrebleu.corpus_bleu(HYPS, [REFS], lowercase=True).score
    assert scores["chrf"].score == CHRF(lowercase=True).corpus_score(HYPS, [REFS]).score
    assert scores["chrf"].score > corpus_scores(HYPS, REFS)["chrf"].score
    assert scores["ter"].score == sacrebleu.corpus_ter(HYPS, [REFS]).score
    assert "case:lc" in scores["ter"].signature  # sacrebleu's TER ignores case by default


def test_identical_text_is_perfect():
    scores = corpus_scores(REFS[:3], REFS[:3])
    assert scores["bleu"].score == pytest.approx(100.0)
    assert scores["chrf"].score == pytest.approx(100.0)
    assert scores["ter"].score == pytest.approx(0.0)


def test_bad_input():
    with pytest.raises(ValueError, match="2 hypotheses but 3 references"):
        corpus_scores(HYPS[:2], REFS[:3])
    with pytest.raises(ValueError, match="empty corpus"):
        corpus_scores([], [])
    with pytest.raises(ValueError, match="str"):
        corpus_bleu("a sentence", "a sentence")
