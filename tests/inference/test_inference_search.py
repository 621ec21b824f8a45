"""Greedy and beam search against hand-computed cases, exhaustive enumeration and identities."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from seq2seq.inference import Hypothesis, beam_search, forced_attention, greedy_search
from seq2seq.inference.search import (
    _expand,
    _log_probs,
    _row_topk,
    length_penalty,
    max_output_lengths,
)
from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID

A, B = 4, 5  # the two content tokens of the hand-made model


def hand_table() -> torch.Tensor:
    """Next-token probabilities (vocab PAD UNK BOS EOS a b), as logits = log p.

    step 0 (after BOS): a 0.6, b 0.4
    step >= 1 after a: EOS 0.35, a 0.33, b 0.32;  after b: EOS 0.9, a 0.05, b 0.05
    """
    p = torch.full((2, 6, 6), 1.0 / 6)
    p[0, BOS_ID] = torch.tensor([0, 0, 0, 0, 0.6, 0.4])
    p[1, A] = torch.tensor([0, 0, 0, 0.35, 0.33, 0.32])
    p[1, B] = torch.tensor([0, 0, 0, 0.9, 0.05, 0.05])
    return p.log()


def src_batch(lengths, vocab=16, seed=0) -> torch.Tensor:
    """Right-padded random source ids [N, max(lengths)] (ids 4..vocab-1)."""
    g = torch.Generator().manual_seed(seed)
    src = torch.full((len(lengths), max(lengths)), PAD_ID)
    for i, n in enumerate(lengths):
        src[i, :n] = torch.randint(4, vocab, (n,), generator=g)
    return src


def test_hand_computed_beam_beats_greedy(toy_model):
    model = toy_model(hand_table())
    src = torch.tensor([[5, 6]])
    greedy = greedy_search(model, src, max_len=5)[0]
    # greedy: a (0.6) then EOS (0.35, the best after a): p = 0.21
    assert greedy.tokens == [A]
    assert greedy.log_prob == pytest.approx(math.log(0.6 * 0.35), abs=1e-5)
    # beam 2: after step 0 the beam holds a (0.6) and b (0.4); the best two continuations are
    # b EOS (0.4 * 0.9 = 0.36) and a EOS (0.21), both finished, so the search stops there.
    best, second = beam_search(model, src, beam=2, n_best=2, length_penalty=0.0, max_len=5)[0]
    assert best.tokens == [B] and best.log_prob == pytest.approx(math.log(0.36), abs=1e-5)
    assert second.tokens == [A] and second.log_prob == pytest.approx(math.log(0.21), abs=1e-5)
    # with the GNMT penalty both have length 2 (token + EOS): lp = (7/6)^0.6
    scored = beam_search(model, src, beam=2, length_penalty=0.6, max_len=5)[0][0]
    assert scored.score == pytest.approx(math.log(0.36) / (7 / 6) ** 0.6, abs=1e-5)


def test_stopping_bound_uses_the_longest_reachable_length(toy_model):
    # step 0: EOS p = e^-0.6, a p = e^-0.8; after a: a p = 0.999 (EOS almost impossible).
    # After step 0 the finished "" scores -0.6 / lp(1) = -0.6. The live "a" (log p = -0.8)
    # measured at the next length would score -0.8 / lp(2) < -0.6, but with alpha = 1 and
    # max_len = 10 it can still reach -0.8 / lp(10) = -0.32, so the search must go on, and
    # "a" * 10 (cut at max_len): (-0.8 + 9 log 0.999) / ((5 + 10) / 6) = -0.3236 wins.
    p = torch.full((2, 6, 6), 1e-9, dtype=torch.float64)
    p[0, BOS_ID, EOS_ID], p[0, BOS_ID, A] = math.exp(-0.6), math.exp(-0.8)
    p[1, A, A], p[1, A, EOS_ID] = 0.999, 1e-6
    p[0, BOS_ID, UNK_ID] = 1 - p[0, BOS_ID].sum() + 1e-9  # rows sum to 1: log p exact
    p[1, A, B] = 1 - p[1, A].sum() + 1e-9
    model = toy_model(p.log())
    greedy = greedy_search(model, torch.tensor([[4]]), max_len=10)[0]
    assert greedy.tokens == []
    best = beam_search(model, torch.tensor([[4]]), beam=2, length_penalty=1.0, max_len=10)[0][0]
    assert best.tokens == [A] * 10
    assert best.score == pytest.approx((-0.8 + 9 * math.log(0.999)) / 2.5, abs=1e-4)
    # The early rule scores "a" at its next length only: -0.8 / lp(2) = -0.686 < -0.6, so the
    # search stops after step 0 with the finished "".
    early = beam_search(
        model, torch.tensor([[4]]), beam=2, length_penalty=1.0, max_len=10, stopping="early"
    )[0][0]
    assert early.tokens == [] and early.score == pytest.approx(-0.6, abs=1e-6)


class StepCounter:
    """A model wrapper that counts decoder steps (and the rows they carry)."""

    def __init__(self, model) -> None:
        self.model, self.steps, self.rows = model, 0, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def step(self, prev, state, need_weights=False):
        self.steps += 1
        self.rows += prev.shape[0]
        return self.model.step(prev, state, need_weights=need_weights)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_early_stopping_rule(toy_model, make_table, seed):
    # At alpha 0 both rules are the same test (p / lp = p); with a penalty the early rule
    # never decodes more steps than the exact one, and each of its outputs is a hypothesis
    # the exact search would rank no higher than its own best.
    model = toy_model(make_table(6, 12, seed=seed), src_scale=2.0)
    src = src_batch([5, 1, 8, 3, 6, 2, 7], seed=seed)
    limit = max_output_lengths(src, ratio=1.5, offset=4)
    for alpha in (0.0, 0.6, 2.0):
        runs = {}
        for rule in ("exact", "early"):
            counter = StepCounter(model)
            found = beam_search(
                counter, src, beam=3, n_best=2, length_penalty=alpha, max_len=limit, stopping=rule
            )
            runs[rule] = (found, counter.steps, counter.rows)
        (exact, exact_steps, exact_rows), (early, early_steps, early_rows) = runs.values()
        assert early_steps <= exact_steps and early_rows <= exact_rows
        for e, x in zip(early, exact, strict=True):
            assert e[0].score <= x[0].score + 1e-6
        if alpha == 0.0:
            assert (early_steps, early_rows) == (exact_steps, exact_rows)
            assert [[h.tokens for h in hs] for hs in early] == [
                [h.tokens for h in hs] for hs in exact
            ]


def test_unknown_stopping_rule_is_refused(toy_model, make_table):
    model = toy_model(make_table(2, 6, seed=0))
    with pytest.raises(
        ValueError, match=r"stopping: got 'never', expected one of \('exact', 'early'\)"
    ):
        beam_search(model, src_batch([3]), beam=2, max_len=4, stopping="never")


def exhaustive(table: torch.Tensor, max_len: int, alpha: float):
    """All outputs of the toy model up to max_len tokens with their GNMT scores, in float64."""
    log_p = table.double().log_softmax(-1)
    content = [v for v in range(table.size(-1)) if v not in (PAD_ID, BOS_ID, EOS_ID)]
    outputs = []
    for n in range(max_len + 1):
        for tokens in itertools.product(content, repeat=n):
            path = [BOS_ID, *tokens]
            lp = sum(
                float(log_p[min(t, table.size(0) - 1), path[t], path[t + 1]]) for t in range(n)
            )
            if n < max_len:  # ended by EOS: n + 1 steps
                lp += float(log_p[min(n, table.size(0) - 1), path[n], EOS_ID])
                outputs.append((lp / length_penalty(n + 1.0, alpha), list(tokens)))
            else:  # cut at the length limit
                outputs.append((lp / length_penalty(float(n), alpha), list(tokens)))
    return sorted(outputs, key=lambda x: -x[0])


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0, 3.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wide_beam_equals_exhaustive_search(toy_model, make_table, alpha, seed):
    # With a beam wider than the number of prefixes nothing is pruned, so the search (and its
    # early stopping bound) must return the exact n best outputs.
    table = make_table(4, 7, seed, sharpness=1.5)
    model = toy_model(table)
    hyps = beam_search(
        model, torch.tensor([[4, 5, 6]]), beam=200, n_best=5, length_penalty=alpha, max_len=4
    )[0]
    reference = exhaustive(table, 4, alpha)[:5]
    assert [h.tokens for h in hyps] == [tokens for _, tokens in reference]
    assert [h.score for h in hyps] == pytest.approx([s for s, _ in reference], abs=1e-4)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_beam_one_is_greedy(toy_model, make_table, alpha):
    model = toy_model(make_table(6, 12, seed=3), src_scale=2.0)
    src = src_batch([5, 1, 8, 3, 6, 2], seed=1)
    limit = max_output_lengths(src, ratio=1.5, offset=2)
    greedy = greedy_search(model, src, max_len=limit, need_weights=True)
    beam = beam_search(model, src, beam=1, length_penalty=alpha, max_len=limit, need_weights=True)
    assert len(beam) == len(greedy) == 6
    for g, (b,) in zip(greedy, beam, strict=True):
        assert b.tokens == g.tokens
        assert b.log_prob == g.log_prob  # the same float operations in the same order
        assert g.score == g.log_prob
        for slot in g.attention:
            assert torch.equal(b.attention[slot], g.attention[slot])


@pytest.mark.parametrize("seed", range(6))
def test_beam_log_prob_at_least_greedy(toy_model, make_table, seed):
    model = toy_model(make_table(5, 10, seed=seed), src_scale=1.0)
    src = src_batch([4, 7, 2, 5], seed=seed)
    greedy = greedy_search(model, src, max_len=8)
    beam = beam_search(model, src, beam=4, length_penalty=0.0, max_len=8)
    for g, (b,) in zip(greedy, beam, strict=True):
        assert b.log_prob >= g.log_prob - 1e-6


@pytest.mark.parametrize("seed", range(4))
def test_n_best_sorted_distinct_and_consistent(toy_model, make_table, seed):
    model = toy_model(make_table(5, 9, seed=seed), src_scale=1.0)
    src = src_batch([3, 6, 4], seed=seed)
    results = beam_search(model, src, beam=5, n_best=5, length_penalty=0.6, max_len=7)
    for hyps in results:
        assert len(hyps) == 5
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == len(hyps)
        for h in hyps:
            assert EOS_ID not in h.tokens and BOS_ID not in h.tokens and PAD_ID not in h.tokens
            steps = len(h.tokens) + 1 if len(h.tokens) < 7 else 7
            assert h.score == pytest.approx(h.log_prob / length_penalty(float(steps), 0.6))


def test_batched_beam_equals_one_sentence_at_a_time(toy_model, make_table):
    model = toy_model(make_table(6, 11, seed=7), src_scale=2.0)
    src = src_batch([6, 2, 9, 4, 1], seed=2)
    limit = max_output_lengths(src, ratio=1.2, offset=3)
    batched = beam_search(model, src, beam=3, n_best=2, max_len=limit)
    for i, hyps in enumerate(batched):
        row = src[i : i + 1, : int((src[i] != PAD_ID).sum())]
        alone = beam_search(model, row, beam=3, n_best=2, max_len=limit[i : i + 1])[0]
        assert [h.tokens for h in hyps] == [h.tokens for h in alone]
        assert [h.score for h in hyps] == pytest.approx([h.score for h in alone], abs=1e-5)


def never_eos_table(vocab=8) -> torch.Tensor:
    table = torch.zeros(1, vocab, vocab)
    table[..., EOS_ID] = float("-inf")
    table[..., 4] = 1.0
    return table


def test_eos_ends_the_hypothesis(toy_model):
    table = torch.zeros(4, 8, 8)
    table[:3, :, 5] = 5.0  # token 5 for three steps, then EOS is by far the most likely
    table[3, :, EOS_ID] = 8.0
    model = toy_model(table)
    for hyp in [
        greedy_search(model, torch.tensor([[4]]), max_len=20)[0],
        beam_search(model, torch.tensor([[4]]), beam=3, max_len=20)[0][0],
    ]:
        assert hyp.tokens == [5, 5, 5]
    assert model.step_rows[-1] > 0 and len(model.step_rows) < 4 + 20 + 20  # stopped early


def test_max_len_cuts_and_finalizes(toy_model):
    model = toy_model(never_eos_table(), max_positions=64)
    src = src_batch([3, 7], seed=0)
    limit = torch.tensor([2, 5])
    greedy = greedy_search(model, src, max_len=limit, need_weights=True)
    assert [len(h.tokens) for h in greedy] == [2, 5]
    assert [h.attention["cross"].shape[-2] for h in greedy] == [2, 5]  # no EOS row
    assert model.step_rows == [2, 2, 1, 1, 1]  # the finished sentence left the batch
    model.step_rows.clear()
    beam = beam_search(model, src, beam=3, n_best=3, length_penalty=1.0, max_len=limit)
    assert [len(hyps[0].tokens) for hyps in beam] == [2, 5]
    assert [len(hyps) for hyps in beam] == [3, 3]
    assert model.step_rows == [6, 6, 3, 3, 3]
    h = beam[1][0]
    assert h.score == pytest.approx(h.log_prob / length_penalty(5.0, 1.0))


def test_max_len_capped_by_max_positions(toy_model):
    model = toy_model(never_eos_table(), max_positions=4)
    assert len(greedy_search(model, torch.tensor([[4, 5]]), max_len=100)[0].tokens) == 4
    assert len(beam_search(model, torch.tensor([[4, 5]]), beam=2, max_len=100)[0][0].tokens) == 4


def test_max_output_lengths():
    src = torch.tensor([[4, 5, 6, PAD_ID], [4, PAD_ID, PAD_ID, PAD_ID], [4, 5, 6, 7]])
    # floor(3 * 1.5 + 2) = 6, floor(1.5 + 2) = 3, floor(6 + 2) = 8 capped at 7
    assert max_output_lengths(src, ratio=1.5, offset=2, max_positions=7).tolist() == [6, 3, 7]
    assert max_output_lengths(src, ratio=0.0, offset=0).tolist() == [1, 1, 1]


def test_empty_batch(toy_model):
    model = toy_model(hand_table())
    empty = torch.zeros(0, 3, dtype=torch.long)
    assert greedy_search(model, empty, max_len=5) == []
    assert beam_search(model, empty, beam=3, max_len=5) == []


def test_bad_arguments(toy_model):
    model = toy_model(hand_table())
    src = torch.tensor([[4]])
    with pytest.raises(ValueError, match="n_best"):
        beam_search(model, src, beam=2, n_best=3, max_len=3)
    with pytest.raises(ValueError, match="beam"):
        beam_search(model, src, beam=0, max_len=3)
    with pytest.raises(ValueError, match="max_len"):
        greedy_search(model, src, max_len=0)
    with pytest.raises(ValueError, match="max_len"):
        greedy_search(model, src, max_len=torch.tensor([3, 4]))


@pytest.mark.parametrize("beam", [1, 4])
def test_attention_follows_back_pointers(toy_model, make_table, beam):
    # The toy's attention depends on the previous token, so a hypothesis whose rows were not
    # reordered with the beam would differ from the teacher-forced attention of its tokens.
    model = toy_model(make_table(6, 10, seed=5), src_scale=1.5)
    src = src_batch([5, 3, 7], seed=4)
    results = beam_search(model, src, beam=beam, n_best=beam, max_len=6, need_weights=True)
    for i, hyps in enumerate(results):
        n_src = int((src[i] != PAD_ID).sum())
        for h in hyps:
            forced = forced_attention(model, src[i, :n_src], torch.tensor(h.tokens))
            steps = h.attention["cross"].shape[-2]
            assert steps in (len(h.tokens), len(h.tokens) + 1)
            assert h.attention["cross"].shape == (1, 1, steps, n_src)
            assert h.attention["decoder_self"].shape == (1, 1, steps, steps)
            assert h.attention["encoder_self"].shape == (1, 1, n_src, n_src)
            for slot, w in h.attention.items():
                rows = forced[slot] if slot == "encoder_self" else forced[slot][..., :steps, :]
                torch.testing.assert_close(w, rows[..., : w.shape[-1]])


def test_forced_attention_batch_shapes(toy_model):
    model = toy_model(hand_table())
    src = torch.tensor([[4, 5, 6], [4, PAD_ID, PAD_ID]])
    tgt = torch.tensor([[4, 5], [5, PAD_ID]])
    weights = forced_attention(model, src, tgt)
    assert weights["cross"].shape == (2, 1, 1, 3, 3)  # T + 1 rows: BOS, y1, y2
    single = forced_attention(model, src[1], tgt[1])
    assert single["cross"].shape == (1, 1, 2, 1)
    assert single["decoder_self"].shape == (1, 1, 2, 2)
    with pytest.raises(ValueError, match="sentences"):
        forced_attention(model, src, tgt[:1])


def test_search_restores_training_mode(toy_model):
    model = toy_model(hand_table())
    model.train()
    greedy_search(model, torch.tensor([[4]]), max_len=3)
    assert model.training
    assert isinstance(beam_search(model, torch.tensor([[4]]), beam=2, max_len=3)[0][0], Hypothesis)
    # a module in training mode anywhere in the model is switched off, and back on after
    model.eval()
    model.probe = torch.nn.Dropout(0.5)  # in training mode: the model is not eval throughout
    seen = []
    model.probe.register_forward_pre_hook(lambda m, _: seen.append(m.training))
    step = model.step
    model.step = lambda *args, **kwargs: (model.probe(torch.ones(1)), step(*args, **kwargs))[1]
    greedy_search(model, torch.tensor([[4]]), max_len=2)
    assert seen and not any(seen)
    assert model.probe.training is False and model.training is False  # model.train(False)


def _expand_whole(cum, log_probs, k):
    """The reference of `_expand`: the top k of every row's every continuation, [n, B x V]."""
    n, b = cum.shape
    vocab = log_probs.size(-1)
    candidates = (cum[:, :, None] + log_probs.view(n, b, vocab)).view(n, b * vocab)
    scores, index = candidates.topk(k, dim=1)
    return scores, index // vocab, index % vocab


