"""Every shipped config in configs/ loads, names its command, and builds a working model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seq2seq.config import load_config
from seq2seq.models import build_model
from seq2seq.vocab import BOS_ID, PAD_ID

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "configs").rglob("*.yaml"))
VOCAB = 100


def test_the_multi30k_recipes_are_shipped():
    names = {Path(c).name for c in CONFIGS if c.startswith("configs/multi30k/")}
    assert {"rnn_bahdanau.yaml", "rnn_luong.yaml", "transformer.yaml"} <= names


@pytest.mark.parametrize("name", CONFIGS)
def test_config_starts_with_the_command_that_runs_it(name):
    first_line = (ROOT / name).read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith(f"# seq2seq train {name}"), first_line


@pytest.mark.parametrize("name", CONFIGS)
def test_config_builds_a_model_that_runs(name):
    cfg = load_config(ROOT / name)
    torch.manual_seed(0)
    model = build_model(cfg.model, VOCAB, VOCAB).eval()
    src = torch.randint(4, VOCAB, (2, 7))
    src[1, 5:] = PAD_ID
    tgt_in = torch.randint(4, VOCAB, (2, 5))
    tgt_in[:, 0] = BOS_ID
    with torch.no_grad():
        logits, weights = model(src, tgt_in, need_weights=True)
    assert logits.shape == (2, 5, VOCAB)
    assert torch.isfinite(logits).all()
    assert set(weights) == set(model.slots)
    cross = weights["cross"]  # [B, L, H, T, S]
    heads = cfg.model.attention.cross.heads or 1
    assert cross.shape[0] == 2 and cross.shape[2:] == (heads, 5, 7)
    assert torch.allclose(cross.sum(-1), torch.ones(()), atol=1e-5)
    assert cross[1, ..., 5:].abs().max() == 0  # padded source positions get no attention


@pytest.mark.parametrize("name", [c for c in CONFIGS if c.startswith("configs/multi30k/")])
def test_multi30k_configs_read_the_files_of_their_language_pair(name):
    cfg = load_config(ROOT / name)
    for split in ("train", "valid", "test"):
        files = getattr(cfg.data, split)
        assert Path(files.src).name.endswith(f".{cfg.data.src_lang}.gz"), (split, files.src)
        assert Path(files.tgt).name.endswith(f".{cfg.data.tgt_lang}.gz"), (split, files.tgt)
    pair = f"en-{cfg.data.tgt_lang}"
    assert (pair == "en-de") == (f".{pair}." not in name), "en-de is the unsuffixed default"
