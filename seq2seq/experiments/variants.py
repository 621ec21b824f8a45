"""The variants of a comparison: one config file each, checked before anything runs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seq2seq.config import Config, ConfigError, ModelConfig, load_config, parse_duration


class CompareError(ValueError):
    """A comparison that cannot run as asked: the message names the argument or variant."""


@dataclass(frozen=True)
class Variant:
    """One config of a comparison."""

    name: str  # the config file's stem: the variant's name in the report
    config_path: Path
    config: Config  # with the comparison's overrides applied
    overrides: tuple[str, ...]  # the --set items every training of this variant receives
    run_dir: Path  # OUT/runs/<name>


@dataclass
class Comparison:
    """What a comparison produced: one result dict per variant, and the files written."""

    variants: list[Variant]
    results: list[dict[str, Any]]
    out_dir: Path


def budget_seconds(max_time: str) -> float:
    """Seconds of a ``--max-time`` value such as ``20m`` (CompareError when malformed)."""
    try:
        return parse_duration(max_time)
    except ConfigError as e:
        raise CompareError(f"--max-time: {e}") from None


def plan_variants(
    config_paths: Sequence[str | os.PathLike[str]],
    *,
    out_dir: str | os.PathLike[str],
    max_time: str,
    overrides: Sequence[str] = (),
) -> list[Variant]:
    """Loads and validates every config (with ``overrides`` and ``train.max_time=max_time``).

    Raises CompareError for no configs, two configs with the same file stem (their run
    directories would collide), a ``--set train.max_time`` (the budget is ``--max-time``), a
    bad ``--max-time`` or a config without ``data.test``; ConfigError for a missing or invalid
    config file.
    """
    budget_seconds(max_time)
    if not config_paths:
        raise CompareError("no configs given: expected one config file per variant")
    for item in overrides:
        if item.split("=", 1)[0].strip() == "train.max_time":
            raise CompareError(f"--set {item}: the time budget of every variant is --max-time")
    stems: dict[str, Path] = {}
    for path in map(Path, config_paths):
        if path.stem in stems:
            raise CompareError(
                f"configs {stems[path.stem]} and {path} have the same name {path.stem!r}; "
                "variants are named after their config files and need distinct names"
            )
        stems[path.stem] = path
    full_overrides = (*overrides, f"train.max_time={max_time}", "train.quiet=true")
    variants = []
    for name, path in stems.items():
        cfg = load_config(path, full_overrides)
        if cfg.data.test is None:
            raise CompareError(
                f"{path}: data.test is not set; compare evaluates every variant on its test set"
            )
        _check_data_files(cfg, path)
        variants.append(
            Variant(
                name=name,
                config_path=path,
                config=cfg,
                overrides=full_overrides,
                run_dir=Path(out_dir) / "runs" / name,
            )
        )
    return variants


def _check_data_files(cfg: Config, path: Path) -> None:
    """Every corpus file exists: a missing one fails now, not after the variants before it."""
    for split in ("train", "valid", "test"):
        corpus = getattr(cfg.data, split)
        for side in ("src", "tgt"):
            name = getattr(corpus, side)
            if not Path(name).is_file():
                raise CompareError(f"{path}: data.{split}.{side} file {name} does not exist")


def describe_model(model: ModelConfig) -> str:
    """``"rnn (bahdanau): cross additive"`` or ``"transformer: enc-self scaled_dot/4h, ..."``."""
    slots = model.attention
    if model.arch == "rnn":
        style = model.rnn.style
        if style == "luong" and model.rnn.input_feeding:
            style += ", input feeding"
        return f"rnn ({style}): cross {_slot(slots.cross)}"
    return (
        f"{model.arch}: enc-self {_slot(slots.encoder_self)}, "
        f"dec-self {_slot(slots.decoder_self)}, cross {_slot(slots.cross)}"
    )


def _slot(attention) -> str:
    return attention.type if attention.heads is None else f"{attention.type}/{attention.heads}h"
