"""Shared data of the viewer tests: two sentences, one of them carrying markup."""

from __future__ import annotations

import numpy as np

from seq2seq.viz import AttentionExample

EVIL = "<script>alert(1)</script>"
EVIL_IMG = "<img src=x onerror=\"document.title='pwned'\">"


def _softmax(rng, *shape):
    e = np.exp(2.0 * rng.normal(size=shape))
    return e / e.sum(-1, keepdims=True)


def viewer_examples() -> list[AttentionExample]:
    """Sentence 0: 2 layers x 3 heads, cross + encoder_self. Sentence 1: markup in the text."""
    rng = np.random.default_rng(7)
    first = AttentionExample(
        src_pieces=["▁I", "▁lo", "ve", "▁you"],
        tgt_pieces=["▁je", "▁t", "'", "aime", "</s>"],
        weights={"cross": _softmax(rng, 2, 3, 5, 4), "encoder_self": _softmax(rng, 2, 3, 4, 4)},
        title="I love you",
    )
    second = AttentionExample(
        src_pieces=["▁" + EVIL, "▁&amp;", "▁" + EVIL_IMG],
        tgt_pieces=["▁</script>", "</s>"],
        weights={"cross": _softmax(rng, 2, 3, 2, 3)},
        title=f"{EVIL} &amp; {EVIL_IMG}",
    )
    return [first, second]
