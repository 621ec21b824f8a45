"""Validation during training: loss, perplexity, greedy BLEU and attention diagnostics.

Diagnostics of the cross-attention, from teacher-forced passes over the reference pairs
(averaged over layers, heads and real target positions):

- ``entropy``: mean entropy (nats) of the attention rows. Near 0 means every target token looks
  at a single source token; ``log(S)`` means uniform attention.
- ``eos_weight``: mean weight on the source's end-of-sentence token ``</s>``; attention that has
  collapsed onto one column usually lands there.
- ``aer``: alignment error rate of the word alignments read off the last layer's attention
  (as ``seq2seq evaluate --gold-alignments`` does), when gold alignments for the validation
  set exist beside it (``valid.align``, see :mod:`seq2seq.training.corpus`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from seq2seq.data import collate
from seq2seq.evaluation.metrics import corpus_bleu
from seq2seq.evaluation.word_alignment import (
    alignment_error_rate,
    attention_alignment,
    pieces_to_words,
    select_attention,
)
from seq2seq.inference.decode import DecodeOptions, decode_ids
from seq2seq.inference.translate import Translator
from seq2seq.runtime.precision import Precision
from seq2seq.training.loss import label_smoothed_cross_entropy
from seq2seq.training.state import preserved_rng
from seq2seq.vocab import PAD_ID

logger = logging.getLogger(__name__)


@dataclass
class ValidSet:
    """The validation corpus, encoded once (sides truncated to what the model accepts)."""

    src_ids: list[list[int]]
    tgt_ids: list[list[int]]
    src_text: list[str]
    refs: list[str]
    gold: list[Any] | None  # gold word alignments per pair, or None
    batches: list[list[int]]  # index lists of length-sorted teacher-forcing batches


def make_batches(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Length-sorted index batches whose padded size stays within ``max_tokens``."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) + 1) * lengths[i] > max_tokens:
            batches.append(batch)
            batch = []
        batch.append(i)
    if batch:
        batches.append(batch)
    return batches


def cross_attention_stats(
    weights: Tensor, src: Tensor, tgt_out: Tensor
) -> tuple[float, float, int]:
    """Sums of row entropies and weights on the source ``</s>`` over the real rows of a batch.

    Args:
        weights: cross-attention ``[B, L, H, T, S]``.
        src: ``[B, S]`` source ids; tgt_out: ``[B, T]`` target ids (PAD_ID = padding).

    Returns:
        ``(entropy_sum, end_weight_sum, rows)`` over all layers, heads and real target rows.
    """
    w = weights.float()
    entropy = -torch.xlogy(w, w).sum(-1)  # [B, L, H, T]
    last = (src != PAD_ID).sum(-1).clamp(min=1) - 1  # [B] the position of the source EOS
    index = last.view(-1, 1, 1, 1, 1).expand(*w.shape[:-1], 1)  # [B, L, H, T, 1]
    end_weight = w.gather(-1, index).squeeze(-1)  # [B, L, H, T]
    rows = (tgt_out != PAD_ID)[:, None, None, :].expand_as(entropy)
    return float(entropy[rows].sum()), float(end_weight[rows].sum()), int(rows.sum())


@torch.no_grad()
def teacher_forced_pass(
    model: nn.Module, valid: ValidSet, precision: Precision, device: torch.device
) -> dict[str, Any]:
    """Validation loss (NLL per target token), perplexity and cross-attention statistics.

    Also returns ``"cross"``: per validation pair the ``[L, H, T, S]`` cross-attention of its
    reference (only when gold alignments exist, for the AER).
    """
    loss_sum, tokens, entropy_sum, end_sum, rows = 0.0, 0, 0.0, 0.0, 0
    cross: dict[int, Tensor] = {}
    for indices in valid.batches:
        batch = collate([(valid.src_ids[i], valid.tgt_ids[i]) for i in indices]).to(device)
        with precision.autocast():
            logits, weights = model(batch.src, batch.tgt_in, need_weights=True)
        loss, n = label_smoothed_cross_entropy(logits, batch.tgt_out, smoothing=0.0)
        loss_sum, tokens = loss_sum + float(loss), tokens + n
        if "cross" in weights:
            e, w, r = cross_attention_stats(weights["cross"], batch.src, batch.tgt_out)
            entropy_sum, end_sum, rows = entropy_sum + e, end_sum + w, rows + r
            if valid.gold is not None:
                for row, i in enumerate(indices):
                    s, t = len(valid.src_ids[i]), len(valid.tgt_ids[i]) + 1
                    cross[i] = weights["cross"][row, :, :, :t, :s].float().cpu()
    loss = loss_sum / max(tokens, 1)
    result: dict[str, Any] = {"loss": loss, "ppl": math.exp(min(loss, 100.0))}
    if rows:
        result.update(entropy=entropy_sum / rows, eos_weight=end_sum / rows)
    result["cross"] = cross
    return result


def attention_aer(valid: ValidSet, tokenizer: Any, cross: dict[int, Tensor]) -> float:
    """Corpus AER of the word alignments read off the cross-attention (last layer, mean of the
    heads: the default of ``seq2seq evaluate --gold-alignments``) against the gold links."""
    predicted, sure, possible = [], [], []
    for i, weights in sorted(cross.items()):
        src_words = pieces_to_words(tokenizer.src_pieces(valid.src_ids[i]))
        tgt_words = pieces_to_words(tokenizer.tgt_pieces(valid.tgt_ids[i]))
        predicted.append(attention_alignment(select_attention(weights), src_words, tgt_words))
        sure.append(valid.gold[i][0])
        possible.append(valid.gold[i][1])
    return alignment_error_rate(predicted, sure, possible)


def validate(
    model: nn.Module,
    valid: ValidSet,
    tokenizer: Any,
    *,
    cfg: Any,
    precision: Precision,
    device: torch.device,
) -> dict[str, Any]:
    """Loss, perplexity, greedy BLEU on the first ``train.valid_max_sentences`` sentences, and
    the attention diagnostics. Leaves the random number generators as it found them."""
    was_training = model.training
    model.eval()
    try:
        with preserved_rng():
            forced = teacher_forced_pass(model, valid, precision, device)
            n = min(cfg.train.valid_max_sentences or len(valid.src_ids), len(valid.src_ids))
            greedy = DecodeOptions(
                beam=1,
                max_len_ratio=cfg.decode.max_len_ratio,
                max_len_offset=cfg.decode.max_len_offset,
            )
            found = decode_ids(
                model,
                valid.src_ids[:n],
                greedy,
                batch_size=cfg.decode.batch_size,
                autocast=precision.autocast,
            )
    finally:
        model.train(was_training)
    hypotheses = [tokenizer.decode_tgt(hyps[0].tokens) for hyps in found]
    result = {k: v for k, v in forced.items() if k != "cross"}
    result["bleu"] = corpus_bleu(hypotheses, valid.refs[:n])
    result["bleu_sentences"] = n
    if valid.gold is not None and forced["cross"]:
        result["aer"] = attention_aer(valid, tokenizer, forced["cross"])
    return result


def save_plots(
    model: nn.Module,
    tokenizer: Any,
    valid: ValidSet,
    *,
    run_dir: Any,
    step: int,
    records: list[dict[str, Any]],
    num_alignment_plots: int,
) -> None:
    """``curves.png`` and ``alignments/step_*.png`` for the first validation sentences."""
    from seq2seq.viz import plot_training_curves, save_validation_plots

    plot_training_curves(records, run_dir / "curves.png")
    if num_alignment_plots <= 0:
        return
    translator = Translator(model=model, tokenizer=tokenizer, beam=1, precision="fp32")
    with preserved_rng():
        examples = [
            translator.attention(src) for src in valid.src_text[:num_alignment_plots] if src.strip()
        ]
    (run_dir / "alignments").mkdir(exist_ok=True)
    save_validation_plots(examples, run_dir / "alignments", step)
