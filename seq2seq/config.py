"""Configuration: typed dataclasses (the schema, holding every default), YAML loading and saving.

A config file has four sections, ``data``, ``model``, ``train`` and ``decode``, mapping one to one
onto the dataclasses below. Everything is checked before any work starts: unknown keys (with the
nearest valid key), types, ranges, choices, the attention registry and cross-field constraints.
``--set a.b.c=value`` overrides (values read as YAML) go through the same checks.

    cfg = load_config("configs/multi30k/transformer.yaml", ["train.max_steps=100"])
    cfg.model.attention.cross.type      # "scaled_dot"
    save_config(cfg, "runs/x/config.yaml")

Relative data paths are kept as written and resolved against the current working directory.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from seq2seq.fileio import write_atomic
from seq2seq.schema import ConfigError, bounds, build, join, option, set_override

__all__ = [
    "AttentionConfig",
    "AttentionSlots",
    "Config",
    "ConfigError",
    "CorpusConfig",
    "DataConfig",
    "DecodeConfig",
    "ModelConfig",
    "RNNConfig",
    "TokenizerConfig",
    "TrainConfig",
    "TransformerConfig",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "parse_duration",
    "save_config",
]


@dataclass
class CorpusConfig:
    """A parallel corpus: two files (plain or .gz), one sentence per line, aligned by line."""

    src: str
    tgt: str


@dataclass
class TokenizerConfig:
    """Sentencepiece subword model, trained once per run on the training data."""

    type: Literal["unigram", "bpe"] = "unigram"
    vocab_size: int = option(8000, ge=16)  # joint: one shared vocabulary; else per side
    joint: bool = True
    character_coverage: float = option(1.0, gt=0.9, le=1.0)
    sample_sentences: int = option(1_000_000, ge=1)  # lines sampled (by seed) to train it on


@dataclass
class DataConfig:
    train: CorpusConfig
    valid: CorpusConfig
    test: CorpusConfig | None = None
    src_lang: str = "en"
    tgt_lang: str = "de"
    max_len: int = option(100, ge=1)  # subword tokens per side; longer training pairs are dropped
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    workers: int | None = option(None, ge=1)  # encoding processes of `prepare` (None: the cores)


@dataclass
class AttentionConfig:
    """One attention slot; ``type`` is checked against ``seq2seq.attention.ATTENTION_TYPES``."""

    type: str = "scaled_dot"
    heads: int | None = option(None, ge=1)  # None: plain score on raw q, k, v (no projections)
    dropout: float = option(0.0, ge=0.0, lt=1.0)
    hidden_dim: int | None = option(None, ge=1)  # additive score's hidden size (default: key dim)


@dataclass
class AttentionSlots:
    cross: AttentionConfig = field(default_factory=AttentionConfig)
    encoder_self: AttentionConfig = field(default_factory=AttentionConfig)
    decoder_self: AttentionConfig = field(default_factory=AttentionConfig)


@dataclass
class RNNConfig:
    hidden_dim: int = option(512, ge=2)  # decoder LSTM; bidirectional encoder: hidden_dim // 2 each
    style: Literal["bahdanau", "luong"] = "bahdanau"
    input_feeding: bool = True  # luong only
    bridge: Literal["linear", "none"] = "linear"  # encoder final states -> decoder initial state


@dataclass
class TransformerConfig:
    ffn_dim: int = option(1024, ge=1)
    norm: Literal["pre", "post"] = "pre"
    positions: Literal["sinusoidal", "learned"] = "sinusoidal"
    activation: Literal["relu", "gelu"] = "relu"


@dataclass
class ModelConfig:
    arch: Literal["rnn", "transformer"] = "transformer"
    embed_dim: int = option(256, ge=1)  # transformer: d_model
    encoder_layers: int = option(3, ge=1)
    decoder_layers: int = option(3, ge=1)
    dropout: float = option(0.1, ge=0.0, lt=1.0)
    share_embeddings: bool = False  # one embedding for src and tgt (needs a joint vocabulary)
    tie_output: bool = True  # output projection tied to the tgt embedding
    max_positions: int = option(256, ge=1)  # longest sequence the model accepts
    attention: AttentionSlots = field(default_factory=AttentionSlots)
    rnn: RNNConfig = field(default_factory=RNNConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)


@dataclass
class TrainConfig:
    seed: int = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    threads: int | None = option(None, ge=1)
    tf32: bool = True  # CUDA float32 matrix products in TF32 (precision fp32 only)
    dist_timeout: str = "2h"  # torchrun: how long processes wait in a collective (rank 0 validates)
    batch_tokens: int = option(4096, ge=1)  # target tokens per batch
    accum_steps: int = option(1, ge=1)
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = option(5e-4, gt=0.0)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98], metadata=bounds(ge=0, lt=1))
    weight_decay: float = option(0.0, ge=0.0)
    schedule: Literal["noam", "linear", "constant", "plateau"] = "noam"
    warmup_steps: int = option(1000, ge=0)  # linear warmup, in every schedule (0: none)
    plateau_factor: float = option(0.5, gt=0.0, lt=1.0)
    plateau_patience: int = option(2, ge=0)
    label_smoothing: float = option(0.1, ge=0.0, lt=1.0)
    clip_norm: float | None = option(1.0, gt=0.0)
    max_steps: int | None = option(20000, ge=1)
    max_epochs: int | None = option(None, ge=1)
    max_time: str | None = None  # wall-clock budget: "20m", "1h30m", "90s", "1.5h"
    validate_every: int = option(500, ge=1)
    log_every: int = option(50, ge=1)
    valid_max_sentences: int | None = option(None, ge=1)  # BLEU on the first N (None: all)
    early_stopping_metric: Literal["bleu", "loss"] = "bleu"
    patience: int | None = option(None, ge=1)
    keep_checkpoints: int = option(1, ge=0)  # last N step checkpoints besides best.pt/last.pt
    num_alignment_plots: int = option(3, ge=0)  # fixed valid sentences plotted per validation
    quiet: bool = False


@dataclass
class DecodeConfig:
    beam: int = option(5, ge=1)
    n_best: int = option(1, ge=1)
    length_penalty: float = option(0.6, ge=0.0)
    max_len_ratio: float = option(1.5, gt=0.0)  # output limit: ratio * src_len + offset
    max_len_offset: int = option(10, ge=0)
    batch_size: int = option(64, ge=1)
    # Beam search stops when no live hypothesis can win at any reachable length ("exact"), or
    # at its next token ("early": sooner with length_penalty > 0; the same at 0).
    stopping: Literal["exact", "early"] = "exact"


@dataclass
class Config:
    data: DataConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)


_DURATION = re.compile(
    r"(?:(?P<h>\d+(?:\.\d*)?|\.\d+)h)?(?:(?P<m>\d+(?:\.\d*)?|\.\d+)m)?(?:(?P<s>\d+(?:\.\d*)?|\.\d+)s)?"
)


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``"20m"``, ``"1h30m"``, ``"90s"`` or ``"1.5h"``."""
    match = _DURATION.fullmatch(text.replace(" ", "").lower()) if isinstance(text, str) else None
    if match is None or not any(match.groupdict().values()):
        raise ConfigError(
            f"invalid duration {text!r}: expected hours/minutes/seconds such as "
            "'20m', '1h30m', '90s' or '1.5h'"
        )
    parts = {unit: float(v) for unit, v in match.groupdict().items() if v is not None}
    seconds = 3600 * parts.get("h", 0.0) + 60 * parts.get("m", 0.0) + parts.get("s", 0.0)
    if seconds <= 0:
        raise ConfigError(f"invalid duration {text!r}: it must be longer than 0 seconds")
    if not math.isfinite(seconds):
        raise ConfigError(f"invalid duration {text!r}: too long to be a number of seconds")
    return seconds


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Plain nested dict of ``cfg``; ``config_from_dict(config_to_dict(cfg)) == cfg``."""
    return dataclasses.asdict(cfg)


def config_from_dict(
    d: Mapping[str, Any], overrides: Sequence[str] = (), source: str = "<dict>"
) -> Config:
    """Validated Config from a plain dict (as read from YAML) and ``a.b.c=value`` overrides."""
    return _load(d, overrides, source, origins={})


def load_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Config:
    """Validated Config from a YAML file plus ``a.b.c=value`` overrides.

    Errors name the file and line of the offending key (or the ``--set`` item).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config path is a directory, expected a YAML file: {path}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 text ({exc.reason})") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: e.g. a date such as 2024-13-45
        raise ConfigError(_yaml_error_text(path, exc)) from None
    finally:
        loader.dispose()
    _check_duplicate_keys(node, path)
    origins = {key: f"{path}:{line}" for key, line in _key_lines(node, "").items()}
    return _load(data, overrides, str(path), origins)


