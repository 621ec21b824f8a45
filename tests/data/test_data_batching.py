"""Collation and the token-budget sampler: budgets, determinism, DDP shards, resume."""

from __future__ import annotations

import random

import pytest
import torch

from seq2seq.data import Batch, TokenBatchSampler, collate, collate_src, pad_ids
from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID


def random_pairs(n: int, seed: int = 0, max_len: int = 40) -> list[tuple[list[int], list[int]]]:
    rng = random.Random(seed)
    return [
        (
            [rng.randint(4, 99) for _ in range(rng.randint(1, max_len))],
            [rng.randint(4, 99) for _ in range(rng.randint(0, max_len))],
        )
        for _ in range(n)
    ]


def pair_lengths(pairs) -> tuple[list[int], list[int]]:
    """Tensor lengths of each pair: (len(src) + 1, len(tgt) + 1), EOS included."""
    return [len(s) + 1 for s, _ in pairs], [len(t) + 1 for _, t in pairs]


def lists(batches) -> list[list[int]]:
    """Index batches (numpy arrays) as lists, to compare batch sequences."""
    return [b.tolist() for b in batches]


def make_sampler(pairs, batch_tokens=300, seed=1, **kwargs) -> TokenBatchSampler:
    src_lengths, tgt_lengths = pair_lengths(pairs)
    return TokenBatchSampler(
        src_lengths=src_lengths,
        tgt_lengths=tgt_lengths,
        batch_tokens=batch_tokens,
        seed=seed,
        **kwargs,
    )


def test_collate_hand_made_batch():
    batch = collate([([5, 6, 7], [8, 9]), ([10], [11, 12, 13])])
    assert isinstance(batch, Batch)
    assert batch.src.tolist() == [[5, 6, 7, EOS_ID], [10, EOS_ID, PAD_ID, PAD_ID]]
    assert batch.tgt_in.tolist() == [[BOS_ID, 8, 9, PAD_ID], [BOS_ID, 11, 12, 13]]
    assert batch.tgt_out.tolist() == [[8, 9, EOS_ID, PAD_ID], [11, 12, 13, EOS_ID]]
    assert batch.src.dtype == batch.tgt_in.dtype == torch.long
    assert (batch.src_tokens, batch.tgt_tokens, batch.size) == (6, 7, 2)
    assert batch.padding == pytest.approx(1 - 13 / 16)
    moved = batch.to("cpu")
    assert torch.equal(moved.tgt_out, batch.tgt_out) and moved.tgt_tokens == 7


def test_collate_edge_cases():
    batch = collate([([4], [])])  # empty target: tgt_in = BOS, tgt_out = EOS
    assert batch.tgt_in.tolist() == [[BOS_ID]] and batch.tgt_out.tolist() == [[EOS_ID]]
    assert batch.padding == 0.0
    assert collate_src([[], [7, 8]]).tolist() == [[EOS_ID, PAD_ID, PAD_ID], [7, 8, EOS_ID]]
    assert collate_src([[]]).tolist() == [[EOS_ID]]  # never a zero-width tensor
    with pytest.raises(ValueError, match="empty"):
        collate([])


def test_pad_ids_right_pads_to_the_longest_or_a_given_width():
    assert pad_ids([[3], [4, 5, 6]]).tolist() == [[3, PAD_ID, PAD_ID], [4, 5, 6]]
    assert pad_ids([[3]], width=3).tolist() == [[3, PAD_ID, PAD_ID]]
    assert pad_ids([[3], [4, 5]]).dtype == torch.long


def test_every_index_once_per_epoch_and_budget_respected():
    pairs = random_pairs(500)
    sampler = make_sampler(pairs, batch_tokens=300)
    src_lengths, tgt_lengths = pair_lengths(pairs)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = lists(sampler)
        assert len(batches) == len(sampler)
        assert sorted(i for b in batches for i in b) == list(range(500))
        for b in batches:
            padded = len(b) * max(max(src_lengths[i] for i in b), max(tgt_lengths[i] for i in b))
            assert padded <= 300 or len(b) == 1
            # the padded size of the collated tensors is what the budget counts
            tensors = collate([pairs[i] for i in b])
            assert max(tensors.src.numel(), tensors.tgt_out.numel()) <= 300


def test_example_over_budget_is_a_batch_of_its_own():
    pairs = [([4] * 50, [5] * 50), *random_pairs(20, max_len=5)]
    batches = lists(make_sampler(pairs, batch_tokens=40))
    assert [0] in batches


