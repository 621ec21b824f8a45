"""LSTM encoder-decoder with attention (Bahdanau et al., 2015, arXiv:1409.0473; Luong et al.,
2015, arXiv:1508.04025).

Encoder: a bidirectional multi-layer LSTM (hidden_dim // 2 per direction) over packed sequences.
Decoder: :class:`~seq2seq.models.rnn_decoder.RNNDecoder`, a multi-layer LSTM with one attention
module (slot ``cross``), Bahdanau or Luong style.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.attention import AttentionSpec
from seq2seq.runtime.dropout import Dropout

from .base import (
    Encoded,
    Seq2Seq,
    beam_rows,
    check_tokens,
    init_lstm,
    run_lstm,
)
from .embeddings import TokenEmbedding, build_embeddings
from .rnn_decoder import RNNDecoder, RNNState

__all__ = ["BRIDGES", "RNN_STYLES", "RNNEncoder", "RNNSeq2Seq", "build_rnn"]

RNN_STYLES = ("bahdanau", "luong")
BRIDGES = ("linear", "none")


class RNNEncoder(nn.Module):
    """Bidirectional LSTM: src [B, S] -> states [B, S, hidden_dim], final (h, c) [B, 2, H]."""

    def __init__(
        self, *, embedding: TokenEmbedding, hidden_dim: int, num_layers: int, dropout: float
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.dropout = Dropout(dropout)
        self.lstm = nn.LSTM(
            embedding.dim,
            hidden_dim // 2,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        init_lstm(self.lstm)

    def forward(self, src: Tensor, src_mask: Tensor) -> tuple[Tensor, Tensor]:
        """src [B, S], src_mask [B, S] -> states [B, S, H] (zeros at pads), final [B, 2, H]."""
        emb = self.dropout(self.embedding(src))  # [B, S, E]
        # An empty source still runs one (padding) step so that packing accepts it; its
        # position stays masked for attention.
        lengths = src_mask.sum(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)
        out, (h, c) = run_lstm(self.lstm, packed)  # h, c: [2 * layers, B, H / 2]
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        final = torch.stack([torch.cat([h[-2], h[-1]], -1), torch.cat([c[-2], c[-1]], -1)], 1)
        return states, final


class RNNSeq2Seq(Seq2Seq):
    """Bidirectional-LSTM encoder, attentional LSTM decoder. Attention slot: ``cross``."""

    slots = ("cross",)

    def __init__(
        self,
        *,
        src_vocab_size: int,
        tgt_vocab_size: int,
        embed_dim: int,
        hidden_dim: int,
        encoder_layers: int,
        decoder_layers: int,
        dropout: float,
        style: str,
        input_feeding: bool,
        bridge: str,
        attention: AttentionSpec,
        share_embeddings: bool,
        tie_output: bool,
        max_positions: int,
    ) -> None:
        super().__init__()
        if style not in RNN_STYLES or bridge not in BRIDGES:
            raise ValueError(
                f"RNN style must be one of {RNN_STYLES} and bridge one of {BRIDGES}, "
                f"got style={style!r}, bridge={bridge!r}"
            )
        if hidden_dim < 2 or hidden_dim % 2 or min(encoder_layers, decoder_layers) < 1:
            raise ValueError(
                f"RNN needs an even hidden_dim >= 2 (split over two encoder directions) and "
                f">= 1 layer per side, got hidden_dim={hidden_dim}, "
                f"encoder_layers={encoder_layers}, decoder_layers={decoder_layers}"
            )
        self.max_positions = max_positions
        src_embed, tgt_embed = build_embeddings(
            src_vocab_size=src_vocab_size,
            tgt_vocab_size=tgt_vocab_size,
            dim=embed_dim,
            share=share_embeddings,
            scale=False,
        )
        self.encoder = RNNEncoder(
            embedding=src_embed, hidden_dim=hidden_dim, num_layers=encoder_layers, dropout=dropout
        )
        self.decoder = RNNDecoder(
            embedding=tgt_embed,
            hidden_dim=hidden_dim,
            num_layers=decoder_layers,
            dropout=dropout,
            style=style,
            input_feeding=input_feeding,
            bridge=bridge,
            attention=attention,
            tie_output=tie_output,
        )

    @property
    def src_vocab_size(self) -> int:
        return self.encoder.embedding.vocab_size

    @property
    def tgt_vocab_size(self) -> int:
        return self.decoder.embedding.vocab_size

    def encode(self, src: Tensor, need_weights: bool = False) -> Encoded:
        """src [B, S] -> Encoded(states [B, S, H], src_mask [B, S], {}, final [B, 2, H])."""
        src, src_mask = self.open_source(src)
        states, final = self.encoder(src, src_mask)
        return Encoded(states=states, src_mask=src_mask, weights={}, final=final)

    def forward(
        self, src: Tensor, tgt_in: Tensor, need_weights: bool = False
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """src [B, S], tgt_in [B, T] -> logits [B, T, V], {"cross": [B, 1, H, T, S]} or {}."""
        self.check_teacher_forcing(src, tgt_in)
        state = self.init_state(self.encode(src))
        logits, attn = self.decoder(tgt_in, state, need_weights)
        return logits, {} if attn is None else {"cross": attn}

    def init_state(self, encoded: Encoded, beam: int = 1) -> RNNState:
        state = self.decoder.init_state(encoded)
        if beam == 1:
            return state
        return state.select(beam_rows(encoded.states.shape[0], beam, encoded.states.device))

    def step(
        self, prev_tokens: Tensor, state: RNNState, need_weights: bool = False
    ) -> tuple[Tensor, RNNState, dict[str, Tensor]]:
        """prev_tokens [B] -> logits [B, V], new state, {"cross": [B, 1, H, S]} or {}."""
        check_tokens("prev_tokens", prev_tokens, 1)
        logits, state, attn = self.decoder.step(prev_tokens, state, need_weights)
        return logits, state, {} if attn is None else {"cross": attn}


def build_rnn(cfg: Any, src_vocab_size: int, tgt_vocab_size: int) -> RNNSeq2Seq:
    """RNNSeq2Seq from a ModelConfig (``arch: rnn``); reads ``cfg.rnn`` and the ``cross`` slot."""
    return RNNSeq2Seq(
        src_vocab_size=src_vocab_size,
        tgt_vocab_size=tgt_vocab_size,
        embed_dim=cfg.embed_dim,
        hidden_dim=cfg.rnn.hidden_dim,
        encoder_layers=cfg.encoder_layers,
        decoder_layers=cfg.decoder_layers,
        dropout=cfg.dropout,
        style=cfg.rnn.style,
        input_feeding=cfg.rnn.input_feeding,
        bridge=cfg.rnn.bridge,
        attention=cfg.attention.cross,
        share_embeddings=cfg.share_embeddings,
        tie_output=cfg.tie_output,
        max_positions=cfg.max_positions,
    )
