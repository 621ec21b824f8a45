"""Sampling and target prefixes: against the model's own distributions and plain searches."""

from __future__ import annotations

import pytest
import torch
from test_inference_translator import LINES, WordTokenizer
from toy_models import random_table

from seq2seq.inference.decode import DecodeError, DecodeOptions, decode_ids, score_ids
from seq2seq.inference.sampling import Sampler, SamplingError, parse_sampling
from seq2seq.inference.translate import Translator

TOKENIZER = WordTokenizer(14)
SRC = [ids for ids in TOKENIZER.encode_src_batch(LINES) if ids]


def _model(toy_model, seed=3):
    return toy_model(random_table(8, 14, seed=seed, sharpness=1.0), src_scale=1.0, max_positions=16)


def _decode(model, options, prefix=None, batch_size=3):
    return decode_ids(model, SRC, options, batch_size=batch_size, prefix_ids=prefix)


def test_topk_and_topp_draw_only_inside_their_sets():
    g = torch.Generator().manual_seed(0)
    log_probs = torch.randn(64, 30, generator=g).log_softmax(-1)
    log_probs[:, 7] = float("-inf")  # never drawn
    order = log_probs.argsort(dim=-1, descending=True)
    top3 = order[:, :3]
    probs = (log_probs / 2.0).softmax(-1).gather(1, order)  # the nucleus of the tempered p
    nucleus = [int((probs[r].cumsum(0) - probs[r] < 0.5).sum()) for r in range(64)]
    for _ in range(50):
        drawn = Sampler("topk", k=3).draw(log_probs, g)
        assert (drawn[:, None] == top3).any(dim=1).all()
        drawn = Sampler("topp", p=0.5, temperature=2.0).draw(log_probs, g)
        for r in range(64):
            assert drawn[r] in order[r, : nucleus[r]]
        assert not (Sampler("full").draw(log_probs, g) == 7).any()


def test_full_sampling_follows_the_distribution():
    """Draw frequencies match softmax(log_probs / T) (5 sigma)."""
    log_probs = torch.tensor([[0.0, -0.5, -1.0, -3.0]]).log_softmax(-1).expand(20000, 4)
    g = torch.Generator().manual_seed(1)
    for temperature in (1.0, 0.5):
        drawn = Sampler("full", temperature=temperature).draw(log_probs, g)
        freq = torch.bincount(drawn, minlength=4).double() / len(drawn)
        expected = (log_probs[0].double() / temperature).softmax(-1)
        sigma = (expected * (1 - expected) / len(drawn)).sqrt()
        assert ((freq - expected).abs() <= 5 * sigma + 1e-12).all()


def test_a_fixed_seed_reproduces(toy_model):
    model = _model(toy_model)
    options = DecodeOptions(beam=1, n_best=3, sampling=Sampler("full"), seed=7)
    first = _decode(model, options)
    other = _decode(model, DecodeOptions(beam=1, n_best=3, sampling=Sampler("full"), seed=8))
    tokens = [[h.tokens for h in hyps] for hyps in first]
    assert tokens == [[h.tokens for h in hyps] for hyps in _decode(model, options)]
    assert [len(hyps) for hyps in first] == [3] * len(SRC)
    assert tokens != [[h.tokens for h in hyps] for hyps in other]
    assert sum(len({tuple(t) for t in sample}) > 1 for sample in tokens) >= 2  # diverse


def test_zero_temperature_and_top1_equal_greedy(toy_model):
    model = _model(toy_model)
    greedy = _decode(model, DecodeOptions(beam=1))
    for sampler in (
        Sampler("full", temperature=0.0),
        Sampler("topk", k=1),
        Sampler("topp", p=1e-6),
    ):
        sampled = _decode(model, DecodeOptions(beam=1, sampling=sampler, seed=3))
        assert [h[0].tokens for h in sampled] == [h[0].tokens for h in greedy]
        assert [h[0].log_prob for h in sampled] == pytest.approx([h[0].log_prob for h in greedy])


