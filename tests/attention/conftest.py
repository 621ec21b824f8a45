"""Shared fixtures: every attention spec of the registry, plain and multi-head."""

from __future__ import annotations

import pytest
import torch

from seq2seq.attention import ATTENTION_TYPES, HEADS_REQUIRED, build_attention

# The formula each registered name must compute, written here independently of the package.
FORMULAS = {
    "dot": "dot",
    "scaled_dot": "scaled_dot",
    "general": "general",
    "multiplicative": "general",
    "additive": "additive",
    "qkv": "scaled_dot",
}
HEADS = 2


def all_specs() -> list[dict]:
    specs = []
    for name in ATTENTION_TYPES:
        if name not in HEADS_REQUIRED:
            specs.append({"type": name})
        specs.append({"type": name, "heads": HEADS})
    return specs


def spec_id(spec: dict) -> str:
    return spec["type"] + (f"-h{spec['heads']}" if "heads" in spec else "")


def pytest_generate_tests(metafunc):
    if "spec" in metafunc.fixturenames:
        metafunc.parametrize("spec", all_specs(), ids=spec_id)


def dims_for(spec: dict, self_attention: bool = False) -> tuple[int, int, int]:
    """(query_dim, key_dim, value_dim): all different where the type allows it."""
    if self_attention:
        return 8, 8, 8
    plain_needs_equal = "heads" not in spec and FORMULAS[spec["type"]] in ("dot", "scaled_dot")
    return 8, (8 if plain_needs_equal else 6), 5


@pytest.fixture
def make():
    """make(spec, dtype=float64, self_attention=False, **spec_extra) -> (module, dims)."""

    def _make(spec, dtype=torch.float64, self_attention=False, **extra):
        torch.manual_seed(0)
        dims = dims_for(spec, self_attention)
        module = build_attention({**spec, **extra}, *dims).to(dtype).eval()
        return module, dims

    return _make


def random_inputs(dims, batch=2, tq=3, tk=4, dtype=torch.float64, seed=1):
    """query [B, Tq, Dq], keys [B, Tk, Dk], values [B, Tk, Dv]."""
    gen = torch.Generator().manual_seed(seed)
    dq, dk, dv = dims
    return tuple(
        torch.randn(batch, t, d, generator=gen, dtype=dtype)
        for t, d in ((tq, dq), (tk, dk), (tk, dv))
    )


def random_mask(batch, tq, tk, seed=2, empty_row=(0, 1)):
    """Bool mask [B, Tq, Tk] with about half the keys allowed, one fully masked row."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(batch, tq, tk, generator=gen) < 0.5
    mask[..., 0] |= ~mask.any(-1)  # every row but the chosen one keeps a key
    if empty_row is not None:
        mask[empty_row] = False
    return mask


@pytest.fixture
def inputs():
    return random_inputs


@pytest.fixture
def masks():
    return random_mask


@pytest.fixture
def formula():
    """formula(spec) -> the score formula name the spec must compute."""
    return lambda spec: FORMULAS[spec["type"]]
