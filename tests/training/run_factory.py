"""Tiny corpora, configs and trained run directories for tests (training, translate, plot).

    from run_factory import make_tiny_run          # from tests in tests/training
    run_dir = make_tiny_run(tmp_path)              # a trained run: config.yaml, spm.model, best.pt,
                                                   # last.pt, metrics.jsonl, train.log, curves.png

Tests elsewhere can load this file by path::

    spec = importlib.util.spec_from_file_location(
        "run_factory", Path(__file__).parents[1] / "training" / "run_factory.py")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seq2seq.config import Config, config_from_dict
from seq2seq.demo.corpus import generate_demo

TINY_MODELS: dict[str, dict[str, Any]] = {
    "transformer": {
        "arch": "transformer",
        "embed_dim": 32,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "dropout": 0.1,
        "max_positions": 64,
        "attention": {
            slot: {"type": "scaled_dot", "heads": 2}
            for slot in ("cross", "encoder_self", "decoder_self")
        },
        "transformer": {"ffn_dim": 64},
    },
    "rnn": {
        "arch": "rnn",
        "embed_dim": 32,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "dropout": 0.1,
        "max_positions": 64,
        "attention": {"cross": {"type": "additive"}},
        "rnn": {"hidden_dim": 32},
    },
}


def write_tiny_corpus(
    data_dir: Path, *, n_train: int = 240, n_valid: int = 12, seed: int = 1
) -> Path:
    """The generated demo corpus in miniature, with gold alignments (``valid.align``)."""
    generate_demo(data_dir, seed=seed, n_train=n_train, n_valid=n_valid, n_test=n_valid)
    return data_dir


def tiny_config_dict(data_dir: Path, arch: str = "transformer") -> dict[str, Any]:
    """A config that trains in a second or two: 32-wide one-layer model, 100-piece vocabulary."""
    data_dir = Path(data_dir)
    return {
        "data": {
            "train": {"src": str(data_dir / "train.en"), "tgt": str(data_dir / "train.de")},
            "valid": {"src": str(data_dir / "valid.en"), "tgt": str(data_dir / "valid.de")},
            "test": {"src": str(data_dir / "test.en"), "tgt": str(data_dir / "test.de")},
            "max_len": 60,
            "tokenizer": {"vocab_size": 100},
        },
        "model": TINY_MODELS[arch],
        "train": {
            "device": "cpu",
            "precision": "fp32",
            "threads": 1,
            "batch_tokens": 200,
            "lr": 3e-3,
            "warmup_steps": 2,
            "max_steps": 6,
            "validate_every": 3,
            "log_every": 2,
            "valid_max_sentences": 6,
            "num_alignment_plots": 1,
            "quiet": True,
        },
        "decode": {"beam": 2, "batch_size": 8, "max_len_offset": 5},
    }


def tiny_config(data_dir: Path, arch: str = "transformer", overrides: Sequence[str] = ()) -> Config:
    return config_from_dict(tiny_config_dict(data_dir, arch), overrides)


def make_tiny_run(
    tmp_path: Path, *, arch: str = "transformer", overrides: Sequence[str] = ()
) -> Path:
    """Trains a tiny model into ``tmp_path / "run"`` (corpus in ``tmp_path / "data"``)."""
    from seq2seq.training.trainer import train

    data_dir = write_tiny_corpus(Path(tmp_path) / "data")
    run_dir = Path(tmp_path) / "run"
    train(tiny_config(data_dir, arch, overrides), run_dir)
    return run_dir
