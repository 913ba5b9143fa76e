import pytest
import torch
from torch import nn

from rbp.dropout import Dropout, draw_on_cpu_fast, kept


def test_kept_keeps_a_share_of_one_minus_p_and_zeroes_the_rest():
    torch.manual_seed(0)
    mask = kept(torch.empty(400_000), 0.3)
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert mask.mean().item() == pytest.approx(0.7, abs=0.005)


def test_dropout_scales_what_it_keeps_and_is_seeded_like_torch():
    x = torch.randn(64, 300)
    layer = Dropout(0.25).train()
    torch.manual_seed(3)
    a = layer(x)
    torch.manual_seed(3)
    b = layer(x)
    torch.testing.assert_close(a, b)
    dropped = a == 0
    assert 0.2 < dropped.float().mean().item() < 0.3
    torch.testing.assert_close(a[~dropped], x[~dropped] / 0.75)
    x.requires_grad_(True)
    layer(x).sum().backward()
    assert set((x.grad * 0.75).round(decimals=4).unique().tolist()) == {0.0, 1.0}


def test_dropout_evaluating_or_at_the_edges_is_torchs():
    x = torch.randn(8, 10)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))


def test_draw_on_cpu_fast_swaps_every_dropout_and_leaves_the_state_dict_alone():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2), nn.Sequential(nn.Dropout(0.4), nn.Linear(4, 1)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    draw_on_cpu_fast(model)
    assert [type(m) for m in model.modules() if isinstance(m, nn.Dropout)] == [Dropout, Dropout]
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.2, 0.4]
    assert before.keys() == model.state_dict().keys()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
