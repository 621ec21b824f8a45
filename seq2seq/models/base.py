"""What every encoder-decoder model shares: the encoder output, the stepping protocol, helpers.

The search code (greedy, beam, forced decoding) is written once against :class:`Seq2Seq`::

    encoded = model.encode(src)                      # Encoded
    state = model.init_state(encoded)                # a model-specific DecoderState
    state = model.init_state(encoded, beam=5)        # or: 5 consecutive rows per sentence
    state = state.select(index)                      # reorder or prune rows
    logits, state, weights = model.step(prev_tokens, state)

Stepping with the caches gives the same logits as the teacher-forced ``forward``.

A state made with ``beam=k`` holds k rows per sentence, and what is the same for all k (the
source's attention memories) may be kept once per sentence. Its ``select`` must therefore be
given whole groups: ``index`` of length m * k whose every block of k holds rows of one sentence
(beam search's reorder and pruning do). :func:`group_entries` reads the sentences off it.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor, nn

from seq2seq.runtime.checks import checks_enabled
from seq2seq.vocab import PAD_ID

__all__ = [
    "DecoderState",
    "Encoded",
    "Seq2Seq",
    "beam_rows",
    "check_tokens",
    "group_entries",
    "init_linears",
    "init_lstm",
    "nonempty_src",
    "padding_mask",
    "stack_step_weights",
    "stack_weights",
]


class Encoded(NamedTuple):
    """Encoder output: everything ``init_state`` needs.

    states: [B, S, D] encoder states (zeros at padded positions for the RNN).
    src_mask: [B, S] bool, True = real source token.
    weights: {"encoder_self": [B, L, H, S, S]} when asked for (Transformer), else {}.
    final: RNN only: [B, 2, D] final (h, c) of the last encoder layer, both directions
        concatenated; None for the Transformer.
    src_padded: False when no source position is padding: attention over the source may then
        run without a mask (on CUDA a mask rules out the flash kernels). True when unknown.
    """

    states: Tensor
    src_mask: Tensor
    weights: dict[str, Tensor]
    final: Tensor | None = None
    src_padded: bool = True


class DecoderState(Protocol):
    """An immutable decoder state; every tensor in it has the batch on dim 0."""

    def select(self, index: Tensor) -> DecoderState:
        """Return a new state made of rows ``index`` (LongTensor [N]) of this one; for a state
        made with ``init_state(encoded, beam=k)``, in whole groups of k (module docstring)."""
        ...


class Seq2Seq(nn.Module, abc.ABC):
    """Interface of the encoder-decoder models (RNN and Transformer).

    Attributes:
        slots: names of the model's attention slots, e.g. ("cross",).
        max_positions: longest source or target sequence (in tokens) the model accepts.
    """

    slots: tuple[str, ...]
    max_positions: int

    @property
    @abc.abstractmethod
    def src_vocab_size(self) -> int:
        """Rows of the source embedding: source ids lie in [0, src_vocab_size)."""

    @property
    @abc.abstractmethod
    def tgt_vocab_size(self) -> int:
        """Rows of the target embedding (and logits): target ids lie in [0, tgt_vocab_size)."""

    def open_source(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """The opening of every ``encode``: checks src [B, S] (integer ids within the source
        vocabulary, S <= max_positions) and returns (src [B, max(S, 1)], src_mask of the same
        shape, True = real token); see :func:`nonempty_src`."""
        check_tokens("src", src, 2, max_len=self.max_positions, vocab_size=self.src_vocab_size)
        src = nonempty_src(src)
        return src, padding_mask(src)

    def check_teacher_forcing(self, src: Tensor, tgt_in: Tensor) -> None:
        """The checks of every ``forward``: src [B, S] and tgt_in [B, T] integer tensors of one
        batch size, tgt_in within the target vocabulary and max_positions (``encode`` checks
        the rest of src). Raises ValueError."""
        check_tokens("src", src, 2)
        check_tokens(
            "tgt_in", tgt_in, 2, max_len=self.max_positions, vocab_size=self.tgt_vocab_size
        )
        if tgt_in.shape[0] != src.shape[0]:
            raise ValueError(
                f"src and tgt_in batch sizes differ: {list(src.shape)} vs {list(tgt_in.shape)}"
            )

    @abc.abstractmethod
    def encode(self, src: Tensor, need_weights: bool = False) -> Encoded:
        """src [B, S] (padded with PAD_ID) -> Encoded."""

    @abc.abstractmethod
    def forward(
        self, src: Tensor, tgt_in: Tensor, need_weights: bool = False
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Teacher forcing: src [B, S], tgt_in [B, T] (BOS + target, right-padded).

        Returns raw logits [B, T, V] and {slot: [B, L, H, T, Tk]} when asked for, else {}.
        """

    @abc.abstractmethod
    def init_state(self, encoded: Encoded, beam: int = 1) -> DecoderState:
        """The decoder state before the first step (key-side attention work done here), with
        ``beam`` consecutive rows per sentence (see the module docstring)."""

    @abc.abstractmethod
    def step(
        self, prev_tokens: Tensor, state: DecoderState, need_weights: bool = False
    ) -> tuple[Tensor, DecoderState, dict[str, Tensor]]:
        """One decoder step: prev_tokens [B] (BOS first) -> logits [B, V], new state,
        {slot: [B, L, H, Tk]} for this step when asked for, else {}."""


def beam_rows(batch: int, beam: int, device: torch.device | str | None = None) -> Tensor:
    """The rows of ``batch`` sentences repeated ``beam`` times each: [0]*beam + [1]*beam + ..."""
    if beam < 1:
        raise ValueError(f"beam: got {beam}, expected an integer >= 1")
    return torch.arange(batch, device=device).repeat_interleave(beam)


