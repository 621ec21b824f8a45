"""LSTM encoder-decoder with attention.

Encoder: a bidirectional multi-layer LSTM (hidden_dim // 2 per direction) over packed sequences.
Decoder: a multi-layer LSTM with one attention module (slot ``cross``) in one of two styles:

* Bahdanau et al., 2015 (arXiv:1409.0473): attend with the previous top-layer state, feed
  [y_{t-1}; c_t] into the recurrent step, read out o_t = tanh(W [h_t; c_t; y_{t-1}]).
* Luong et al., 2015 (arXiv:1508.04025): run the recurrent step first, attend with the new
  state, attentional state h~_t = tanh(W [c_t; h_t]); with input feeding h~_{t-1} is
  concatenated to the step's input.

Speed: the key-side attention work is done once (``Attention.memory``); Luong without input
feeding runs ``nn.LSTM`` over the whole target and attends in one batched call; otherwise the
per-step loop holds only the LSTM cells and one attention call, and the read-out and vocabulary
projection run once on the stacked outputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.attention import AttentionMemory, build_attention

from .base import (
    Encoded,
    Seq2Seq,
    attention_spec,
    check_tokens,
    init_linear,
    padding_mask,
)
from .embeddings import OutputProjection, TokenEmbedding, build_embeddings

__all__ = ["RNN_STYLES", "RNNDecoder", "RNNEncoder", "RNNSeq2Seq", "RNNState", "build_rnn"]

RNN_STYLES = ("bahdanau", "luong")
BRIDGES = ("linear", "none")


@dataclasses.dataclass(frozen=True, eq=False)
class RNNState:
    """Decoder state between steps; batch on dim 0 of every tensor.

    hidden, cell: [B, L, H] per-layer LSTM state.
    feed: [B, R] previous attentional vector (Luong input feeding), else None.
    memory: prepared cross-attention keys/values of the source.
    src_mask: [B, 1, S] bool, True = real source token.
    """

    hidden: Tensor
    cell: Tensor
    feed: Tensor | None
    memory: AttentionMemory
    src_mask: Tensor

    def select(self, index: Tensor) -> RNNState:
        """Batch entries ``index`` [N] of this state (beam reordering, batch pruning)."""
        return RNNState(
            hidden=self.hidden.index_select(0, index),
            cell=self.cell.index_select(0, index),
            feed=None if self.feed is None else self.feed.index_select(0, index),
            memory=self.memory.select(index),
            src_mask=self.src_mask.index_select(0, index),
        )


def _init_lstm(lstm: nn.LSTM) -> None:
    """Forget-gate bias 1 (Jozefowicz et al., 2015); PyTorch's uniform init otherwise."""
    hidden = lstm.hidden_size
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if name.startswith("bias_ih"):
                param[hidden : 2 * hidden].fill_(1.0)  # gate order: input, forget, cell, output
            elif name.startswith("bias_hh"):
                param[hidden : 2 * hidden].zero_()


