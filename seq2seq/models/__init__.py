"""Encoder-decoder models behind one interface (:class:`Seq2Seq`), built from a ModelConfig.

    model = build_model(cfg.model, src_vocab_size, tgt_vocab_size)
    logits, weights = model(src, tgt_in, need_weights=True)    # teacher forcing
    state = model.init_state(model.encode(src))                # then model.step(...) per token

A new architecture is one class plus one entry in :data:`MODEL_BUILDERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID

from .base import DecoderState, Encoded, Seq2Seq
from .rnn import RNNSeq2Seq, build_rnn
from .rnn_decoder import RNNState
from .transformer import TransformerSeq2Seq, TransformerState, build_transformer

_SPECIALS = max(PAD_ID, UNK_ID, BOS_ID, EOS_ID) + 1  # the smallest usable vocabulary

__all__ = [
    "MODEL_BUILDERS",
    "DecoderState",
    "Encoded",
    "RNNSeq2Seq",
    "RNNState",
    "Seq2Seq",
    "TransformerSeq2Seq",
    "TransformerState",
    "build_model",
]

#: arch name -> builder(cfg: ModelConfig, src_vocab_size, tgt_vocab_size) -> Seq2Seq
MODEL_BUILDERS: dict[str, Callable[[Any, int, int], Seq2Seq]] = {
    "rnn": build_rnn,
    "transformer": build_transformer,
}


def build_model(cfg: Any, src_vocab_size: int, tgt_vocab_size: int) -> Seq2Seq:
    """The model described by ``cfg`` (a ModelConfig) for the given vocabulary sizes."""
    builder = MODEL_BUILDERS.get(cfg.arch)
    if builder is None:
        raise ValueError(
            f"model.arch: unknown architecture {cfg.arch!r}; available: "
            f"{', '.join(sorted(MODEL_BUILDERS))}"
        )
    for name, size in (("src_vocab_size", src_vocab_size), ("tgt_vocab_size", tgt_vocab_size)):
        if isinstance(size, bool) or not isinstance(size, int) or size < _SPECIALS:
            raise ValueError(
                f"build_model: {name} must be an int >= {_SPECIALS} (the special tokens), "
                f"got {size!r}"
            )
    return builder(cfg, src_vocab_size, tgt_vocab_size)
