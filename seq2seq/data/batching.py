"""Token-budget batches of length-sorted sentence pairs, deterministic by seed and epoch.

Tensor layout (the model contract): the source is x + EOS (no BOS), as in fairseq and JoeyNMT:
the end-of-sentence token gives attention a place to rest and the encoder a marker of the end;
the target input is BOS + y and the target output y + EOS; all right-padded with PAD_ID.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor

from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID

if TYPE_CHECKING:
    from seq2seq.data.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

Pair = tuple[list[int], list[int]]


class Batch(NamedTuple):
    src: Tensor  # [B, S] source ids, PAD_ID right padding
    tgt_in: Tensor  # [B, T] BOS + y, PAD_ID right padding
    tgt_out: Tensor  # [B, T] y + EOS, PAD_ID right padding
    src_tokens: int  # real (non-pad) source tokens, EOS included
    tgt_tokens: int  # real target tokens = non-pad positions of tgt_out (the loss tokens)
    size: int  # B, number of sentence pairs
    padding: float  # padded fraction of src + tgt_out: 1 - real / (B*S + B*T)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        move = {"device": device, "non_blocking": non_blocking}
        return self._replace(
            src=self.src.to(**move), tgt_in=self.tgt_in.to(**move), tgt_out=self.tgt_out.to(**move)
        )

    def pin_memory(self) -> Batch:
        return self._replace(
            src=self.src.pin_memory(),
            tgt_in=self.tgt_in.pin_memory(),
            tgt_out=self.tgt_out.pin_memory(),
        )


def pad_ids(seqs: Sequence[Sequence[int]], width: int | None = None) -> Tensor:
    """Id lists -> [B, width] LongTensor, each right-padded with PAD_ID; ``width`` defaults to
    the longest list."""
    if width is None:
        width = max((len(s) for s in seqs), default=0)
    return torch.tensor([[*s, *([PAD_ID] * (width - len(s)))] for s in seqs], dtype=torch.long)


def collate_src(seqs: Sequence[Sequence[int]]) -> Tensor:
    """Source id lists (no specials) -> [B, S] LongTensor: each x + EOS, right-padded with
    PAD_ID (S = 1 + the longest x).

    The one place that lays out a source batch: use it at inference too, so that translation
    sees sources exactly as training did.
    """
    return pad_ids([[*s, EOS_ID] for s in seqs])


def collate(pairs: Sequence[Pair]) -> Batch:
    """(src ids, tgt ids) pairs without specials -> padded Batch."""
    if not pairs:
        raise ValueError("collate: got an empty list of pairs")
    src = collate_src([s for s, _ in pairs])
    width = 1 + max(len(t) for _, t in pairs)
    tgt_in = pad_ids([[BOS_ID, *t] for _, t in pairs], width)
    tgt_out = pad_ids([[*t, EOS_ID] for _, t in pairs], width)
    src_tokens = sum(len(s) + 1 for s, _ in pairs)
    tgt_tokens = sum(len(t) + 1 for _, t in pairs)
    padded = src.numel() + tgt_out.numel()
    return Batch(
        src=src,
        tgt_in=tgt_in,
        tgt_out=tgt_out,
        src_tokens=src_tokens,
        tgt_tokens=tgt_tokens,
        size=len(pairs),
        padding=1.0 - (src_tokens + tgt_tokens) / padded,
    )


def pair_lengths(pairs: Sequence[Pair]) -> tuple[list[int], list[int]]:
    """Tensor lengths of each pair for TokenBatchSampler: (len(src) + 1, len(tgt) + 1)."""
    return [len(s) + 1 for s, _ in pairs], [len(t) + 1 for _, t in pairs]


def encode_corpus(
    tokenizer: Tokenizer, src_lines: Sequence[str], tgt_lines: Sequence[str], max_len: int
) -> tuple[list[Pair], int]:
    """Encode a parallel corpus; drop pairs with a side longer than `max_len` subwords (specials
    not counted) or an empty source. Returns (pairs, number dropped)."""
    if len(src_lines) != len(tgt_lines):
        raise ValueError(f"encode_corpus: {len(src_lines)} source vs {len(tgt_lines)} target lines")
    src_ids = tokenizer.encode_src_batch(src_lines)
    tgt_ids = tokenizer.encode_tgt_batch(tgt_lines)
    pairs: list[Pair] = []
    too_long = empty = 0
    for s, t in zip(src_ids, tgt_ids, strict=True):
        if not s:
            empty += 1
        elif len(s) > max_len or len(t) > max_len:
            too_long += 1
        else:
            pairs.append((s, t))
    dropped = too_long + empty
    if dropped:
        logger.info(
            "kept %d of %d sentence pairs: dropped %d longer than max_len=%d, %d with an empty"
            " source",
            len(pairs),
            len(src_lines),
            too_long,
            max_len,
            empty,
        )
    return pairs, dropped


class TokenBatchSampler:
    """Length-bucketed, token-budgeted batches of example indices.

    Each epoch: the examples are shuffled by (seed, epoch), sorted stably by (tgt, src) length,
    so that equal lengths stay in random order, and cut greedily into batches whose padded size
    n * max(tgt len) and n * max(src len) stays within the budget; the batch order is then
    shuffled. A single example over the budget forms a batch of its own.

    Distributed data parallel: every rank builds the same global batches with the global budget
    `batch_tokens * world_size`, and each global batch is cut into `world_size` contiguous shards
    of equal size (+-1 example, similar lengths since the batch is sorted); rank r takes shard r.
    So 2 ranks with budget B see, step by step, exactly the batches of 1 process with 2B, every
    rank has the same number of batches, and a rank's shard may exceed B by at most one
    example's length. Under DDP each global batch holds at least `world_size` examples.

    `state_dict()` records (epoch, position = batches already yielded this epoch); iterating
    after `load_state_dict` yields exactly the remaining batches of that epoch. Running an
    epoch to its end moves on to the next epoch.
    """

    def __init__(
        self,
        *,
        src_lengths: Sequence[int],
        tgt_lengths: Sequence[int],
        batch_tokens: int,
        seed: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        """src_lengths/tgt_lengths: tensor lengths per example (see `pair_lengths`)."""
        if len(src_lengths) != len(tgt_lengths):
            raise ValueError(
                f"src_lengths has {len(src_lengths)} entries but tgt_lengths {len(tgt_lengths)}"
            )
        if batch_tokens < 1:
            raise ValueError(f"batch_tokens: expected >= 1, got {batch_tokens}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} / world_size {world_size}: expected 0 <= rank < size")
        if len(src_lengths) < world_size:
            raise ValueError(f"{len(src_lengths)} examples cannot fill {world_size} ranks")
        self.src_lengths = list(src_lengths)
        self.tgt_lengths = list(tgt_lengths)
        self.batch_tokens = batch_tokens
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.position = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def global_batches(self, epoch: int) -> list[list[int]]:
        """The batches of all ranks together for `epoch` (budget batch_tokens * world_size)."""
        rng = random.Random(f"TokenBatchSampler:{self.seed}:{epoch}")
        order = list(range(len(self.src_lengths)))
        if self.shuffle:
            rng.shuffle(order)
        order.sort(key=lambda i: (self.tgt_lengths[i], self.src_lengths[i]))
        batches = self._cut(order, self.batch_tokens * self.world_size)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def _cut(self, order: list[int], budget: int) -> list[list[int]]:
        batches: list[list[int]] = []
        batch: list[int] = []
        max_src = max_tgt = 0
        for i in order:
            src, tgt = max(max_src, self.src_lengths[i]), max(max_tgt, self.tgt_lengths[i])
            n = len(batch) + 1
            if batch and len(batch) >= self.world_size and n * max(src, tgt) > budget:
                batches.append(batch)
                batch, src, tgt = [], self.src_lengths[i], self.tgt_lengths[i]
            batch.append(i)
            max_src, max_tgt = src, tgt
        if len(batch) < self.world_size and batches:
            batches[-1].extend(batch)  # too few left to give every rank one example
        elif batch:
            batches.append(batch)
        return batches

    def _shard(self, batch: list[int]) -> list[int]:
        size, extra = divmod(len(batch), self.world_size)
        start = self.rank * size + min(self.rank, extra)
        return batch[start : start + size + (self.rank < extra)]

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """This rank's batches for `epoch` (default: the current epoch), in order."""
        epoch = self.epoch if epoch is None else epoch
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, [self._shard(b) for b in self.global_batches(epoch)])
        return self._cache[1]

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` from its beginning; the current epoch keeps its position (resume)."""
        if epoch != self.epoch:
            self.epoch, self.position = epoch, 0

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.batches()
        while self.position < len(batches):
            self.position += 1
            yield batches[self.position - 1]
        self.epoch, self.position = self.epoch + 1, 0

    def __len__(self) -> int:
        """Batches per epoch on this rank (the same on every rank and in every epoch)."""
        return len(self.batches())

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch, position = int(state["epoch"]), int(state["position"])
        if not 0 <= position <= len(self.batches(epoch)):
            raise ValueError(
                f"sampler state: position {position} outside epoch {epoch}'s"
                f" {len(self.batches(epoch))} batches (was the data or batch_tokens changed?)"
            )
        self.epoch, self.position = epoch, position

    def padding_fraction(self, epoch: int | None = None) -> float:
        """Padded fraction of the src + tgt tensors over this rank's batches of an epoch."""
        real = padded = 0
        for batch in self.batches(epoch):
            src = [self.src_lengths[i] for i in batch]
            tgt = [self.tgt_lengths[i] for i in batch]
            real += sum(src) + sum(tgt)
            padded += len(batch) * (max(1, *src) + max(tgt))
        return 1.0 - real / padded if padded else 0.0
