"""Key-side precomputation: AttentionMemory, incremental decoding, beam selection, no state."""

from __future__ import annotations

import pytest
import torch

from seq2seq.attention import AttentionMemory, causal_mask

BOTH_PATHS = pytest.mark.parametrize("need_weights", [True, False], ids=["explicit", "fused"])


def test_memory_layout(spec, make, inputs):
    module, dims = make(spec)
    _, k, v = inputs(dims, batch=2, tk=4)
    memory = module.memory(k, v)
    assert isinstance(memory, AttentionMemory)
    if "heads" in spec:
        head_dim = dims[0] // spec["heads"]
        assert memory.keys.shape[:3] == (2, spec["heads"], 4)
        assert memory.values.shape == (2, spec["heads"], 4, head_dim)
    else:
        assert memory.keys.shape[:2] == (2, 4) and memory.keys.dim() == 3
        assert torch.equal(memory.values, v)


@BOTH_PATHS
def test_memory_equals_direct_call(spec, make, inputs, masks, need_weights):
    module, dims = make(spec)
    q, k, v = inputs(dims, batch=2, tq=3, tk=4)
    mask = masks(2, 3, 4)
    direct = module(q, k, v, mask=mask, need_weights=need_weights)
    cached = module(q, mask=mask, need_weights=need_weights, memory=module.memory(k, v))
    torch.testing.assert_close(cached[0], direct[0], atol=0.0, rtol=0.0)
    if need_weights:
        torch.testing.assert_close(cached[1], direct[1], atol=0.0, rtol=0.0)


def test_memory_skips_key_side_work(spec, make, inputs):
    module, dims = make(spec)
    q, k, v = inputs(dims)
    memory = module.memory(k, v)
    calls = []
    for child in module.modules():
        if isinstance(child, torch.nn.Linear) and child is not module.out_proj:
            child.register_forward_hook(lambda mod, args, out: calls.append(mod))
    module(q, memory=memory, need_weights=True)
    query_side = {module.q_proj, getattr(module.score, "query_proj", None)}
    assert all(mod in query_side for mod in calls)  # no K/V or key-side score projection


@BOTH_PATHS
def test_incremental_self_attention_equals_full(spec, make, need_weights):
    module, dims = make(spec, self_attention=True)
    x = torch.randn(2, 5, dims[0], dtype=torch.float64)
    full, full_weights = module(x, x, x, mask=causal_mask(5), need_weights=True)
    memory = None
    for t in range(5):
        x_t = x[:, t : t + 1]  # [B, 1, D]
        step_memory = module.memory(x_t, x_t)
        memory = step_memory if memory is None else memory.extend(step_memory)
        assert memory.keys.shape[-2] == t + 1
        context, weights = module(x_t, memory=memory, need_weights=need_weights)
        torch.testing.assert_close(context, full[:, t : t + 1], atol=1e-12, rtol=1e-10)
        if need_weights:
            torch.testing.assert_close(weights, full_weights[:, :, t : t + 1, : t + 1])


@BOTH_PATHS
def test_select_reorders_the_batch(spec, make, inputs, masks, need_weights):
    module, dims = make(spec)
    q, k, v = inputs(dims, batch=3, tq=2, tk=4)
    index = torch.tensor([2, 2, 0, 1])  # beam-style: repeat and reorder
    memory = module.memory(k, v).select(index)
    assert memory.keys.shape[0] == 4
    got, _ = module(q[index], memory=memory, need_weights=need_weights)
    expected, _ = module(q[index], k[index], v[index], need_weights=need_weights)
    torch.testing.assert_close(got, expected, atol=0.0, rtol=0.0)


def test_extend_rejects_mismatched_memory():
    memory = AttentionMemory(torch.zeros(2, 4, 3, 8), torch.zeros(2, 4, 3, 8))
    other = AttentionMemory(torch.zeros(2, 2, 1, 8), torch.zeros(2, 2, 1, 8))
    with pytest.raises(ValueError, match=r"keys of shape \[2, 2, 1, 8\] cannot be appended"):
        memory.extend(other)
    longer = memory.extend(AttentionMemory(torch.ones(2, 4, 2, 8), torch.ones(2, 4, 2, 8)))
    assert longer.keys.shape == (2, 4, 5, 8) and (longer.values[:, :, 3:] == 1).all()


def _attributes(module: torch.nn.Module) -> dict:
    """Every attribute of the module, dict-valued ones (parameters, submodules...) copied."""
    return {name: dict(v) if isinstance(v, dict) else v for name, v in vars(module).items()}


def test_module_keeps_no_state_between_calls(spec, make, inputs, masks):
    module, dims = make(spec)
    q, k, v = inputs(dims)
    before = _attributes(module)
    state = {name: t.clone() for name, t in module.state_dict().items()}
    first = module(q, k, v, mask=masks(2, 3, 4), need_weights=True)
    other = inputs(dims, seed=7)
    module(*other, need_weights=True)
    module.memory(*other[1:])
    again = module(q, k, v, mask=masks(2, 3, 4), need_weights=True)
    torch.testing.assert_close(again, first, atol=0.0, rtol=0.0)
    after = _attributes(module)
    assert after.keys() == before.keys()
    for name, value in before.items():
        if isinstance(value, dict):
            assert value.keys() == after[name].keys(), name
            assert all(after[name][key] is item for key, item in value.items()), name
        else:
            assert after[name] is value, name
    assert list(module.buffers()) == []
    for name, tensor in module.state_dict().items():
        assert torch.equal(tensor, state[name])