def save_config(cfg: Config, path: str | os.PathLike[str]) -> None:
    """Write ``cfg`` as YAML atomically (temporary file in the same directory, then rename)."""
    path = Path(path)
    write_atomic(yaml.safe_dump(config_to_dict(cfg), sort_keys=False, allow_unicode=True), path)


def _yaml_error_text(path: Path, exc: yaml.YAMLError | ValueError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return f"{path}: invalid YAML: {problem}"
    return f"{path}:{mark.line + 1}:{mark.column + 1}: invalid YAML: {problem}"


def _key_lines(node: yaml.Node | None, prefix: str) -> dict[str, int]:
    """1-based line of every mapping key in a composed YAML document, by dotted key path."""
    lines: dict[str, int] = {}
    for section, mapping in _mappings(node, prefix):
        for key_node, _ in mapping.value:
            if isinstance(key_node, yaml.ScalarNode):
                lines[join(section, key_node.value)] = key_node.start_mark.line + 1
    return lines


def _mappings(
    node: yaml.Node | None, prefix: str, above: frozenset[int] = frozenset()
) -> Iterator[tuple[str, yaml.MappingNode]]:
    """(dotted path, node) of every mapping at or below ``node``; an alias that refers to an
    enclosing node (a cycle, which YAML allows) is not followed."""
    if id(node) in above:
        return
    above = above | {id(node)}
    if isinstance(node, yaml.MappingNode):
        yield prefix, node
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                yield from _mappings(value_node, join(prefix, key_node.value), above)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _mappings(item, f"{prefix}[{i}]", above)


def _check_duplicate_keys(node: yaml.Node | None, source: Path) -> None:
    """Refuses a mapping that repeats a key (YAML would silently keep the last one)."""
    for section, mapping in _mappings(node, ""):
        seen: dict[str, int] = {}
        for key_node, _ in mapping.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue  # "<<" merges a mapping in and may appear more than once
            line = key_node.start_mark.line + 1
            if key_node.value in seen:
                key = join(section, key_node.value)
                raise ConfigError(
                    f"{source}:{line}: duplicate key {key!r}, also at line "
                    f"{seen[key_node.value]}; a key may appear once in a section (merge the two)",
                    key=key,
                )
            seen[key_node.value] = line


def _load(data: Any, overrides: Sequence[str], source: str, origins: dict[str, str]) -> Config:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: expected a mapping with sections data, model, train, decode; "
            f"got {type(data).__name__}"
        )
    data = copy.deepcopy(dict(data))
    for item in overrides:
        key = set_override(Config, data, item)
        origins = {k: v for k, v in origins.items() if k != key and not k.startswith(key + ".")}
        origins[key] = f"--set {item}"
    try:
        cfg = build(Config, data)
        _check(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{_origin(exc.key, origins, source)}: {exc}", key=exc.key) from None
    return cfg


def _origin(key: str | None, origins: Mapping[str, str], source: str) -> str:
    """Where ``key`` (or its nearest enclosing section) was written."""
    parts = re.sub(r"\[\d+\]", "", key or "").split(".")
    for n in range(len(parts), 0, -1):
        where = origins.get(".".join(parts[:n]))
        if where is not None:
            return where
    return source


def _check(cfg: Config) -> None:
    """Constraints between fields, after every field passed its own checks."""
    _check_attention(cfg.model)
    model, train = cfg.model, cfg.train
    if model.share_embeddings and not cfg.data.tokenizer.joint:
        raise ConfigError(
            "model.share_embeddings: true needs one vocabulary for both sides, "
            "but data.tokenizer.joint is false (set it to true or share_embeddings to false)",
            key="model.share_embeddings",
        )
    if model.arch == "rnn" and model.rnn.hidden_dim % 2:
        raise ConfigError(
            f"model.rnn.hidden_dim: {model.rnn.hidden_dim} must be even (the bidirectional "
            "encoder has hidden_dim // 2 units per direction)",
            key="model.rnn.hidden_dim",
        )
    if cfg.data.max_len + 2 > model.max_positions:
        raise ConfigError(
            f"data.max_len: {cfg.data.max_len} leaves no room for BOS/EOS within "
            f"model.max_positions ({model.max_positions}); allowed: data.max_len <= "
            f"{model.max_positions - 2}",
            key="data.max_len",
        )
    if len(train.betas) != 2:
        raise ConfigError(
            f"train.betas: expected 2 values [beta1, beta2], got {train.betas!r}", key="train.betas"
        )
    if train.max_steps is None and train.max_epochs is None and train.max_time is None:
        raise ConfigError(
            "train: no stopping criterion; set at least one of train.max_steps, "
            "train.max_epochs, train.max_time",
            key="train.max_steps",
        )
    if train.schedule == "linear" and train.max_steps is None and train.max_time is None:
        raise ConfigError(
            "train.schedule: 'linear' decays to zero at the end of the budget and needs "
            "train.max_steps or train.max_time",
            key="train.schedule",
        )
    try:
        parse_duration(train.dist_timeout)
    except ConfigError as exc:
        raise ConfigError(f"train.dist_timeout: {exc}", key="train.dist_timeout") from None
    if train.max_time is not None:
        try:
            parse_duration(train.max_time)
        except ConfigError as exc:
            raise ConfigError(f"train.max_time: {exc}", key="train.max_time") from None
    if cfg.decode.n_best > cfg.decode.beam:
        raise ConfigError(
            f"decode.n_best: {cfg.decode.n_best} is larger than decode.beam "
            f"({cfg.decode.beam}); allowed: n_best <= beam",
            key="decode.n_best",
        )


def _check_attention(model: ModelConfig) -> None:
    """Every slot's spec through the registry's own check, the used ones against their width."""
    from seq2seq.attention import AttentionSpecError, check_spec

    # Multi-head queries are d_model wide in the transformer, hidden_dim wide in the LSTM decoder.
    used = ("encoder_self", "decoder_self", "cross") if model.arch == "transformer" else ("cross",)
    width = "embed_dim" if model.arch == "transformer" else "rnn.hidden_dim"
    query_dim = model.embed_dim if model.arch == "transformer" else model.rnn.hidden_dim
    for slot in ("cross", "encoder_self", "decoder_self"):
        key = f"model.attention.{slot}"
        try:
            check_spec(
                getattr(model.attention, slot),
                query_dim if slot in used else None,
                key=key,
                width=f"model.{width}",
            )
        except AttentionSpecError as exc:
            raise ConfigError(str(exc), key=f"{key}.{exc.field}" if exc.field else key) from None
