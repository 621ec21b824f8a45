"""Prepacked linear layers: the same products as F.linear, the same parameters and state."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seq2seq.runtime.packed import MIN_PACKED, PackedLinear, pack_linears, packing_available

pytestmark = pytest.mark.skipif(not packing_available(), reason="torch built without oneDNN")


class Projection(nn.Module):
    """A linear map that says so (as the models' output projection does), tied to a table."""

    def __init__(self, table: nn.Embedding) -> None:
        super().__init__()
        self.weight, self.bias = table.weight, nn.Parameter(torch.randn(table.num_embeddings))

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def linear_weights(self):
        return self.weight, self.bias


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Embedding(600, 512)  # 307,200 >= MIN_PACKED
        self.big = nn.Linear(256, 1024)  # exactly MIN_PACKED
        self.small = nn.Linear(256, 256)  # left to F.linear
        self.nobias = nn.Linear(1024, 512, bias=False)
        self.out = Projection(self.table)

    def forward(self, x):  # x [*, 256]
        return self.out(self.nobias(self.big(x)) + torch.cat([self.small(x)] * 2, dim=-1))


@pytest.mark.parametrize("shape", [(7, 256), (3, 5, 256), (0, 256), (1, 1, 256)])
def test_packed_linear_equals_f_linear(shape):
    gen = torch.Generator().manual_seed(0)
    layer = nn.Linear(256, 1024)
    x = torch.randn(shape, generator=gen)
    packed = PackedLinear(layer.weight, layer.bias)
    with torch.inference_mode():
        got = packed(x)
        expected = F.linear(x.double(), layer.weight.double(), layer.bias.double())  # reference
    assert got.shape == (*shape[:-1], 1024) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), expected, atol=1e-4, rtol=1e-5)


def test_pack_linears_replaces_the_large_maps_and_keeps_parameters_and_state():
    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(2, 3, 256)
    with torch.inference_mode():
        before = net(x)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    params = sum(p.numel() for p in net.parameters())
    assert net.big.weight.numel() == MIN_PACKED
    assert pack_linears(net) == 3
    assert isinstance(net.big, PackedLinear) and isinstance(net.nobias, PackedLinear)
    assert isinstance(net.out, PackedLinear) and isinstance(net.small, nn.Linear)
    assert net.out.weight is net.table.weight  # still tied to the embedding
    assert net.state_dict().keys() == state.keys()
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    assert sum(p.numel() for p in net.parameters()) == params
    with torch.inference_mode():
        torch.testing.assert_close(net(x), before, atol=1e-4, rtol=1e-5)
    assert pack_linears(net) == 0  # already packed


def test_only_float32_cpu_weights_are_packed():
    net = nn.Sequential(nn.Linear(256, 1024).double())
    assert pack_linears(net) == 0 and isinstance(net[0], nn.Linear)
    with pytest.raises(ValueError, match="float32 CPU weights"):
        PackedLinear(net[0].weight, net[0].bias)
