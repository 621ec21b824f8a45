"""Attentional LSTM decoder, Bahdanau or Luong style, and its stepping state.

* Bahdanau et al., 2015 (arXiv:1409.0473): attend with the previous top-layer state, feed
  [y_{t-1}; c_t] into the recurrent step, read out o_t = tanh(W [h_t; c_t; y_{t-1}]) (the paper
  reads out from s_{t-1}; the new state carries more of the current step).
* Luong et al., 2015 (arXiv:1508.04025): run the recurrent step first, attend with the new
  state, attentional state h~_t = tanh(W [c_t; h_t]); with input feeding h~_{t-1} is
  concatenated to the step's input.

Speed: the key-side attention work is done once (``Attention.memory``); Luong without input
feeding runs ``nn.LSTM`` over the whole target and attends in one batched call; otherwise the
per-step loop holds only the LSTM cells (``torch.lstm_cell`` on the ``nn.LSTM`` weights) and
one attention call, and the read-out and vocabulary projection run once on the stacked outputs.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from seq2seq.attention import AttentionMemory, AttentionSpec, build_attention
from seq2seq.runtime.dropout import Dropout, dropout

from .base import Encoded, init_linears, init_lstm, run_lstm
from .embeddings import OutputProjection, TokenEmbedding

__all__ = ["RNNDecoder", "RNNState"]


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
        attention: AttentionSpec,
        tie_output: bool,
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.hidden_dim, self.num_layers, self.style = hidden_dim, num_layers, style
        self.input_feeding = style == "luong" and input_feeding
        self.dropout = Dropout(dropout)
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
        init_lstm(self.lstm)
        self.readout = nn.Linear(readout_in, self.readout_dim)
        self.bridge_h = self.bridge_c = None
        if bridge == "linear":
            self.bridge_h = nn.Linear(hidden_dim, num_layers * hidden_dim)
            self.bridge_c = nn.Linear(hidden_dim, num_layers * hidden_dim)
        self.output = OutputProjection(
            dim=self.readout_dim,
            vocab_size=embedding.vocab_size,
            tie_to=embedding if tie_output else None,
        )
        init_linears(self)

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
        self, x: Tensor, hidden: list[Tensor], cell: list[Tensor]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """One step of the layer stack: x [B, I], hidden/cell L x [B, H] -> new hidden, cell.

        ``torch.lstm_cell`` on the ``nn.LSTM`` parameters: the same weights serve the
        whole-sequence path, and under autocast its matrix products run in low precision.
        """
        new_hidden, new_cell = [], []
        for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(self.lstm.all_weights):
            if layer:  # the same inter-layer dropout as nn.LSTM(dropout=p)
                x = dropout(x, self.lstm.dropout, self.training)
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
        self,
        emb: Tensor,
        hidden: list[Tensor],
        cell: list[Tensor],
        state: RNNState,
        need_weights: bool,
    ) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor | None]:
        """emb [B, E] -> new hidden, cell, context [B, C], attention [B, H, 1, S] or None."""
        ctx, attn = self._attend(hidden[-1].unsqueeze(1), state, need_weights)
        ctx = ctx.squeeze(1)
        hidden, cell = self._cells(torch.cat([emb, ctx], dim=-1), hidden, cell)
        return hidden, cell, ctx, attn

    def _luong_step(
        self,
        emb: Tensor,
        hidden: list[Tensor],
        cell: list[Tensor],
        feed: Tensor | None,
        state: RNNState,
        need_weights: bool,
    ) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor | None]:
        """emb [B, E] -> new hidden, cell, attentional state h~ [B, R], attention or None."""
        x = emb if feed is None else torch.cat([emb, feed], dim=-1)
        hidden, cell = self._cells(x, hidden, cell)
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
            top, _ = run_lstm(self.lstm, emb, (hidden0, cell0))  # [B, T, H]
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
        feed, outs, extra, attns = state.feed, [], [], []
        for t in range(emb.shape[1]):
            if self.style == "bahdanau":
                hidden, cell, ctx, attn = self._bahdanau_step(
                    emb[:, t], hidden, cell, state, need_weights
                )
                outs.append(hidden[-1])
                extra.append(ctx)
            else:
                hidden, cell, feed, attn = self._luong_step(
                    emb[:, t], hidden, cell, feed, state, need_weights
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
        feed = state.feed
        if self.style == "bahdanau":
            hidden, cell, ctx, attn = self._bahdanau_step(emb, hidden, cell, state, need_weights)
            out = torch.tanh(self.readout(torch.cat([hidden[-1], ctx, emb], dim=-1)))
        else:
            hidden, cell, out, attn = self._luong_step(emb, hidden, cell, feed, state, need_weights)
            feed = out if self.input_feeding else None
        logits = self.output(self.dropout(out))  # [B, V]
        new_state = dataclasses.replace(
            state, hidden=torch.stack(hidden, dim=1), cell=torch.stack(cell, dim=1), feed=feed
        )
        return logits, new_state, None if attn is None else attn.squeeze(2).unsqueeze(1)
