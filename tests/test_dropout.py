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


def _qkv(seed=0, batch=3, heads=2, length=7, dim=4):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, length, dim, generator=generator) for _ in range(3)]


def test_attention_without_dropout_is_sdpa_and_with_it_drops_weights_as_dropout_does():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from rbp.dropout import attention

    q, k, v = _qkv()
    mask = torch.ones(3, 1, 7, 7, dtype=torch.bool)
    mask[0, ..., 5:] = False  # the first sequence's last two positions are padding
    module = nn.Module()
    module.is_causal = False
    expected, _ = sdpa_attention_forward(module, q, k, v, mask, dropout=0.0, scaling=0.5)
    got, _ = attention(module, q, k, v, mask, dropout=0.0, scaling=0.5)  # a layer evaluating passes 0
    torch.testing.assert_close(got, expected)

    torch.manual_seed(5)
    got, _ = attention(module, q, k, v, mask, dropout=0.25, scaling=0.5)
    torch.manual_seed(5)
    weights = torch.softmax((q @ k.transpose(-2, -1) * 0.5).masked_fill(~mask, float("-inf")), dim=-1)
    weights = weights * kept(weights, 0.25) / 0.75
    torch.testing.assert_close(got, (weights @ v).transpose(1, 2))
    dropped = weights[1:] == 0  # where no key is padding, only dropout zeroes a weight
    assert 0.15 < dropped.float().mean().item() < 0.35


def test_draw_on_cpu_fast_gives_a_bert_the_attention_and_saves_none_of_it(tmp_path):
    from rbp.dnabert import scratch_model
    from rbp.dropout import ATTENTION

    torch.manual_seed(0)
    model = draw_on_cpu_fast(scratch_model(3, "small"))
    assert model.config._attn_implementation == ATTENTION
    ids = torch.randint(5, 69, (4, 12))
    mask = torch.ones_like(ids)
    mask[0, 9:] = 0
    model.train()
    model(input_ids=ids, attention_mask=mask).logits.sum().backward()  # trains through it
    model.eval()
    with torch.no_grad():
        ours = model(input_ids=ids, attention_mask=mask).logits
        model.set_attn_implementation("sdpa")
        torch.testing.assert_close(ours, model(input_ids=ids, attention_mask=mask).logits)
    model.set_attn_implementation(ATTENTION)
    model.save_pretrained(tmp_path)
    assert ATTENTION not in (tmp_path / "config.json").read_text()  # a checkpoint loads without rbp
    eager = draw_on_cpu_fast(scratch_model(3, "small", attn_implementation="eager"))
    assert eager.config._attn_implementation == "eager"  # attention maps need it: left alone
