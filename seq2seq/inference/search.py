"""Greedy and beam search over the stepping interface of `Seq2Seq` models.

Both searches are written once against `encode` / `init_state` / `step` / `state.select`
(no model-specific code). Decoding is incremental: the source is encoded once, each step feeds
only the previous token and the models keep their key/value caches in the decoder state.
Sentences that are finished are pruned from the batch with `state.select`.

Beam search ranks hypotheses by the GNMT length-normalised score (Wu et al. 2016,
arXiv:1609.08144):  score = log P(y | x) / lp(|y|),  lp(n) = ((5 + n) / 6) ** alpha,
where |y| counts the produced tokens including the final end-of-sentence token.

End-of-sentence handling. A sentence has `beam` slots. At each step its live hypotheses are
expanded and the best candidates fill the live slots; a candidate ending in EOS is set aside as
finished and its slot closes (the beam shrinks, as in Nematus and Marian), so `beam=1` is
exactly greedy search. A sentence is done when no slot is live, when its maximum length is
reached (live hypotheses are then finalised without EOS), or when it has `n_best` finished
hypotheses that no live one can beat. Two stopping rules say what "can beat" means:

* ``exact`` (the default): log-probabilities only decrease with length, so a live hypothesis
  with log-probability p after n tokens can at best reach max(p / lp(n + 1), p / lp(max_len));
  the search stops when that cannot beat the n_best-th finished score, so its result is the
  one an unbounded wait would give.
* ``early``: every live hypothesis is scored as if it ended at its next token,
  p / lp(n + 1) (Hugging Face's ``early_stopping=False``; CTranslate2 and OpenNMT-py stop
  when the best candidate of a step ends). With a length penalty > 0 it stops sooner
  (docs/commands.md, translate) and can miss a longer hypothesis that would have won; at
  alpha 0 both rules are the same.

Host synchronisation. On CUDA every read of a device value on the host waits for the queued
work, so a decoding step reads the device once: `_fetch` copies, in one transfer, the flags and
scores the host needs to set finished hypotheses aside and to know how many rows stay live.
Everything else stays on the device: the rows to keep are indexed with `nonzero_static` (the
count is known on the host), the n_best-th finished score that stops beam search early is kept
on the device, and finished hypotheses hold their tokens on the device until the search ends.
The first step may read more: the argument checks run there, and the Transformer reads whether
a beam's rows hold one token (it then computes that step once per sentence).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.profiler import record_function

from seq2seq.inference.hypotheses import (
    Finished,
    History,
    Hypothesis,
    length_penalty,
    trim_weights,
)
from seq2seq.inference.sampling import Sampler
from seq2seq.models.base import Seq2Seq
from seq2seq.runtime.checks import checked
from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID

__all__ = [
    "STOPPING_RULES",
    "Hypothesis",
    "beam_search",
    "forced_attention",
    "greedy_search",
    "length_penalty",
    "max_output_lengths",
    "trim_weights",
]

#: Stopping rules of beam search (module docstring).
STOPPING_RULES = ("exact", "early")


def max_output_lengths(
    src: Tensor, *, ratio: float, offset: int, max_positions: int | None = None
) -> Tensor:
    """Per-sentence output limit floor(src_len * ratio + offset), at least 1.

    src: [N, S] right-padded with PAD_ID; src_len counts its non-pad tokens (the source's EOS
    included). Returns a LongTensor [N], capped by `max_positions`.
    """
    src_len = (src != PAD_ID).sum(dim=1).double()
    limit = torch.floor(src_len * ratio + offset).long().clamp(min=1)
    return limit if max_positions is None else limit.clamp(max=max_positions)


def greedy_search(
    model: Seq2Seq,
    src: Tensor,
    *,
    max_len: int | Tensor,
    need_weights: bool = False,
    prefix: Tensor | None = None,
    sampler: Sampler | None = None,
    generator: torch.Generator | None = None,
) -> list[Hypothesis]:
    """Greedy decoding of a batch: at each step the most probable token (or, with `sampler`,
    a token drawn by it from the model's distribution, using `generator`).

    src: [N, S] source ids padded with PAD_ID. max_len: output limit in tokens (int or [N]),
    capped by `model.max_positions`. prefix: [N, P] target tokens each output must start with,
    right-padded with PAD_ID (see `beam_search`). Returns one Hypothesis per sentence, in
    input order.
    """
    if src.size(0) == 0:
        return []
    with _decoding(model):
        n, dev = src.size(0), src.device
        limit = _limits(model, src, max_len)
        encoded = model.encode(src, need_weights=need_weights)
        state = model.init_state(encoded)
        search = Finished(encoded, src, n_best=1, alpha=0.0, need_weights=need_weights)
        sent = list(range(n))  # original sentence of each live row
        log_prob = torch.zeros(n, 1, device=dev)
        prev = torch.full((n,), BOS_ID, dtype=torch.long, device=dev)
        history = History(n, dev)
        for t in range(int(limit.max())):
            with checked(t == 0):  # the arguments' layout is checked at the first step only
                logits, state, weights = model.step(prev, state, need_weights=need_weights)
            log_probs = _force_prefix(_log_probs(logits), _prefix_at(prefix, t))
            if sampler is None:
                scores, _, tokens = _expand(log_prob, log_probs, 1)
            else:
                tokens = sampler.draw(log_probs, generator)[:, None]
                scores = log_prob + log_probs.gather(1, tokens)
            history.extend(torch.arange(len(sent), device=dev), tokens[:, 0], weights)
            ended = (tokens[:, 0] == EOS_ID) | (t + 1 >= limit)
            flags, values = _fetch(ended, scores[:, 0])
            for row, flag in enumerate(flags):
                if flag:
                    search.add(sent[row], history, row, values[row], t + 1)
            live = [row for row, flag in enumerate(flags) if not flag]
            if not live:
                break
            keep = _indices(~ended, len(live))
            if len(live) < len(sent):
                state, history = state.select(keep), history.select(keep)
                sent, limit = [sent[row] for row in live], limit[keep]
                prefix = None if prefix is None else prefix[keep]
            log_prob, prev = scores[keep], tokens[keep, 0]
        return [hyps[0] for hyps in search.results()]


def beam_search(
    model: Seq2Seq,
    src: Tensor,
    *,
    beam: int,
    n_best: int = 1,
    length_penalty: float = 0.6,
    max_len: int | Tensor,
    need_weights: bool = False,
    prefix: Tensor | None = None,
    stopping: str = "exact",
) -> list[list[Hypothesis]]:
    """Batched beam search with the GNMT length penalty; see the module docstring.

    src: [N, S] source ids padded with PAD_ID. max_len: output limit in tokens (int or [N]),
    capped by `model.max_positions`. prefix: [N, P] target tokens (no BOS/EOS) that each
    output must start with, right-padded with PAD_ID (a row of PAD: no prefix); the search
    continues from them, and their log-probabilities count in the scores. stopping: one of
    `STOPPING_RULES` (module docstring). Returns, per
    sentence in input order, up to `n_best` distinct hypotheses sorted by score (best first).
    `beam=1` gives greedy search's output.
    """
    if beam < 1:
        raise ValueError(f"beam: got {beam}, expected an integer >= 1")
    if not 1 <= n_best <= beam:
        raise ValueError(f"n_best: got {n_best}, expected 1 <= n_best <= beam ({beam})")
    if stopping not in STOPPING_RULES:
        raise ValueError(f"stopping: got {stopping!r}, expected one of {STOPPING_RULES}")
    if src.size(0) == 0:
        return []
    exact = stopping == "exact"
    with _decoding(model):
        n, dev, alpha = src.size(0), src.device, length_penalty
        limit = _limits(model, src, max_len)
        with record_function("encode"):
            encoded = model.encode(src, need_weights=need_weights)
        state = model.init_state(encoded, beam=beam)  # beam rows per sentence
        finished = Finished(encoded, src, n_best=n_best, alpha=alpha, need_weights=need_weights)
        sent = list(range(n))  # original sentence of each live sentence
        # Cumulative log-probabilities [n, beam]; -inf marks a closed slot. All slots start
        # with the same prefix (BOS): only slot 0 is expanded at the first step.
        cum = torch.full((n, beam), float("-inf"), device=dev)
        cum[:, 0] = 0.0
        best = torch.full((n, n_best), float("-inf"), device=dev)  # finished scores, best first
        open_slots = torch.full((n,), beam, dtype=torch.long, device=dev)
        prev = torch.full((n * beam,), BOS_ID, dtype=torch.long, device=dev)
        history = History(n * beam, dev)
        rank = torch.arange(beam, device=dev)
        for t in range(int(limit.max())):
            with record_function("decoder step"), checked(t == 0):  # checks: first step only
                logits, state, weights = model.step(prev, state, need_weights=need_weights)
            forced = _prefix_at(prefix, t)
            forced = None if forced is None else forced.repeat_interleave(beam, dim=0)
            log_probs = _force_prefix(_log_probs(logits), forced)
            scores, origin, tokens = _expand(cum, log_probs, beam)  # [n, beam] each
            origin = (origin + torch.arange(len(sent), device=dev)[:, None] * beam).view(-1)
            history.extend(origin, tokens.view(-1), weights)
            valid = (rank < open_slots[:, None]) & torch.isfinite(scores)
            eos = valid & (tokens == EOS_ID)
            live = valid & ~eos
            at_limit = (t + 1 >= limit)[:, None]
            ending = eos | (live & at_limit)
            best = _best_finished(best, ending, scores, t + 1, alpha)
            cum = scores.masked_fill(~live, float("-inf"))
            open_slots = open_slots - eos.sum(dim=1)
            done = ~live.any(dim=1) | at_limit[:, 0]
            done |= _cannot_improve(cum, best[:, -1], t + 1, limit, alpha, exact)
            flags, values, stops = _fetch(ending, scores, done)
            for row, flag in enumerate(flags):  # row = i * beam + slot
                if flag:
                    finished.add(sent[row // beam], history, row, values[row], t + 1)
            going = [i for i, stop in enumerate(stops) if not stop]
            if not going:
                break
            keep = _indices(~done, len(going))
            rows = (keep[:, None] * beam + rank).view(-1)
            with record_function("reorder state"), checked(t == 0):
                state = state.select(origin[rows])
            history = history.select(rows)
            sent = [sent[i] for i in going]
            limit, cum, best, open_slots = limit[keep], cum[keep], best[keep], open_slots[keep]
            prefix = None if prefix is None else prefix[keep]
            prev = tokens.view(-1)[rows]
        return finished.results()


def forced_attention(model: Seq2Seq, src: Tensor, tgt: Tensor) -> dict[str, Tensor]:
    """Attention weights of given sentence pairs under teacher forcing.

    src: [S] or [N, S] source ids as `collate_src` lays them out (x + EOS); tgt: [T] or [N, T]
    target ids without BOS/EOS, both right-padded with PAD_ID (tensors on the model's device,
    or lists of ints). The decoder reads BOS, y_1, ..., y_T, so there are T + 1 query rows, the
    last one being the step that predicts EOS (as in `Hypothesis.attention`).
    Returns {slot: [N, L, H, T + 1, Tk]} for batches, or for a single pair (1-D inputs)
    {slot: [L, H, Tq, Tk]} trimmed to the real lengths.
    """
    src = torch.as_tensor(src, dtype=torch.long)
    tgt = torch.as_tensor(tgt, dtype=torch.long, device=src.device)
    single = src.dim() == 1
    src2, tgt2 = (src[None], tgt[None]) if single else (src, tgt)
    if src2.size(0) != tgt2.size(0):
        raise ValueError(f"src has {src2.size(0)} sentences but tgt has {tgt2.size(0)}")
    bos = torch.full((tgt2.size(0), 1), BOS_ID, dtype=torch.long, device=tgt2.device)
    with _decoding(model):
        _, weights = model.forward(src2, torch.cat([bos, tgt2], dim=1), need_weights=True)
    weights = {slot: w.float() for slot, w in weights.items()}
    if not single:
        return weights
    src_len, steps = int((src != PAD_ID).sum()), int((tgt != PAD_ID).sum()) + 1
    return trim_weights({slot: w[0] for slot, w in weights.items()}, src_len, steps)


# --- shared helpers -------------------------------------------------------------------------


@contextlib.contextmanager
def _decoding(model: Seq2Seq) -> Iterator[None]:
    """Inference mode with dropout off; the model's training flag is restored afterwards.
    A model already in eval mode throughout is left alone (``eval`` and ``train`` walk every
    module: a few ms per call, which a server translating one sentence at a time would pay)."""
    was_training = model.training
    switch = any(module.training for module in model.modules())
    if switch:
        model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        if switch:
            model.train(was_training)


def _limits(model: Seq2Seq, src: Tensor, max_len: int | Tensor) -> Tensor:
    """Per-sentence output limit [N] (LongTensor), at least 1 and at most model.max_positions."""
    n = src.size(0)
    if isinstance(max_len, Tensor):
        if max_len.shape not in ((), (n,)):
            raise ValueError(
                f"max_len: expected an int or a tensor of shape [{n}], "
                f"got shape {tuple(max_len.shape)}"
            )
        limit = max_len.to(device=src.device, dtype=torch.long).expand(n)
    else:
        limit = torch.full((n,), int(max_len), dtype=torch.long, device=src.device)
    if bool((limit < 1).any()):
        raise ValueError(f"max_len: got {limit.min().item()}, expected at least 1 token")
    return limit.clamp(max=model.max_positions)


def _fetch(*tensors: Tensor) -> list[list[float]]:
    """The values of ``tensors`` (flags, scores) as flat host lists, in one device-to-host copy.

    float64 holds float32 scores and 0/1 flags exactly, so the lists equal ``tensor.tolist()``.
    """
    flat = torch.cat([t.reshape(-1).to(torch.float64) for t in tensors]).tolist()
    out, start = [], 0
    for t in tensors:
        out.append(flat[start : start + t.numel()])
        start += t.numel()
    return out


def _indices(mask: Tensor, count: int) -> Tensor:
    """The positions of the ``count`` True entries of the 1-D ``mask``, in order.

    ``nonzero`` would wait for the device to learn the count; the host already knows it.
    """
    return torch.nonzero_static(mask, size=count)[:, 0]


def _log_probs(logits: Tensor) -> Tensor:
    """[R, V] logits -> float32 log-probabilities; PAD and BOS are never produced."""
    log_probs = logits.float().log_softmax(dim=-1)
    log_probs[:, PAD_ID] = float("-inf")
    log_probs[:, BOS_ID] = float("-inf")
    return log_probs


#: `_row_topk` takes the rows' maxima over blocks of this many entries.
TOPK_BLOCK = 64


def _row_topk(x: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """``x.topk(k, dim=-1)`` of the rows of x [R, V]: values [R, k] best first and indices.

    On the CPU, many long rows are searched by blocks of `TOPK_BLOCK` entries: the k largest
    entries of a row lie in the k blocks with the largest maxima (an entry of any other block
    is beaten by those k maxima), so one vectorised pass of block maxima and a top-k over k
    blocks replace the top-k over the whole row, about 2x faster at 160 rows of 8,000
    (docs/performance.md). Equal values may come in another order than ``topk``'s.
    """
    rows, size = x.shape
    blocks = size // TOPK_BLOCK
    if x.device.type != "cpu" or rows < 16 or blocks < 4 * k:
        return x.topk(k, dim=-1)
    cut = blocks * TOPK_BLOCK
    head = x[:, :cut].view(rows, blocks, TOPK_BLOCK)
    chosen = head.amax(dim=-1).topk(k, dim=-1).indices  # [R, k] blocks
    span = torch.arange(TOPK_BLOCK, device=x.device)
    candidates = head.gather(1, chosen[:, :, None].expand(rows, k, TOPK_BLOCK)).view(rows, -1)
    index = (chosen[:, :, None] * TOPK_BLOCK + span).view(rows, -1)
    if cut < size:  # the last, partial block is a candidate as it is
        candidates = torch.cat([candidates, x[:, cut:]], dim=1)
        tail = torch.arange(cut, size, device=x.device).expand(rows, -1)
        index = torch.cat([index, tail], dim=1)
    values, position = candidates.topk(k, dim=-1)
    return values, index.gather(1, position)


def _prefix_at(prefix: Tensor | None, t: int) -> Tensor | None:
    """The prefix tokens [R, 1] forced at step t (PAD_ID: none), or None past every prefix."""
    return None if prefix is None or t >= prefix.size(1) else prefix[:, t : t + 1]


def _force_prefix(log_probs: Tensor, token: Tensor | None) -> Tensor:
    """Rows whose forced `token` [R, 1] is not PAD_ID may produce only that token (at its
    own log-probability); the other rows, and every row when `token` is None, are left as
    they are. log_probs: [R, V]."""
    if token is None:
        return log_probs
    only = torch.full_like(log_probs, float("-inf")).scatter(1, token, log_probs.gather(1, token))
    return torch.where(token != PAD_ID, only, log_probs)


def _expand(cum: Tensor, log_probs: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Best k continuations per sentence.

    cum: [n, B] cumulative log-probs of the rows; log_probs: [n * B, V] of their next token.
    Returns scores [n, k], origin slot in 0..B-1 [n, k] and token [n, k], best first.
    The sentence's best k are among its rows' best k each, so the running scores are added to
    those (`_row_topk`), not to the whole [n, B x V] of candidates.
    """
    n, b = cum.shape
    best, best_tokens = _row_topk(log_probs, min(k, log_probs.size(-1)))  # [n * B, k']
    per_row = best.size(-1)
    candidates = (cum[:, :, None] + best.view(n, b, per_row)).view(n, b * per_row)
    scores, index = candidates.topk(k, dim=1)
    tokens = best_tokens.view(n, b * per_row).gather(1, index)
    return scores, index // per_row, tokens


def _best_finished(
    best: Tensor, ending: Tensor, scores: Tensor, steps: int, alpha: float
) -> Tensor:
    """best [n, n_best] finished scores (best first, -inf where none) merged with the candidates
    finishing now (``ending`` [n, B], log-probs ``scores`` [n, B] after ``steps`` tokens).

    Their scores are computed as `Hypothesis.score` is (float64 division by the same penalty)
    and rounded to float32, so the n_best-th equals the host's to the last bit.
    """
    new = (scores.double() / length_penalty(float(steps), alpha)).float()
    new = new.masked_fill(~ending, float("-inf"))
    return torch.cat([best, new], dim=1).topk(best.size(1), dim=1).values


def _cannot_improve(
    cum: Tensor, kth: Tensor, steps: int, limit: Tensor, alpha: float, exact: bool = True
) -> Tensor:
    """[n] True where the best live score cannot beat the n_best-th finished score.

    cum: [n, B] live log-probs after `steps` tokens; kth: [n] (-inf until n_best finished).
    A live hypothesis would be finalised with a length in steps + 1 .. limit; p / lp(len) is
    monotone in len, so its best reachable score is at one of the two ends (``exact``), or is
    taken to be the score at steps + 1 (the ``early`` rule; module docstring).
    """
    best = cum.max(dim=1).values
    bound = best / length_penalty(torch.full_like(best, steps + 1.0), alpha)
    if exact:
        longest = length_penalty(limit.to(best.dtype).clamp(min=steps + 1.0), alpha)
        bound = torch.maximum(bound, best / longest)
    return (bound <= kth) & torch.isfinite(kth)