def test_deterministic_by_seed_and_epoch():
    pairs = random_pairs(400)
    a, b = make_sampler(pairs), make_sampler(pairs)
    assert lists(a.batches(0)) == lists(b.batches(0))
    assert lists(a.batches(0)) != lists(a.batches(1))  # reshuffled every epoch
    assert len(a.batches(0)) == len(a.batches(1))
    assert lists(make_sampler(pairs, seed=2).batches(0)) != lists(a.batches(0))
    fixed = make_sampler(pairs, shuffle=False)
    assert lists(fixed.batches(0)) == lists(fixed.batches(5))
    lengths = [pair_lengths(pairs)[1][i] for b in fixed.batches(0) for i in b]
    assert lengths == sorted(lengths)  # unshuffled: batches in length order


def test_length_grouping_reduces_padding():
    rng = random.Random(3)  # translations: target length close to the source length
    pairs = []
    for _ in range(1000):
        n = rng.randint(1, 40)
        pairs.append(([5] * n, [6] * max(0, n + rng.randint(-3, 3))))
    sampler = make_sampler(pairs, batch_tokens=400)
    real = padded = 0
    for b in sampler.batches():
        batch = collate([pairs[i] for i in b])
        real += int((batch.src != PAD_ID).sum() + (batch.tgt_out != PAD_ID).sum())
        padded += batch.src.numel() + batch.tgt_out.numel()
    assert sampler.padding_fraction() == pytest.approx(1 - real / padded)
    # the same batch sizes filled with random examples pad far more
    rng = random.Random(0)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    sizes = [len(b) for b in sampler.batches()]
    random_real = random_padded = 0
    start = 0
    for size in sizes:
        batch = collate([pairs[i] for i in order[start : start + size]])
        start += size
        random_real += batch.src_tokens + batch.tgt_tokens
        random_padded += batch.src.numel() + batch.tgt_out.numel()
    assert sampler.padding_fraction() < 0.1 < 1 - random_real / random_padded


@pytest.mark.parametrize("world_size", [2, 3])
def test_ddp_shards_partition_the_global_batches(world_size):
    pairs = random_pairs(600, seed=4)
    ranks = [
        make_sampler(pairs, batch_tokens=200, rank=r, world_size=world_size)
        for r in range(world_size)
    ]
    for epoch in (0, 1):
        reference = lists(ranks[0].global_batches(epoch))
        assert sorted(i for batch in reference for i in batch) == list(range(600))
        assert reference == lists(
            ranks[-1].global_batches(epoch)
        )  # every rank cuts the same batches
        shards = [lists(r.batches(epoch)) for r in ranks]
        assert all(len(s) == len(reference) for s in shards)  # same step count on every rank
        for step, batch in enumerate(reference):
            parts = [s[step] for s in shards]
            assert [i for part in parts for i in part] == batch  # contiguous shards, in order
            sizes = [len(p) for p in parts]
            assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_ddp_argument_checks():
    pairs = random_pairs(3)
    with pytest.raises(ValueError, match="rank"):
        make_sampler(pairs, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_tokens"):
        make_sampler(pairs, batch_tokens=0)
    with pytest.raises(ValueError, match="cannot fill"):
        make_sampler(pairs, world_size=4)


def test_resume_mid_epoch_yields_exactly_the_remaining_batches():
    pairs = random_pairs(300, seed=7)
    sampler = make_sampler(pairs, batch_tokens=250)
    sampler.set_epoch(2)
    full = lists(sampler.batches(2))
    iterator = iter(sampler)
    seen = [next(iterator).tolist() for _ in range(5)]
    state = sampler.state_dict()
    assert state == {"epoch": 2, "position": 5, "batch_tokens": 250, "world_size": 1}
    resumed = make_sampler(pairs, batch_tokens=250)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # a trainer re-announcing the same epoch keeps the position
    rest = lists(resumed)
    assert seen + rest == full
    assert resumed.state_dict()["epoch"] == 3  # finished: next epoch
    assert resumed.state_dict()["position"] == 0
    assert lists(resumed) == lists(resumed.batches(3))
    with pytest.raises(ValueError, match="position"):
        resumed.load_state_dict({"epoch": 0, "position": len(full) + 1})


def test_mid_epoch_positions_of_another_job_shape_are_refused():
    pairs = random_pairs(300, seed=7)
    state = {"epoch": 1, "position": 3, "batch_tokens": 250, "world_size": 2}
    with pytest.raises(ValueError, match=r"counts batches of 2 process\(es\) with train"):
        make_sampler(pairs, batch_tokens=250).load_state_dict(state)
    with pytest.raises(ValueError, match="batch_tokens=250, but this job has 1 with 300"):
        make_sampler(pairs, batch_tokens=300).load_state_dict({**state, "world_size": 1})
    at_epoch_start = make_sampler(pairs, batch_tokens=300, rank=1, world_size=2)
    at_epoch_start.load_state_dict({**state, "position": 0})  # any shape may start an epoch
    assert at_epoch_start.state_dict()["epoch"] == 1
    old = make_sampler(pairs, batch_tokens=300)
    old.load_state_dict({"epoch": 1, "position": 3})  # a checkpoint that predates the check
    assert old.position == 3
