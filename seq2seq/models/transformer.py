"""Transformer encoder-decoder (Vaswani et al., 2017, arXiv:1706.03762).

Pre-norm residual blocks by default (x + f(LN(x)), final LayerNorm on both stacks; Xiong et
al., 2020, arXiv:2002.04745), post-norm (LN(x + f(x))) as in the original paper on request.
Slots ``encoder_self``, ``decoder_self`` (causal) and ``cross`` each take any attention type,
plain or multi-head. The teacher-forced pass has no loop over time; ``step`` attends over
per-layer self-attention caches and cross-attention memories prepared once in ``init_state``.

Masks are passed only where they change something, so that on CUDA the flash SDPA kernels stay
eligible: decoder self-attention is ``causal=True`` (SDPA's ``is_causal``, no mask tensor), a
decoding step attends its whole cache without a mask, and the encoder self-attention and the
cross-attention get the source padding mask only when the batch has padding.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import Tensor, nn

from seq2seq.attention import AttentionMemory, AttentionSpec, build_attention
from seq2seq.runtime.checks import checks_enabled
from seq2seq.runtime.dropout import Dropout

from .base import (
    Encoded,
    Seq2Seq,
    beam_rows,
    check_tokens,
    group_entries,
    init_linears,
    stack_step_weights,
    stack_weights,
)
from .embeddings import OutputProjection, TokenEmbedding, build_embeddings, build_positions

__all__ = ["TransformerSeq2Seq", "TransformerState", "build_transformer"]

NORMS = ("pre", "post")
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


@dataclasses.dataclass(frozen=True, eq=False)
class TransformerState:
    """Decoder state between steps; batch on dim 0 of every tensor.

    self_caches: per decoder layer, the decoder self-attention memory of the rows so far
        (time on dim -2), None before the first step.
    cross_memories: per decoder layer, the prepared cross-attention keys/values of the source,
        once per sentence: the ``group`` rows of a sentence attend to the same memory.
    src_mask: [N, 1, S] bool per sentence, True = real source token; None when the source has
        no padding.
    position: index of the next target position (0 for the BOS step).
    group: rows per sentence (the beam); row r belongs to sentence r // group.
    """

    self_caches: tuple[AttentionMemory | None, ...]
    cross_memories: tuple[AttentionMemory, ...]
    src_mask: Tensor | None
    position: int
    group: int = 1

    def select(self, index: Tensor) -> TransformerState:
        """Rows ``index`` [M * group] of this state, in whole groups (beam reordering, batch
        pruning); the cross memories follow the groups' sentences."""
        sentences = group_entries(index, self.group)
        return TransformerState(
            self_caches=tuple(None if c is None else c.select(index) for c in self.self_caches),
            cross_memories=tuple(m.select(sentences) for m in self.cross_memories),
            src_mask=None if self.src_mask is None else self.src_mask.index_select(0, sentences),
            position=self.position,
            group=self.group,
        )


