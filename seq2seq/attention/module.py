"""The attention module: one interface for every score, plain or multi-head.

``context = softmax(score(q, k) + mask) @ v``. Without heads the score runs on the raw query,
keys and values (the classic LSTM-decoder attention); with ``num_heads`` the module projects
queries, keys and values into h heads, applies the same score in every head and projects the
concatenated heads back (Vaswani et al., 2017, arXiv:1706.03762). Parameters of the score are
shared by all heads; the Q/K/V projections make the heads differ.

Scores that are a scaled dot product of the query with the prepared keys (dot, scaled_dot,
general) run through ``F.scaled_dot_product_attention`` when weights are not requested; the
choice is made once in ``__init__`` from the score's ``fused_scale``. Causal self-attention is
asked for with ``causal=True`` rather than a mask tensor, so that the fused path can hand it to
SDPA as ``is_causal`` (see :mod:`seq2seq.attention.kernel`).
"""

from __future__ import annotations

from torch import Tensor, nn

from seq2seq.runtime.checks import checks_enabled

from .kernel import (
    expand_mask,
    explicit_attention,
    fused_attention,
    prefers_fused,
    with_causal,
)
from .memory import AttentionMemory

__all__ = ["Attention"]


def _check_shape(name: str, tensor: Tensor, expected: tuple[int | None, ...], labels: str) -> None:
    """Raise ValueError unless ``tensor`` has the dims of ``expected`` (None matches any size);
    skipped inside ``seq2seq.runtime.checks.checked(False)`` (a search's later steps)."""
    if not checks_enabled():
        return
    ok = tensor.dim() == len(expected) and all(
        e is None or e == s for e, s in zip(expected, tensor.shape, strict=True)
    )
    if not ok:
        pairs = zip(expected, labels.split(), strict=True)
        shown = ", ".join(label if e is None else str(e) for e, label in pairs)
        raise ValueError(f"{name} has shape {list(tensor.shape)}, expected [{shown}]")


