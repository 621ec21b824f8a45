"""Token embeddings, position encodings and the (optionally tied) output projection."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.vocab import PAD_ID

__all__ = [
    "POSITION_TYPES",
    "LearnedPositions",
    "OutputProjection",
    "SinusoidalPositions",
    "TokenEmbedding",
    "build_embeddings",
    "build_positions",
]


class TokenEmbedding(nn.Module):
    """Token ids [B, T] -> vectors [B, T, dim]; PAD_ID maps to zeros.

    Weights ~ N(0, dim^-0.5). With ``scale`` the output is multiplied by sqrt(dim), giving unit
    variance (Vaswani et al., 2017, arXiv:1706.03762, section 3.4); the small unscaled weights
    suit a tied output projection.
    """

    def __init__(self, *, vocab_size: int, dim: int, scale: bool) -> None:
        super().__init__()
        if vocab_size <= PAD_ID or dim < 1:
            raise ValueError(
                f"TokenEmbedding needs vocab_size > {PAD_ID} and dim >= 1, "
                f"got vocab_size={vocab_size}, dim={dim}"
            )
        self.vocab_size, self.dim = vocab_size, dim
        self.weight = nn.Parameter(torch.empty(vocab_size, dim))
        self.scale = math.sqrt(dim) if scale else 1.0
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, mean=0.0, std=self.dim**-0.5)
        with torch.no_grad():
            self.weight[PAD_ID].zero_()

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens [*] -> [*, dim]."""
        out = F.embedding(tokens, self.weight, padding_idx=PAD_ID)
        return out * self.scale if self.scale != 1.0 else out

    def extra_repr(self) -> str:
        return f"vocab_size={self.vocab_size}, dim={self.dim}, scale={self.scale:.4g}"


def _check_range(kind: str, offset: int, length: int, max_positions: int) -> None:
    if offset < 0 or offset + length > max_positions:
        raise ValueError(
            f"{kind} positions {offset}..{offset + length - 1} requested, but the model has "
            f"max_positions={max_positions}; truncate the input or raise model.max_positions"
        )


class SinusoidalPositions(nn.Module):
    """Fixed sin/cos position encodings (arXiv:1706.03762, section 3.5).

    PE[p, 2i] = sin(p / 10000^(2i/dim)), PE[p, 2i+1] = cos(p / 10000^(2i/dim)).
    """

    def __init__(self, *, max_positions: int, dim: int) -> None:
        super().__init__()
        if dim % 2 or max_positions < 1:
            raise ValueError(
                f"sinusoidal positions need an even dim and max_positions >= 1, "
                f"got dim={dim}, max_positions={max_positions}"
            )
        self.max_positions = max_positions
        position = torch.arange(max_positions, dtype=torch.float64)[:, None]  # [P, 1]
        inv_freq = torch.pow(10000.0, -torch.arange(0, dim, 2, dtype=torch.float64) / dim)
        angle = position * inv_freq  # [P, dim / 2]
        table = torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1)  # [P, dim]
        self.register_buffer("table", table.float(), persistent=False)

    def forward(self, length: int, offset: int = 0) -> Tensor:
        """Encodings of positions offset .. offset + length - 1: [length, dim]."""
        _check_range("sinusoidal", offset, length, self.max_positions)
        return self.table[offset : offset + length]


class LearnedPositions(nn.Module):
    """One trained vector per position (Gehring et al., 2017, arXiv:1705.03122)."""

    def __init__(self, *, max_positions: int, dim: int) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.weight = nn.Parameter(torch.empty(max_positions, dim))
        nn.init.normal_(self.weight, mean=0.0, std=dim**-0.5)

    def forward(self, length: int, offset: int = 0) -> Tensor:
        """Vectors of positions offset .. offset + length - 1: [length, dim]."""
        _check_range("learned", offset, length, self.max_positions)
        return self.weight[offset : offset + length]


POSITION_TYPES = {"sinusoidal": SinusoidalPositions, "learned": LearnedPositions}


def build_positions(kind: str, *, max_positions: int, dim: int) -> nn.Module:
    """Position module by name: 'sinusoidal' or 'learned'."""
    if kind not in POSITION_TYPES:
        raise ValueError(
            f"unknown position encoding {kind!r}; available: {', '.join(POSITION_TYPES)}"
        )
    return POSITION_TYPES[kind](max_positions=max_positions, dim=dim)


class OutputProjection(nn.Module):
    """Hidden vectors [*, dim] -> vocabulary logits [*, vocab_size].

    With ``tie_to`` the weight is the target embedding matrix (Press & Wolf, 2017,
    arXiv:1608.05859); the bias is always a separate parameter, initialised to zero.
    """

    def __init__(self, *, dim: int, vocab_size: int, tie_to: TokenEmbedding | None = None) -> None:
        super().__init__()
        if tie_to is not None:
            if tie_to.weight.shape != (vocab_size, dim):
                raise ValueError(
                    f"tied output projection needs an embedding of shape [{vocab_size}, {dim}], "
                    f"got {list(tie_to.weight.shape)}"
                )
            self.weight = tie_to.weight
        else:
            self.weight = nn.Parameter(torch.empty(vocab_size, dim))
            nn.init.xavier_uniform_(self.weight)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        self.tied = tie_to is not None

    def forward(self, hidden: Tensor) -> Tensor:
        return F.linear(hidden, self.weight, self.bias)

    def linear_weights(self) -> tuple[nn.Parameter, nn.Parameter]:
        """(weight, bias): this module is ``F.linear`` with them (``runtime.packed``)."""
        return self.weight, self.bias

    def extra_repr(self) -> str:
        return f"dim={self.weight.shape[1]}, vocab_size={self.weight.shape[0]}, tied={self.tied}"


def build_embeddings(
    *, src_vocab_size: int, tgt_vocab_size: int, dim: int, share: bool, scale: bool
) -> tuple[TokenEmbedding, TokenEmbedding]:
    """Source and target embeddings; one shared module when ``share`` (needs one vocabulary)."""
    if share and src_vocab_size != tgt_vocab_size:
        raise ValueError(
            f"model.share_embeddings needs one vocabulary for both sides, got "
            f"src_vocab_size={src_vocab_size} and tgt_vocab_size={tgt_vocab_size}; use a joint "
            f"tokenizer (data.tokenizer.joint: true) or set model.share_embeddings: false"
        )
    src = TokenEmbedding(vocab_size=src_vocab_size, dim=dim, scale=scale)
    tgt = src if share else TokenEmbedding(vocab_size=tgt_vocab_size, dim=dim, scale=scale)
    return src, tgt
