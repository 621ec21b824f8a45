"""Tiny model configs, batches and a step-by-step decoding loop for the model tests."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from seq2seq.config import (
    AttentionConfig,
    AttentionSlots,
    ModelConfig,
    RNNConfig,
    TransformerConfig,
)
from seq2seq.models import Seq2Seq, build_model
from seq2seq.vocab import BOS_ID, PAD_ID

SRC_VOCAB, TGT_VOCAB = 23, 19
# (type, heads) of every attention score, plain (None) and multi-head.
VARIANTS = [
    (kind, heads) for heads in (None, 2) for kind in ("dot", "scaled_dot", "general", "additive")
]


def variant_id(variant: tuple[str, int | None]) -> str:
    kind, heads = variant
    return kind if heads is None else f"{kind}-h{heads}"


def tiny_config(
    arch: str,
    *,
    attention: tuple[str, int | None] | None = None,
    slots: dict[str, tuple[str, int | None]] | None = None,
    rnn: dict[str, Any] | None = None,
    transformer: dict[str, Any] | None = None,
    attention_dropout: float = 0.1,
    **model: Any,
) -> ModelConfig:
    """A small ModelConfig; ``attention`` = (type, heads) sets every slot, ``slots`` single ones.

    Dropout is on by default so that tests in eval mode also check it is switched off there.
    """
    specs = dict.fromkeys(("cross", "encoder_self", "decoder_self"), attention or ("scaled_dot", 2))
    specs.update(slots or {})
    model.setdefault("embed_dim", 8)
    model.setdefault("encoder_layers", 2)
    model.setdefault("decoder_layers", 2)
    model.setdefault("dropout", 0.1)
    model.setdefault("max_positions", 32)
    return ModelConfig(
        arch=arch,
        attention=AttentionSlots(
            **{
                slot: AttentionConfig(type=kind, heads=heads, dropout=attention_dropout)
                for slot, (kind, heads) in specs.items()
            }
        ),
        rnn=RNNConfig(**{"hidden_dim": 12, **(rnn or {})}),
        transformer=TransformerConfig(**{"ffn_dim": 16, **(transformer or {})}),
        **model,
    )


def random_batch(
    batch: int = 3, src_len: int = 7, tgt_len: int = 6, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """src [B, S] and tgt_in [B, T] (BOS first) with different lengths, right-padded."""
    gen = torch.Generator().manual_seed(seed)
    src = torch.randint(4, SRC_VOCAB, (batch, src_len), generator=gen)
    tgt = torch.randint(4, TGT_VOCAB, (batch, tgt_len), generator=gen)
    tgt[:, 0] = BOS_ID
    for row in range(1, batch):  # row 0 full length, later rows shorter
        src[row, src_len - 2 * row :] = PAD_ID
        tgt[row, tgt_len - row :] = PAD_ID
    return src, tgt


def make_model(
    cfg: ModelConfig,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    src_vocab: int = SRC_VOCAB,
    tgt_vocab: int = TGT_VOCAB,
) -> Seq2Seq:
    """The model of ``cfg`` in eval mode (dropout off), seeded, in ``dtype``."""
    torch.manual_seed(seed)
    return build_model(cfg, src_vocab, tgt_vocab).to(dtype).eval()


def step_through(
    model: Seq2Seq, src: Tensor, tgt_in: Tensor, need_weights: bool = True
) -> tuple[Tensor, list[dict[str, Tensor]]]:
    """Decode tgt_in token by token through the caches: logits [B, T, V], per-step weights."""
    state = model.init_state(model.encode(src))
    logits, weights = [], []
    for t in range(tgt_in.shape[1]):
        step_logits, state, step_weights = model.step(tgt_in[:, t], state, need_weights)
        logits.append(step_logits)
        weights.append(step_weights)
    return torch.stack(logits, dim=1), weights