def test_candidates_from_each_rows_best_equal_those_of_the_whole_log_softmax():
    """The beam's candidates taken from each row's k best logits equal those of the full
    log-softmax over beam x vocabulary (PAD and BOS, however likely, are never chosen)."""
    gen = torch.Generator().manual_seed(0)
    n, beam, vocab = 4, 3, 50
    logits = torch.randn(n * beam, vocab, generator=gen) * 3
    logits[:, PAD_ID] = logits[:, BOS_ID] = 20.0  # the most likely, and never produced
    cum = torch.randn(n, beam, generator=gen)
    cum[1, 1:] = float("-inf")  # closed slots
    full = _expand_whole(cum, _log_probs(logits.clone()), beam)
    best = _expand(cum, _log_probs(logits.clone()), beam)
    torch.testing.assert_close(best[0], full[0], rtol=0, atol=1e-6)
    assert torch.equal(best[1], full[1]) and torch.equal(best[2], full[2])
    assert not torch.isin(best[2], torch.tensor([PAD_ID, BOS_ID])).any()


@pytest.mark.parametrize(
    ("rows", "size", "k"),
    [(160, 8000, 5), (20, 8000, 1), (16, 1000, 10), (40, 64 * 7 + 13, 1), (3, 8000, 5)],
)
def test_row_topk_equals_topk(rows, size, k):
    """The blocked top-k (many long rows) gives torch.topk's values and indices; -inf entries
    (PAD, BOS), a partial last block and a row whose best entries share one block included."""
    gen = torch.Generator().manual_seed(rows + size + k)
    x = torch.randn(rows, size, generator=gen, dtype=torch.float64).float() * 4
    x[:, PAD_ID] = x[:, BOS_ID] = float("-inf")
    x[0, 70 : 70 + k] = 50.0 + torch.arange(k)  # all in one block
    x[1, -1] = 60.0  # in the partial block, when there is one
    x[2, :] = float("-inf")
    x[2, 5] = 0.0  # one finite entry
    values, index = _row_topk(x, k)
    expected_values, expected_index = x.topk(k, dim=-1)
    assert torch.equal(values, expected_values)
    finite = torch.isfinite(expected_values)  # among -inf entries the order is arbitrary
    assert torch.equal(index[finite], expected_index[finite])
    assert torch.equal(x.gather(1, index), values)