class RNNEncoder(nn.Module):
    """Bidirectional LSTM: src [B, S] -> states [B, S, hidden_dim], final (h, c) [B, 2, H]."""

    def __init__(
        self, *, embedding: TokenEmbedding, hidden_dim: int, num_layers: int, dropout: float
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(
            embedding.dim,
            hidden_dim // 2,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        _init_lstm(self.lstm)

    def forward(self, src: Tensor, src_mask: Tensor) -> tuple[Tensor, Tensor]:
        """src [B, S], src_mask [B, S] -> states [B, S, H] (zeros at pads), final [B, 2, H]."""
        emb = self.dropout(self.embedding(src))  # [B, S, E]
        # An empty source still runs one (padding) step so that packing accepts it; its
        # position stays masked for attention.
        lengths = src_mask.sum(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)
        out, (h, c) = self.lstm(packed)  # h, c: [2 * layers, B, H / 2]
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        final = torch.stack([torch.cat([h[-2], h[-1]], -1), torch.cat([c[-2], c[-1]], -1)], 1)
        return states, final


class RNNDecoder(nn.Module):
    """LSTM decoder with cross attention, Bahdanau or Luong style (see the module docstring).

    The read-out vector has size embed_dim when the output is tied to the target embedding,
    else hidden_dim.
    """

    def __init__(
        self,
        *,
        embedding: TokenEmbedding,
        hidden_dim: int,
        num_layers: int,
        dropout: float,
        style: str,
        input_feeding: bool,
        bridge: str,
        attention: Mapping[str, Any],
        tie_output: bool,
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.hidden_dim, self.num_layers, self.style = hidden_dim, num_layers, style
        self.input_feeding = style == "luong" and input_feeding
        self.dropout = nn.Dropout(dropout)
        self.attention = build_attention(attention, hidden_dim, hidden_dim, hidden_dim)
        ctx_dim, emb_dim = self.attention.output_dim, embedding.dim
        self.readout_dim = emb_dim if tie_output else hidden_dim
        if style == "bahdanau":
            input_dim, readout_in = emb_dim + ctx_dim, hidden_dim + ctx_dim + emb_dim
        else:
            input_dim = emb_dim + (self.readout_dim if self.input_feeding else 0)
            readout_in = ctx_dim + hidden_dim
        self.lstm = nn.LSTM(
            input_dim,
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        _init_lstm(self.lstm)
        self.readout = nn.Linear(readout_in, self.readout_dim)
        init_linear(self.readout)
        self.bridge_h = self.bridge_c = None
        if bridge == "linear":
            self.bridge_h = nn.Linear(hidden_dim, num_layers * hidden_dim)
            self.bridge_c = nn.Linear(hidden_dim, num_layers * hidden_dim)
            init_linear(self.bridge_h)
            init_linear(self.bridge_c)
        self.output = OutputProjection(
            dim=self.readout_dim,
            vocab_size=embedding.vocab_size,
            tie_to=embedding if tie_output else None,
        )

    def init_state(self, encoded: Encoded) -> RNNState:
        """Bridge the encoder's final state and prepare the cross-attention memory."""
        states = encoded.states  # [B, S, H]
        batch, shape = states.shape[0], (states.shape[0], self.num_layers, self.hidden_dim)
        if self.bridge_h is not None and self.bridge_c is not None:
            if encoded.final is None:
                raise ValueError("RNN init_state: encoded.final is None; use RNNSeq2Seq.encode")
            hidden = torch.tanh(self.bridge_h(encoded.final[:, 0])).view(shape)
            cell = torch.tanh(self.bridge_c(encoded.final[:, 1])).view(shape)
        else:
            hidden = cell = states.new_zeros(shape)
        return RNNState(
            hidden=hidden,
            cell=cell,
            feed=states.new_zeros(batch, self.readout_dim) if self.input_feeding else None,
            memory=self.attention.memory(states, states),
            src_mask=encoded.src_mask.unsqueeze(1),
        )

    def _cells(
        self, x: Tensor, hidden: list[Tensor], cell: list[Tensor], weights: list[list[Tensor]]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """One step of the layer stack: x [B, I], hidden/cell L x [B, H] -> new hidden, cell."""
        new_hidden, new_cell = [], []
        for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
            if layer:  # the same inter-layer dropout as nn.LSTM(dropout=p)
                x = F.dropout(x, self.lstm.dropout, self.training)
            h, c = torch.lstm_cell(x, (hidden[layer], cell[layer]), w_ih, w_hh, b_ih, b_hh)
            new_hidden.append(h)
            new_cell.append(c)
            x = h
        return new_hidden, new_cell

    def _attend(
        self, query: Tensor, state: RNNState, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        """query [B, Tq, H] -> context [B, Tq, C], weights [B, 1, Tq, S] or None."""
        return self.attention(
            query, memory=state.memory, mask=state.src_mask, need_weights=need_weights
        )

    def _bahdanau_step(
        self, emb: Tensor, hidden: list[Tensor], cell: list[Tensor], state: RNNState,
        weights: list[list[Tensor]], need_weights: bool,
    ) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor | None]:
        """emb [B, E] -> new hidden, cell, context [B, C], attention [B, H, 1, S] or None."""
        ctx, attn = self._attend(hidden[-1].unsqueeze(1), state, need_weights)
        ctx = ctx.squeeze(1)
        hidden, cell = self._cells(torch.cat([emb, ctx], dim=-1), hidden, cell, weights)
        return hidden, cell, ctx, attn

    def _luong_step(
        self, emb: Tensor, hidden: list[Tensor], cell: list[Tensor], feed: Tensor | None,
        state: RNNState, weights: list[list[Tensor]], need_weights: bool,
    ) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor | None]:
        """emb [B, E] -> new hidden, cell, attentional state h~ [B, R], attention or None."""
        x = emb if feed is None else torch.cat([emb, feed], dim=-1)
        hidden, cell = self._cells(x, hidden, cell, weights)
        ctx, attn = self._attend(hidden[-1].unsqueeze(1), state, need_weights)
        out = torch.tanh(self.readout(torch.cat([ctx.squeeze(1), hidden[-1]], dim=-1)))
        return hidden, cell, out, attn

    def forward(
        self, tgt_in: Tensor, state: RNNState, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: tgt_in [B, T] -> logits [B, T, V], weights [B, 1, H, T, S] or None."""
        emb = self.dropout(self.embedding(tgt_in))  # [B, T, E]
        if self.style == "luong" and not self.input_feeding:
            hidden0 = state.hidden.transpose(0, 1).contiguous()  # [L, B, H]
            cell0 = state.cell.transpose(0, 1).contiguous()
            top, _ = self.lstm(emb, (hidden0, cell0))  # [B, T, H]
            ctx, attn = self._attend(top, state, need_weights)  # [B, T, C]
            out = torch.tanh(self.readout(torch.cat([ctx, top], dim=-1)))  # [B, T, R]
            attn_all = attn
        else:
            out, attn_all = self._unroll(emb, state, need_weights)
        logits = self.output(self.dropout(out))  # [B, T, V]
        return logits, None if attn_all is None else attn_all.unsqueeze(1)

    def _unroll(
        self, emb: Tensor, state: RNNState, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        """The per-step loop: emb [B, T, E] -> read-out [B, T, R], weights [B, H, T, S] or None."""
        hidden, cell = list(state.hidden.unbind(1)), list(state.cell.unbind(1))
        weights, feed = self.lstm.all_weights, state.feed
        outs, extra, attns = [], [], []
        for t in range(emb.shape[1]):
            if self.style == "bahdanau":
                hidden, cell, ctx, attn = self._bahdanau_step(
                    emb[:, t], hidden, cell, state, weights, need_weights
                )
                outs.append(hidden[-1])
                extra.append(ctx)
            else:
                hidden, cell, feed, attn = self._luong_step(
                    emb[:, t], hidden, cell, feed, state, weights, need_weights
                )
                outs.append(feed)
            attns.append(attn)
        out = torch.stack(outs, dim=1)
        if self.style == "bahdanau":  # read-out for all steps at once
            out = torch.cat([out, torch.stack(extra, dim=1), emb], dim=-1)
            out = torch.tanh(self.readout(out))  # [B, T, R]
        return out, torch.cat(attns, dim=2) if need_weights else None

    def step(
        self, prev_tokens: Tensor, state: RNNState, need_weights: bool = False
    ) -> tuple[Tensor, RNNState, Tensor | None]:
        """prev_tokens [B] -> logits [B, V], new state, weights [B, 1, H, S] or None."""
        emb = self.dropout(self.embedding(prev_tokens))  # [B, E]
        hidden, cell = list(state.hidden.unbind(1)), list(state.cell.unbind(1))
        weights, feed = self.lstm.all_weights, state.feed
        if self.style == "bahdanau":
            hidden, cell, ctx, attn = self._bahdanau_step(
                emb, hidden, cell, state, weights, need_weights
            )
            out = torch.tanh(self.readout(torch.cat([hidden[-1], ctx, emb], dim=-1)))
        else:
            hidden, cell, out, attn = self._luong_step(
                emb, hidden, cell, feed, state, weights, need_weights
            )
            feed = out if self.input_feeding else None
        logits = self.output(self.dropout(out))  # [B, V]
        new_state = dataclasses.replace(
            state, hidden=torch.stack(hidden, dim=1), cell=torch.stack(cell, dim=1), feed=feed
        )
        return logits, new_state, None if attn is None else attn.squeeze(2).unsqueeze(1)


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
        attention: Mapping[str, Any],
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

    def encode(self, src: Tensor, need_weights: bool = False) -> Encoded:
        """src [B, S] -> Encoded(states [B, S, H], src_mask [B, S], {}, final [B, 2, H])."""
        vocab = self.encoder.embedding.vocab_size
        check_tokens("src", src, 2, max_len=self.max_positions, vocab_size=vocab)
        src_mask = padding_mask(src)
        states, final = self.encoder(src, src_mask)
        return Encoded(states=states, src_mask=src_mask, weights={}, final=final)

    def forward(
        self, src: Tensor, tgt_in: Tensor, need_weights: bool = False
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """src [B, S], tgt_in [B, T] -> logits [B, T, V], {"cross": [B, 1, H, T, S]} or {}."""
        check_tokens("src", src, 2)
        vocab = self.decoder.embedding.vocab_size
        check_tokens("tgt_in", tgt_in, 2, max_len=self.max_positions, vocab_size=vocab)
        if tgt_in.shape[0] != src.shape[0]:
            raise ValueError(
                f"src and tgt_in batch sizes differ: {list(src.shape)} vs {list(tgt_in.shape)}"
            )
        state = self.init_state(self.encode(src))
        logits, attn = self.decoder(tgt_in, state, need_weights)
        return logits, {} if attn is None else {"cross": attn}

    def init_state(self, encoded: Encoded) -> RNNState:
        return self.decoder.init_state(encoded)

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
        attention=attention_spec(cfg.attention.cross),
        share_embeddings=cfg.share_embeddings,
        tie_output=cfg.tie_output,
        max_positions=cfg.max_positions,
    )