def group_entries(index: Tensor, group: int) -> Tensor:
    """The sentences [M] of a grouped state's ``select(index)`` (``index`` [M * group]).

    Row r of a state with ``group`` rows per sentence belongs to sentence r // group; each
    block of ``group`` entries of ``index`` must hold rows of one sentence (checked unless
    ``seq2seq.runtime.checks.checked(False)``). Raises ValueError.
    """
    if group == 1:
        return index
    if checks_enabled():
        blocks = index.numel() // group
        ok = index.dim() == 1 and index.numel() == blocks * group
        ok = ok and bool(
            (index.view(blocks, group) // group == index[::group, None] // group).all()
        )
        if not ok:
            raise ValueError(
                f"select: a state with {group} rows per sentence must be selected in whole "
                f"groups (blocks of {group} rows of one sentence), got index of shape "
                f"{list(index.shape)}: {index.tolist()[: 2 * group]}..."
            )
    return index[::group] // group


def nonempty_src(src: Tensor) -> Tensor:
    """src [B, S] -> src, or [B, 1] of PAD_ID when S == 0: a batch of empty sources keeps one
    (fully masked) position, so attention has a key axis and the LSTM can be packed."""
    return src if src.shape[1] else src.new_full((src.shape[0], 1), PAD_ID)


def padding_mask(src: Tensor) -> Tensor:
    """src [B, S] token ids -> [B, S] bool, True = real token (not PAD_ID)."""
    return src != PAD_ID


def check_tokens(
    name: str,
    tokens: Tensor,
    ndim: int,
    *,
    max_len: int | None = None,
    vocab_size: int | None = None,
) -> None:
    """Raise ValueError unless ``tokens`` is an integer tensor with ``ndim`` dims.

    With ``max_len`` the time dim (1) may not be longer than it; with ``vocab_size`` every id
    must lie in [0, vocab_size) (one reduction, so call it once per batch, not per step).
    Skipped inside ``seq2seq.runtime.checks.checked(False)`` (a search's later steps).
    """
    if not checks_enabled():
        return
    expected = "[B, T]" if ndim == 2 else "[B]"
    if not isinstance(tokens, Tensor):
        raise ValueError(f"{name} must be a LongTensor {expected}, got {type(tokens).__name__}")
    if tokens.dim() != ndim or tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
        raise ValueError(
            f"{name} must be an integer tensor of shape {expected}, got dtype {tokens.dtype} "
            f"and shape {list(tokens.shape)}"
        )
    if max_len is not None and ndim == 2 and tokens.shape[1] > max_len:
        raise ValueError(
            f"{name} has {tokens.shape[1]} positions (shape {list(tokens.shape)}), more than "
            f"the model's max_positions={max_len}; truncate the input or raise "
            f"model.max_positions"
        )
    if vocab_size is not None and tokens.numel():
        low, high = torch.stack(torch.aminmax(tokens)).tolist()  # one host sync for both
        if low < 0 or high >= vocab_size:
            raise ValueError(
                f"{name} holds token ids from {low} to {high}, expected ids in "
                f"[0, {vocab_size}) (vocabulary size {vocab_size})"
            )


def stack_weights(per_layer: Sequence[Tensor]) -> Tensor:
    """Per-layer weights [B, H, Tq, Tk] -> [B, L, H, Tq, Tk]."""
    return torch.stack(list(per_layer), dim=1)


def stack_step_weights(per_layer: Sequence[Tensor]) -> Tensor:
    """Per-layer weights of one step [B, H, 1, Tk] -> [B, L, H, Tk]."""
    return torch.stack([w.squeeze(2) for w in per_layer], dim=1)


def init_linears(model: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every nn.Linear in ``model`` (Glorot & Bengio,
    2010), attention projections included; embeddings and LSTMs keep their own init."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def init_lstm(lstm: nn.LSTM) -> None:
    """Forget-gate bias 1 (Jozefowicz et al., 2015); PyTorch's uniform init otherwise."""
    hidden = lstm.hidden_size
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if name.startswith("bias_ih"):
                param[hidden : 2 * hidden].fill_(1.0)  # gate order: input, forget, cell, output
            elif name.startswith("bias_hh"):
                param[hidden : 2 * hidden].zero_()


def run_lstm(lstm: nn.LSTM, x: Any, state: tuple[Tensor, Tensor] | None = None) -> Any:
    """``lstm(x, state)``; in float32 where the CPU's bf16 LSTM kernel is missing.

    Under CPU bf16 autocast, ``nn.LSTM`` runs oneDNN's bf16 kernel, which CPUs without AVX-512
    cannot create ("could not create a primitive descriptor for the LSTM forward propagation
    primitive"). There the LSTM runs in float32 with autocast off, its input (a tensor or a
    PackedSequence) and state cast to float32; the rest of the model keeps bf16 autocast.
    """
    if x.data.device.type != "cpu" or not _cpu_bf16_autocast() or _cpu_bf16_lstm_works():
        return lstm(x, state)
    with torch.autocast("cpu", enabled=False):
        if state is not None:
            state = (state[0].float(), state[1].float())
        return lstm(x.float(), state)


def _cpu_bf16_autocast() -> bool:
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4
        dtype = torch.get_autocast_dtype("cpu")
        return torch.is_autocast_enabled("cpu") and dtype == torch.bfloat16
    return torch.is_autocast_cpu_enabled() and torch.get_autocast_cpu_dtype() == torch.bfloat16


@lru_cache(maxsize=1)
def _cpu_bf16_lstm_works() -> bool:
    """Whether ``nn.LSTM`` runs under CPU bf16 autocast on this machine (probed once)."""
    probe = nn.LSTM(4, 4, batch_first=True)
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            probe(torch.zeros(1, 2, 4))
    except RuntimeError:
        return False
    return True
