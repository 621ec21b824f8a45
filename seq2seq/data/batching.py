"""Token-budget batches of length-sorted sentence pairs, deterministic by seed and epoch.

Tensor layout (the model contract): the source is x + EOS (no BOS), as in fairseq and JoeyNMT:
the end-of-sentence token gives attention a place to rest and the encoder a marker of the end;
the target input is BOS + y and the target output y + EOS; all right-padded with PAD_ID.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID


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


def collate(pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> Batch:
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


class TokenBatchSampler:
    """Length-bucketed, token-budgeted batches of example indices, built with numpy.

    Each epoch: the examples are permuted by a numpy generator seeded with (seed, epoch), sorted
    stably by (tgt, src) length, so that equal lengths stay in random order, and cut greedily
    into batches whose padded size n * max(tgt len) and n * max(src len) stays within the
    budget; the batch order is then permuted too. A single example over the budget forms a
    batch of its own. The sort and the cut work on the length arrays (a vectorised cut per
    batch), so ten million examples take seconds, and the batches are views into one index
    array rather than Python lists.

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
        src_lengths: Sequence[int] | np.ndarray,
        tgt_lengths: Sequence[int] | np.ndarray,
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
        self.src_lengths = np.asarray(src_lengths, dtype=np.int32)
        self.tgt_lengths = np.asarray(tgt_lengths, dtype=np.int32)
        # Precomputed once: the sort key (tgt, src) and the padded width of each example, in
        # the smallest type (uint16 keys are sorted by numpy's radix sort).
        key = self.tgt_lengths.astype(np.int64) * (int(self.src_lengths.max()) + 1)
        key += self.src_lengths
        self._key = key.astype(np.min_scalar_type(int(key.max())))
        del key
        self._key_count = np.bincount(self._key)
        present = np.flatnonzero(self._key_count)
        self._key_count = self._key_count[present]
        tgt_of_key, src_of_key = np.divmod(present, int(self.src_lengths.max()) + 1)
        self._key_width = np.maximum(tgt_of_key, src_of_key).astype(np.int32)
        self._index_type = np.int32 if len(self.src_lengths) < 2**31 else np.int64
        self.batch_tokens = batch_tokens
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.position = 0
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def global_batches(self, epoch: int) -> list[np.ndarray]:
        """The batches of all ranks together for `epoch` (budget batch_tokens * world_size)."""
        rng = np.random.default_rng([self.seed, epoch])
        n = len(self._key)
        order = np.arange(n, dtype=self._index_type)
        if self.shuffle:
            order = rng.permutation(order)
        order = order[np.argsort(self._key[order], kind="stable")]
        # The sorted keys are each key repeated by its count: widths without a random gather.
        widths = np.repeat(self._key_width, self._key_count)
        bounds = greedy_cut(widths, self.batch_tokens * self.world_size, self.world_size)
        del widths
        batches = np.split(order, bounds[1:-1])
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def _shard(self, batch: np.ndarray) -> np.ndarray:
        size, extra = divmod(len(batch), self.world_size)
        start = self.rank * size + min(self.rank, extra)
        return batch[start : start + size + (self.rank < extra)]

    def batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """This rank's batches for `epoch` (default: the current epoch), in order."""
        epoch = self.epoch if epoch is None else epoch
        if self._cache is None or self._cache[0] != epoch:
            self._cache = None  # free the previous epoch's index array first
            self._cache = (epoch, [self._shard(b) for b in self.global_batches(epoch)])
        return self._cache[1]

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` from its beginning; the current epoch keeps its position (resume)."""
        if epoch != self.epoch:
            self.epoch, self.position = epoch, 0

    def __iter__(self) -> Iterator[np.ndarray]:
        batches = self.batches()
        while self.position < len(batches):
            self.position += 1
            yield batches[self.position - 1]
        self.epoch, self.position = self.epoch + 1, 0

    def __len__(self) -> int:
        """Batches per epoch on this rank (the same on every rank and in every epoch)."""
        return len(self.batches())

    def state_dict(self) -> dict[str, int]:
        """The position, and the shape of the batches it counts (global budget, processes)."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "batch_tokens": self.batch_tokens,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continues at ``state``'s position. Mid-epoch, the position counts batches of the
        budget and number of processes that wrote it: another budget or number of processes
        would cut other batches, repeating or skipping data, and is refused (at an epoch's
        start any may follow)."""
        epoch, position = int(state["epoch"]), int(state["position"])
        shape = {"batch_tokens": self.batch_tokens, "world_size": self.world_size}
        saved = {key: state.get(key, value) for key, value in shape.items()}  # older: unknown
        if position > 0 and saved != shape:
            raise ValueError(
                f"the data position (epoch {epoch}, batch {position}) counts batches of"
                f" {saved['world_size']} process(es) with train.batch_tokens="
                f"{saved['batch_tokens']}, but this job has {self.world_size} with"
                f" {self.batch_tokens}: it would repeat or skip training data. Resume with"
                f" {saved['world_size']} process(es) and train.batch_tokens="
                f"{saved['batch_tokens']}, at least until the epoch ends"
            )
        if not 0 <= position <= len(self.batches(epoch)):
            raise ValueError(
                f"sampler state: position {position} outside epoch {epoch}'s"
                f" {len(self.batches(epoch))} batches (was the data or batch_tokens changed?)"
            )
        self.epoch, self.position = epoch, position

    def padding_fraction(
        self, epoch: int | None = None, *, max_batches: int | None = None
    ) -> float:
        """Padded fraction of the src + tgt tensors over this rank's batches of an epoch (an
        estimate from the first `max_batches` of them, when given)."""
        batches = [b for b in self.batches(epoch)[:max_batches] if len(b)]
        if not batches:
            return 0.0
        index = np.concatenate(batches)
        starts = np.cumsum([0] + [len(b) for b in batches[:-1]])
        src, tgt = self.src_lengths[index], self.tgt_lengths[index]
        sizes = np.array([len(b) for b in batches], dtype=np.int64)
        real = int(src.sum(dtype=np.int64) + tgt.sum(dtype=np.int64))
        padded = int(
            (sizes * (np.maximum.reduceat(src, starts) + np.maximum.reduceat(tgt, starts))).sum()
        )
        return 1.0 - real / padded if padded else 0.0


def greedy_cut(widths: np.ndarray, budget: int, min_size: int = 1) -> np.ndarray:
    """Batch boundaries [0, b1, ..., n] of a greedy cut of examples in order.

    A batch takes examples while (examples so far) * (widest so far) stays within `budget`,
    and at least `min_size` examples (and at least one); a last batch smaller than
    `min_size` joins the one before it. Since the padded size n * cummax(widths) never shrinks
    as n grows, each batch's size is the count of positions within the budget, found with
    one vectorised cumulative maximum over at most budget // widths[start] + 1 examples.
    """
    n = len(widths)
    bounds = [0]
    start = 0
    while start < n:
        window = min(n - start, budget // max(1, int(widths[start])) + 1)
        padded = np.maximum.accumulate(widths[start : start + window]).astype(np.int64)
        padded *= np.arange(1, window + 1)
        size = max(int(np.count_nonzero(padded <= budget)), min_size, 1)
        start = min(n, start + size)
        bounds.append(start)
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < min_size:
        del bounds[-2]  # too few left to give every rank one example
    return np.asarray(bounds, dtype=np.int64)