class Attention(nn.Module):
    """Attention with a pluggable score; stateless between calls.

    Args:
        score: a score module (``prepare_keys``, ``forward``, ``fused_scale``, ``query_dim``,
            ``key_dim``, ``prepared_dim``); with heads it must be built for the head size.
        query_dim, key_dim, value_dim: feature sizes of query, keys and values.
        num_heads: None for plain attention; h for the multi-head wrapper (D = query_dim).
        dropout: dropout on the attention weights in training mode.

    Built by :func:`~seq2seq.attention.build_attention`, whose spec check holds the facts
    about these arguments (heads divide ``query_dim``, dropout in [0, 1)).
    """

    def __init__(
        self,
        *,
        score: nn.Module,
        query_dim: int,
        key_dim: int,
        value_dim: int,
        num_heads: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.query_dim, self.key_dim, self.value_dim = query_dim, key_dim, value_dim
        self.dropout = dropout
        self.score = score
        if num_heads is None:
            self.num_heads, self.head_value_dim = 1, value_dim
            self.output_dim = value_dim
            score_dims = (query_dim, key_dim)
            self.q_proj = self.k_proj = self.v_proj = self.out_proj = None
        else:
            head_dim = query_dim // num_heads
            self.num_heads, self.head_value_dim = num_heads, head_dim
            self.output_dim = query_dim
            score_dims = (head_dim, head_dim)
            self.q_proj = nn.Linear(query_dim, query_dim)
            self.k_proj = nn.Linear(key_dim, query_dim)
            self.v_proj = nn.Linear(value_dim, query_dim)
            self.out_proj = nn.Linear(query_dim, query_dim)
        if (score.query_dim, score.key_dim) != score_dims:
            raise ValueError(
                f"score built for (query_dim, key_dim)=({score.query_dim}, {score.key_dim}), "
                f"expected {score_dims}"
            )
        self.fused_scale: float | None = score.fused_scale  # None: no fused kernel for it

    @property
    def _multihead(self) -> bool:
        return self.q_proj is not None

    def _split(self, x: Tensor) -> Tensor:
        """[B, T, D] -> [B, H, T, D / H]."""
        batch, time, _ = x.shape
        return x.view(batch, time, self.num_heads, -1).transpose(1, 2)

    def memory(self, keys: Tensor, values: Tensor) -> AttentionMemory:
        """Key-side work that does not depend on the query.

        keys [B, Tk, key_dim], values [B, Tk, value_dim] -> AttentionMemory with
        keys [B, Tk, Dp] / values [B, Tk, value_dim] (plain) or
        keys [B, H, Tk, Dp] / values [B, H, Tk, query_dim / H] (multi-head).
        """
        _check_shape("keys", keys, (None, None, self.key_dim), "B Tk key_dim")
        b, tk = keys.shape[:2]
        _check_shape("values", values, (b, tk, self.value_dim), "B Tk value_dim")
        if self._multihead:
            keys, values = self._split(self.k_proj(keys)), self._split(self.v_proj(values))
        return AttentionMemory(self.score.prepare_keys(keys), values)

    def _check_memory(self, memory: AttentionMemory, batch: int) -> tuple[Tensor, Tensor]:
        """Validate a memory against the query batch and return it as [B, H, Tk, *]."""
        keys, values = memory
        lead = (batch, self.num_heads) if self._multihead else (batch,)
        labels = "B H Tk" if self._multihead else "B Tk"
        _check_shape("memory.keys", keys, (*lead, None, self.score.prepared_dim), labels + " Dp")
        tk = keys.shape[-2]
        expected = (*lead, tk, self.head_value_dim)
        _check_shape("memory.values", values, expected, labels + " Dv")
        if not self._multihead:
            keys, values = keys.unsqueeze(1), values.unsqueeze(1)
        return keys, values

    def forward(
        self,
        query: Tensor,
        keys: Tensor | None = None,
        values: Tensor | None = None,
        mask: Tensor | None = None,
        need_weights: bool = False,
        memory: AttentionMemory | None = None,
        causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` [B, Tq, query_dim] to keys/values or a prepared ``memory``.

        mask: bool, True = may attend, broadcastable to [B, Tq, Tk].
        causal: query t attends keys <= t only (self-attention over a whole sequence, so
        Tq == Tk); on its own it materialises no mask on the fused path.
        Returns context [B, Tq, output_dim] and weights [B, H, Tq, Tk] (H = 1 when plain;
        float32 or float64) or None when ``need_weights`` is False.
        """
        given = (keys is not None, values is not None, memory is not None)
        if given not in ((True, True, False), (False, False, True)):
            raise ValueError(
                "Attention.forward takes either keys and values, or memory; got "
                f"keys={given[0]}, values={given[1]}, memory={given[2]} (True = given)"
            )
        _check_shape("query", query, (None, None, self.query_dim), "B Tq query_dim")
        batch, tq = query.shape[:2]
        if memory is None:
            _check_shape("keys", keys, (batch, None, self.key_dim), "B Tk key_dim")
            memory = self.memory(keys, values)
        mem_keys, mem_values = self._check_memory(memory, batch)  # [B, H, Tk, *]
        tk = mem_keys.shape[-2]
        mask = expand_mask(mask, batch, tq, tk)  # [b, 1, tq, tk]
        if causal and mask is not None:  # one mask, so that rows left without keys are zeroed
            mask, causal = with_causal(mask, tq, tk, query.device), False
        # [B, H, Tq, D / H] multi-head, [B, 1, Tq, Dq] plain
        query = self._split(self.q_proj(query)) if self._multihead else query.unsqueeze(1)
        context, weights = self.attend(query, mem_keys, mem_values, mask, need_weights, causal)
        context = context.transpose(1, 2).reshape(batch, tq, -1)  # [B, Tq, H * Dv]
        if self._multihead:
            context = self.out_proj(context)
            if mask is not None:  # keep "no key to attend -> zero context" after the bias
                context = context.masked_fill(~mask.any(dim=-1).transpose(1, 2), 0.0)
        return context, weights

    def attend(
        self,
        query: Tensor,
        keys: Tensor,
        values: Tensor,
        mask: Tensor | None = None,
        need_weights: bool = False,
        causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """The attention core on head tensors, without projections or shape checks.

        query [B, H, Tq, Dq'], prepared keys [B, H, Tk, Dp], values [B, H, Tk, Dv],
        mask [b, 1, tq, tk] (see ``kernel.expand_mask``) or None, ``causal`` (Tq == Tk).
        Returns context [B, H, Tq, Dv] and weights [B, H, Tq, Tk] or None. The fused kernel
        runs when the score allows it, weights are not needed and ``kernel.prefers_fused``.
        """
        dropout = self.dropout if self.training else 0.0
        if self.fused_scale is not None and not need_weights and prefers_fused(query):
            context = fused_attention(
                query, keys, values, mask, dropout, scale=self.fused_scale, causal=causal
            )
            return context, None
        scores = self.score(query, keys)  # [B, H, Tq, Tk]
        context, weights = explicit_attention(scores, values, mask, dropout, causal=causal)
        return context, (weights if need_weights else None)

    def extra_repr(self) -> str:
        heads = f"heads={self.num_heads}, " if self._multihead else ""
        return (
            f"query_dim={self.query_dim}, key_dim={self.key_dim}, value_dim={self.value_dim}, "
            f"{heads}dropout={self.dropout}, fused={self.fused_scale is not None}"
        )