def test_sample_scores_are_the_models_log_probs(toy_model):
    """A sample's log-prob is the untempered log-probability of its tokens (forced scoring)."""
    model = _model(toy_model)
    options = DecodeOptions(beam=1, n_best=2, sampling=Sampler("full", temperature=1.5), seed=2)
    found = _decode(model, options)
    ended = [(s, h) for s, hyps in zip(SRC, found, strict=True) for h in hyps if len(h.tokens) < 5]
    assert ended
    scored = score_ids(model, [s for s, _ in ended], [h.tokens for _, h in ended], alpha=0.0,
                       batch_size=4)  # fmt: skip
    for (_, hyp), pair in zip(ended, scored, strict=True):
        if pair.tokens == len(hyp.tokens) + 1:  # ended with EOS (not cut at the limit)
            assert pair.log_prob == pytest.approx(hyp.log_prob, abs=1e-5)


@pytest.mark.parametrize("beam", [1, 3])
def test_prefix_is_forced_and_the_search_continues(toy_model, beam):
    model = _model(toy_model)
    options = DecodeOptions(beam=beam, n_best=1, max_len_offset=3)
    plain = _decode(model, options)
    prefixes = [[9, 5], [], [6], [12, 12, 12], [], [10]][: len(SRC)]
    forced = _decode(model, options, prefix=prefixes)
    for prefix, free, hyps in zip(prefixes, plain, forced, strict=True):
        out = hyps[0]
        if not prefix:  # an empty prefix changes nothing
            assert out.tokens == free[0].tokens and out.score == pytest.approx(free[0].score)
            continue
        assert out.tokens[: len(prefix)] == prefix
        assert len(out.tokens) > len(prefix) or out.log_prob > float("-inf")
    # greedy: the continuation is the greedy choice after the prefix, step by step
    if beam == 1:
        for src, prefix, hyps in zip(SRC, prefixes, forced, strict=True):
            if prefix:
                assert hyps[0].tokens == _greedy_after(model, src, prefix, len(hyps[0].tokens))


def _greedy_after(model, src, prefix, length):
    """Reference: feed BOS + prefix, then take the argmax, one full forward pass per token."""
    from seq2seq.data import collate_src
    from seq2seq.vocab import BOS_ID, EOS_ID

    tokens = list(prefix)
    while len(tokens) < length:
        logits, _ = model(collate_src([src]), torch.tensor([[BOS_ID, *tokens]]))
        log_probs = logits[0, -1].float().log_softmax(-1)
        log_probs[[0, BOS_ID]] = float("-inf")
        token = int(log_probs.argmax())
        if token == EOS_ID:
            break
        tokens.append(token)
    return tokens


def test_translator_prefix_and_sampling_options(toy_model):
    model = _model(toy_model)
    translator = Translator(model=model, tokenizer=TOKENIZER, beam=3, max_len_offset=3)
    out = translator.translate(["3 1 4", "9 2"], prefix=["5 5", ""])
    assert out[0].text.startswith("5 5")
    with pytest.raises(ValueError, match="prefix: got 1 prefixes for 2 texts"):
        translator.translate(["3 1 4", "9 2"], prefix=["5"])
    sampler = Translator(model=model, tokenizer=TOKENIZER, beam=1, sampling="topk:3", n_best=4)
    drawn = sampler.translate(["3 1 4"])[0]
    assert len(drawn.nbest) == 4
    assert drawn.nbest == sorted(drawn.nbest, key=lambda pair: -pair[1])
    assert sampler.translate(["3 1 4"])[0].nbest == drawn.nbest  # the seed is fixed
    streamed = list(translator.stream(["3 1 4", "9 2"], ["5 5", ""]))
    assert [t.text for t in streamed] == [t.text for t in out]
    with pytest.raises(ValueError, match="differ in length"):
        list(translator.stream(["3 1 4", "9 2"], ["5 5"]))


def test_bad_sampling_options():
    for spec, match in (("topk:0", "topk:0"), ("topp:1.5", "topp:1.5"), ("topq:3", "topq"),
                        ("topk:x", "topk:x"), ("full:2", "full:2")):  # fmt: skip
        with pytest.raises(SamplingError, match=match):
            parse_sampling(spec)
    with pytest.raises(SamplingError, match="temperature"):
        parse_sampling("full", temperature=-1.0)
    with pytest.raises(DecodeError, match="does not combine with beam search"):
        DecodeOptions(beam=4, sampling=Sampler())
