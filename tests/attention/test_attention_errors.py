"""Building from specs (mappings and config objects) and the errors for bad input."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from seq2seq.attention import (
    ATTENTION_TYPES,
    AdditiveScore,
    Attention,
    AttentionMemory,
    GeneralScore,
    ScaledDotScore,
    build_attention,
)


@dataclasses.dataclass
class FakeAttentionConfig:  # same fields as the project's AttentionConfig
    type: str = "scaled_dot"
    heads: int | None = None
    dropout: float = 0.0
    hidden_dim: int | None = None


def test_registry_names_and_aliases():
    assert set(ATTENTION_TYPES) >= {
        "dot", "scaled_dot", "general", "additive", "multiplicative", "qkv"
    }  # fmt: skip
    assert isinstance(build_attention({"type": "multiplicative"}, 8, 6).score, GeneralScore)
    qkv = build_attention({"type": "qkv", "heads": 4}, 16, 16)
    assert isinstance(qkv.score, ScaledDotScore) and qkv.num_heads == 4


def test_dims_and_attributes():
    plain = build_attention({"type": "additive", "hidden_dim": 7}, 8, 6, 5)
    assert isinstance(plain, Attention)
    assert (plain.output_dim, plain.num_heads, plain.score.hidden_dim) == (5, 1, 7)
    assert build_attention({"type": "additive"}, 8, 6).score.hidden_dim == 6
    multi = build_attention({"type": "additive", "heads": 2}, 8, 6, 5)
    assert (multi.output_dim, multi.num_heads, multi.score.hidden_dim) == (8, 2, 4)
    assert build_attention({"type": "general"}, 8, 6).output_dim == 6  # value_dim = key_dim


def test_config_objects_work_like_mappings():
    torch.manual_seed(0)
    from_object = build_attention(FakeAttentionConfig("additive", 2, 0.1, 3), 8, 8)
    torch.manual_seed(0)
    from_mapping = build_attention(
        {"type": "additive", "heads": 2, "dropout": 0.1, "hidden_dim": 3}, 8, 8
    )
    assert isinstance(from_object.score, AdditiveScore) and from_object.dropout == 0.1
    for a, b in zip(
        from_object.state_dict().values(), from_mapping.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    namespace = build_attention(SimpleNamespace(type="dot"), 4, 4)  # missing fields: defaults
    assert namespace.num_heads == 1 and namespace.dropout == 0.0


@pytest.mark.parametrize(
    ("bad_spec", "dims", "message"),
    [
        ({"type": "dott"}, (8, 8), r"'dott' is not an attention type \(did you mean 'dot'\?\); "
         r"choose one of 'dot', 'scaled_dot', 'general', 'additive', 'multiplicative', 'qkv'"),
        ({"type": "qkv"}, (8, 8), r"'qkv' exists only in multi-head form and needs heads"),
        ({"type": "scaled_dot", "heads": 3}, (8, 8), r"heads: 3 does not divide query_dim \(8\)"),
        ({"type": "dot"}, (8, 6), r"needs query_dim == key_dim, got query_dim=8 and key_dim=6"),
        ({"type": "dot", "hidden_dim": 4}, (8, 8), r"hidden_dim=4 only applies to additive"),
        ({"type": "dot", "head": 2}, (8, 8), r"unknown key\(s\) \['head'\]; allowed keys"),
        ({"heads": 2}, (8, 8), r"has no 'type' key"),
        ({"type": "dot", "heads": 0}, (8, 8), r"heads must be a positive integer or None, got 0"),
        ({"type": "dot", "heads": True}, (8, 8), r"heads must be a positive integer"),
        ({"type": "dot", "dropout": 1.0}, (8, 8), r"dropout must be in \[0, 1\), got 1.0"),
        ({"type": "dot"}, (0, 8), r"query_dim must be a positive integer, got 0"),
        ({"type": ["dot"]}, (8, 8), r"\[.dot.\] is not an attention type; choose one of"),
    ],
)  # fmt: skip
def test_bad_specs(bad_spec, dims, message):
    with pytest.raises(ValueError, match=message):
        build_attention(bad_spec, *dims)


def test_bad_spec_object():
    with pytest.raises(
        ValueError, match=r"mapping or a config object with a 'type' field, got int"
    ):
        build_attention(3, 8, 8)


@pytest.mark.parametrize("heads", [None, 2])
def test_bad_tensor_shapes(heads):
    attn = build_attention({"type": "general", "heads": heads}, 8, 6, 5)
    q, k, v = torch.randn(2, 3, 8), torch.randn(2, 4, 6), torch.randn(2, 4, 5)
    cases = [
        ((q[0], k, v), r"query has shape \[3, 8\], expected \[B, Tq, 8\]"),
        ((torch.randn(2, 3, 7), k, v), r"query has shape \[2, 3, 7\], expected \[B, Tq, 8\]"),
        ((q, torch.randn(2, 4, 8), v), r"keys has shape \[2, 4, 8\], expected \[2, Tk, 6\]"),
        ((q, k[:1], v[:1]), r"keys has shape \[1, 4, 6\], expected \[2, Tk, 6\]"),
        ((q, k, v[:, :3]), r"values has shape \[2, 3, 5\], expected \[2, 4, 5\]"),
        ((q, k, torch.randn(2, 4, 6)), r"values has shape \[2, 4, 6\], expected \[2, 4, 5\]"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            attn(*args)


def test_bad_masks():
    attn = build_attention({"type": "scaled_dot"}, 8, 8)
    q, k = torch.randn(2, 3, 8), torch.randn(2, 4, 8)
    with pytest.raises(ValueError, match=r"mask must be a bool tensor .* got torch.float32"):
        attn(q, k, k, mask=torch.ones(2, 3, 4))
    padding = torch.ones(2, 4, dtype=torch.bool)  # [B, Tk] is not broadcastable to [B, Tq, Tk]
    with pytest.raises(ValueError, match=r"mask has shape \[2, 4\], expected \[2, 3, 4\].*"
                                         r"mask\[:, None, :\]"):  # fmt: skip
        attn(q, k, k, mask=padding)
    with pytest.raises(ValueError, match=r"mask has shape \[2, 1, 3, 4\]"):
        attn(q, k, k, mask=torch.ones(2, 1, 3, 4, dtype=torch.bool))


def test_bad_memory_arguments():
    attn = build_attention({"type": "additive", "heads": 2}, 8, 8)
    q, k = torch.randn(2, 3, 8), torch.randn(2, 4, 8)
    memory = attn.memory(k, k)
    with pytest.raises(ValueError, match=r"either keys and values, or memory; got keys=True, "
                                         r"values=True, memory=True"):  # fmt: skip
        attn(q, k, k, memory=memory)
    with pytest.raises(ValueError, match=r"keys=True, values=False, memory=False"):
        attn(q, k)
    wrong = AttentionMemory(memory.keys[:, :1], memory.values)
    with pytest.raises(ValueError, match=r"memory.keys has shape \[2, 1, 4, 4\], "
                                         r"expected \[2, 2, Tk, 4\]"):  # fmt: skip
        attn(q, memory=wrong)
    plain = build_attention({"type": "additive"}, 8, 8)
    with pytest.raises(ValueError, match=r"memory.values has shape \[2, 2, 4, 4\], "
                                         r"expected \[2, 4, 8\]"):  # fmt: skip
        plain(q, memory=AttentionMemory(plain.memory(k, k).keys, memory.values))