class Residual(nn.Module):
    """A residual connection around a sublayer with its LayerNorm, pre- or post-norm."""

    def __init__(self, *, dim: int, dropout: float, pre_norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.dropout = Dropout(dropout)
        self.pre_norm = pre_norm

    def enter(self, x: Tensor) -> Tensor:
        """The sublayer's input: LN(x) for pre-norm, x for post-norm."""
        return self.norm(x) if self.pre_norm else x

    def leave(self, x: Tensor, sub: Tensor) -> Tensor:
        """Combine x with the sublayer's output ``sub``."""
        x = x + self.dropout(sub)
        return x if self.pre_norm else self.norm(x)


class FeedForward(nn.Module):
    """Position-wise W2 act(W1 x + b1) + b2: [*, dim] -> [*, dim]."""

    def __init__(self, *, dim: int, ffn_dim: int, dropout: float, activation: str) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, ffn_dim),
            ACTIVATIONS[activation](),
            Dropout(dropout),
            nn.Linear(ffn_dim, dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class EncoderLayer(nn.Module):
    """Self-attention + feed-forward, each in a residual block."""

    def __init__(
        self,
        *,
        dim: int,
        ffn_dim: int,
        dropout: float,
        activation: str,
        pre_norm: bool,
        attention: AttentionSpec,
    ) -> None:
        super().__init__()
        self.self_attn = build_attention(attention, dim, dim, dim)
        self.ffn = FeedForward(dim=dim, ffn_dim=ffn_dim, dropout=dropout, activation=activation)
        self.res_attn = Residual(dim=dim, dropout=dropout, pre_norm=pre_norm)
        self.res_ffn = Residual(dim=dim, dropout=dropout, pre_norm=pre_norm)

    def forward(
        self, x: Tensor, mask: Tensor | None, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        """x [B, S, D], mask [B, 1, S] or None -> [B, S, D], weights [B, H, S, S] or None."""
        h = self.res_attn.enter(x)
        sub, weights = self.self_attn(h, h, h, mask=mask, need_weights=need_weights)
        x = self.res_attn.leave(x, sub)
        x = self.res_ffn.leave(x, self.ffn(self.res_ffn.enter(x)))
        return x, weights


class DecoderLayer(nn.Module):
    """Causal self-attention, cross attention, feed-forward, each in a residual block."""

    def __init__(
        self,
        *,
        dim: int,
        ffn_dim: int,
        dropout: float,
        activation: str,
        pre_norm: bool,
        self_attention: AttentionSpec,
        cross_attention: AttentionSpec,
    ) -> None:
        super().__init__()
        self.self_attn = build_attention(self_attention, dim, dim, dim)
        self.cross_attn = build_attention(cross_attention, dim, dim, dim)
        self.ffn = FeedForward(dim=dim, ffn_dim=ffn_dim, dropout=dropout, activation=activation)
        self.res_self = Residual(dim=dim, dropout=dropout, pre_norm=pre_norm)
        self.res_cross = Residual(dim=dim, dropout=dropout, pre_norm=pre_norm)
        self.res_ffn = Residual(dim=dim, dropout=dropout, pre_norm=pre_norm)

    def _cross_and_ffn(
        self, x: Tensor, memory: AttentionMemory, src_mask: Tensor | None, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        sub, weights = self.cross_attn(
            self.res_cross.enter(x), memory=memory, mask=src_mask, need_weights=need_weights
        )
        x = self.res_cross.leave(x, sub)
        x = self.res_ffn.leave(x, self.ffn(self.res_ffn.enter(x)))
        return x, weights

    def _grouped_cross_and_ffn(
        self,
        x: Tensor,
        memory: AttentionMemory,
        src_mask: Tensor | None,
        need_weights: bool,
        group: int,
    ) -> tuple[Tensor, Tensor | None]:
        """One step's cross-attention and feed-forward with ``group`` rows per sentence:
        x [N * group, 1, D] with memory and src_mask per sentence [N, ...]. The group's rows
        are the sentence's queries ([N, group, D]): cross-attention treats each query alone,
        so this equals repeating the memory per row, without the repeated keys and values.
        Returns x [N * group, 1, D], weights [N * group, H, 1, S] or None."""
        rows, _, dim = x.shape
        x, weights = self._cross_and_ffn(x.view(-1, group, dim), memory, src_mask, need_weights)
        if weights is not None:  # [N, H, group, S] -> [N * group, H, 1, S]
            weights = weights.transpose(1, 2).reshape(rows, weights.shape[1], 1, -1)
        return x.view(rows, 1, dim), weights

    def forward(
        self, x: Tensor, enc: Tensor, src_mask: Tensor | None, need_weights: bool
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Teacher forcing: x [B, T, D], enc [B, S, D], src_mask [B, 1, S] or None ->
        x [B, T, D], self weights [B, H, T, T], cross weights [B, H, T, S] (or None).

        The self-attention is causal. Target padding needs no key mask: pads only follow real
        tokens, and causality already keeps every real position from attending to later ones.
        """
        h = self.res_self.enter(x)
        sub, w_self = self.self_attn(h, h, h, causal=True, need_weights=need_weights)
        x = self.res_self.leave(x, sub)
        memory = self.cross_attn.memory(enc, enc)
        x, w_cross = self._cross_and_ffn(x, memory, src_mask, need_weights)
        return x, w_self, w_cross

    def step(
        self,
        x: Tensor,
        cache: AttentionMemory | None,
        memory: AttentionMemory,
        src_mask: Tensor | None,
        need_weights: bool,
        group: int = 1,
    ) -> tuple[Tensor, AttentionMemory, Tensor | None, Tensor | None]:
        """One position: x [B, 1, D] -> x [B, 1, D], extended cache, self weights
        [B, H, 1, t + 1], cross weights [B, H, 1, S] (or None); ``group`` rows of x per entry
        of memory and src_mask."""
        h = self.res_self.enter(x)
        new = self.self_attn.memory(h, h)
        cache = new if cache is None else cache.extend(new)
        # The one query is the newest position: every cached key is in its past, no mask.
        sub, w_self = self.self_attn(h, memory=cache, need_weights=need_weights)
        x = self.res_self.leave(x, sub)
        x, w_cross = self._grouped_cross_and_ffn(x, memory, src_mask, need_weights, group)
        return x, cache, w_self, w_cross


class TransformerSeq2Seq(Seq2Seq):
    """Transformer encoder-decoder. Slots: ``encoder_self``, ``decoder_self``, ``cross``."""

    slots = ("encoder_self", "decoder_self", "cross")

    def __init__(
        self,
        *,
        src_vocab_size: int,
        tgt_vocab_size: int,
        embed_dim: int,
        encoder_layers: int,
        decoder_layers: int,
        ffn_dim: int,
        dropout: float,
        norm: str,
        positions: str,
        activation: str,
        max_positions: int,
        share_embeddings: bool,
        tie_output: bool,
        encoder_self_attention: AttentionSpec,
        decoder_self_attention: AttentionSpec,
        cross_attention: AttentionSpec,
    ) -> None:
        super().__init__()
        if norm not in NORMS or activation not in ACTIVATIONS:
            raise ValueError(
                f"transformer norm must be one of {NORMS} and activation one of "
                f"{tuple(ACTIVATIONS)}, got norm={norm!r}, activation={activation!r}"
            )
        if min(encoder_layers, decoder_layers) < 1:
            raise ValueError(
                f"transformer needs >= 1 layer per side, got encoder_layers={encoder_layers}, "
                f"decoder_layers={decoder_layers}"
            )
        self.max_positions, self.pre_norm = max_positions, norm == "pre"
        self.src_embed, self.tgt_embed = build_embeddings(
            src_vocab_size=src_vocab_size,
            tgt_vocab_size=tgt_vocab_size,
            dim=embed_dim,
            share=share_embeddings,
            scale=True,
        )
        self.positions = build_positions(positions, max_positions=max_positions, dim=embed_dim)
        self.dropout = Dropout(dropout)
        layer_args: dict[str, Any] = {
            "dim": embed_dim,
            "ffn_dim": ffn_dim,
            "dropout": dropout,
            "activation": activation,
            "pre_norm": self.pre_norm,
        }
        self.encoder_layers = nn.ModuleList(
            EncoderLayer(**layer_args, attention=encoder_self_attention)
            for _ in range(encoder_layers)
        )
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(
                **layer_args,
                self_attention=decoder_self_attention,
                cross_attention=cross_attention,
            )
            for _ in range(decoder_layers)
        )
        # Pre-norm leaves the residual stream unnormalised: one LayerNorm closes each stack.
        self.encoder_norm = nn.LayerNorm(embed_dim) if self.pre_norm else nn.Identity()
        self.decoder_norm = nn.LayerNorm(embed_dim) if self.pre_norm else nn.Identity()
        self.output = OutputProjection(
            dim=embed_dim,
            vocab_size=tgt_vocab_size,
            tie_to=self.tgt_embed if tie_output else None,
        )
        init_linears(self)

    def _embed(self, embedding: TokenEmbedding, tokens: Tensor, offset: int = 0) -> Tensor:
        """tokens [B, T] -> scaled embeddings + positions offset.. [B, T, D] (with dropout)."""
        x = embedding(tokens) + self.positions(tokens.shape[1], offset)
        return self.dropout(x)

    @property
    def src_vocab_size(self) -> int:
        return self.src_embed.vocab_size

    @property
    def tgt_vocab_size(self) -> int:
        return self.tgt_embed.vocab_size

    def encode(self, src: Tensor, need_weights: bool = False) -> Encoded:
        """src [B, S] -> Encoded(states [B, S, D], src_mask [B, S], weights)."""
        src, src_mask = self.open_source(src)
        # One host sync per batch, not per layer: without padding no mask is needed at all.
        padded = not bool(src_mask.all())
        mask = src_mask.unsqueeze(1) if padded else None  # [B, 1, S]: pads are never attended
        x, weights = self._embed(self.src_embed, src), []
        for layer in self.encoder_layers:
            x, w = layer(x, mask, need_weights)
            weights.append(w)
        x = self.encoder_norm(x)
        return Encoded(
            states=x,
            src_mask=src_mask,
            weights={"encoder_self": stack_weights(weights)} if need_weights else {},
            src_padded=padded,
        )

    def forward(
        self, src: Tensor, tgt_in: Tensor, need_weights: bool = False
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """src [B, S], tgt_in [B, T] -> logits [B, T, V], {slot: [B, L, H, T, Tk]} or {}."""
        self.check_teacher_forcing(src, tgt_in)
        encoded = self.encode(src, need_weights)
        src_mask = _cross_mask(encoded)  # [B, 1, S] or None
        x, w_self, w_cross = self._embed(self.tgt_embed, tgt_in), [], []
        for layer in self.decoder_layers:
            x, ws, wc = layer(x, encoded.states, src_mask, need_weights)
            w_self.append(ws)
            w_cross.append(wc)
        logits = self.output(self.decoder_norm(x))  # [B, T, V]
        if not need_weights:
            return logits, {}
        weights = dict(encoded.weights)
        weights["decoder_self"] = stack_weights(w_self)
        weights["cross"] = stack_weights(w_cross)
        return logits, weights

    def init_state(self, encoded: Encoded, beam: int = 1) -> TransformerState:
        """Project the source keys/values of every decoder layer once per sentence."""
        if beam < 1:
            raise ValueError(f"beam: got {beam}, expected an integer >= 1")
        states = encoded.states
        return TransformerState(
            self_caches=(None,) * len(self.decoder_layers),
            cross_memories=tuple(
                layer.cross_attn.memory(states, states) for layer in self.decoder_layers
            ),
            src_mask=_cross_mask(encoded),
            position=0,
            group=beam,
        )

    def step(
        self, prev_tokens: Tensor, state: TransformerState, need_weights: bool = False
    ) -> tuple[Tensor, TransformerState, dict[str, Tensor]]:
        """prev_tokens [B] -> logits [B, V], new state, {"decoder_self": [B, L, H, t + 1],
        "cross": [B, L, H, S]} or {}. Raises ValueError past max_positions."""
        check_tokens("prev_tokens", prev_tokens, 1)
        group = state.group
        if checks_enabled():
            sentences = state.cross_memories[0].keys.shape[0]
            if prev_tokens.shape[0] != sentences * group:
                raise ValueError(
                    f"prev_tokens has {prev_tokens.shape[0]} rows, expected {sentences} "
                    f"sentences x {group} rows per sentence = {sentences * group}"
                )
        if state.position == 0 and group > 1 and _same_in_groups(prev_tokens, group):
            # A beam's rows all read BOS first: one row per sentence, then repeated.
            one = dataclasses.replace(state, group=1)
            logits, one, weights = self._step(prev_tokens[::group], one, need_weights)
            rows = beam_rows(logits.shape[0], group, logits.device)
            caches = tuple(cache.select(rows) for cache in one.self_caches)
            repeated = {slot: w.repeat_interleave(group, dim=0) for slot, w in weights.items()}
            new_state = dataclasses.replace(one, self_caches=caches, group=group)
            return logits.repeat_interleave(group, dim=0), new_state, repeated
        return self._step(prev_tokens, state, need_weights)

    def _step(
        self, prev_tokens: Tensor, state: TransformerState, need_weights: bool
    ) -> tuple[Tensor, TransformerState, dict[str, Tensor]]:
        """`step` on checked arguments, every row computed."""
        x = self._embed(self.tgt_embed, prev_tokens.unsqueeze(1), state.position)  # [B, 1, D]
        caches, w_self, w_cross = [], [], []
        for layer, cache, memory in zip(
            self.decoder_layers, state.self_caches, state.cross_memories, strict=True
        ):
            x, cache, ws, wc = layer.step(
                x, cache, memory, state.src_mask, need_weights, state.group
            )
            caches.append(cache)
            w_self.append(ws)
            w_cross.append(wc)
        logits = self.output(self.decoder_norm(x)).squeeze(1)  # [B, V]
        new_state = dataclasses.replace(
            state, self_caches=tuple(caches), position=state.position + 1
        )
        if not need_weights:
            return logits, new_state, {}
        weights = {"decoder_self": stack_step_weights(w_self), "cross": stack_step_weights(w_cross)}
        return logits, new_state, weights


def _same_in_groups(tokens: Tensor, group: int) -> bool:
    """Whether each block of ``group`` consecutive entries of ``tokens`` [B] holds one value."""
    return bool((tokens.view(-1, group) == tokens[::group, None]).all())


def _cross_mask(encoded: Encoded) -> Tensor | None:
    """The key mask of attention over the source, [B, 1, S]; None when nothing is padding."""
    return encoded.src_mask.unsqueeze(1) if encoded.src_padded else None


def build_transformer(cfg: Any, src_vocab_size: int, tgt_vocab_size: int) -> TransformerSeq2Seq:
    """TransformerSeq2Seq from a ModelConfig (``arch: transformer``)."""
    slots = cfg.attention
    return TransformerSeq2Seq(
        src_vocab_size=src_vocab_size,
        tgt_vocab_size=tgt_vocab_size,
        embed_dim=cfg.embed_dim,
        encoder_layers=cfg.encoder_layers,
        decoder_layers=cfg.decoder_layers,
        ffn_dim=cfg.transformer.ffn_dim,
        dropout=cfg.dropout,
        norm=cfg.transformer.norm,
        positions=cfg.transformer.positions,
        activation=cfg.transformer.activation,
        max_positions=cfg.max_positions,
        share_embeddings=cfg.share_embeddings,
        tie_output=cfg.tie_output,
        encoder_self_attention=slots.encoder_self,
        decoder_self_attention=slots.decoder_self,
        cross_attention=slots.cross,
    )
