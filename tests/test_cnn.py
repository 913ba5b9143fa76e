"""The CNN: one-hot nucleotides, masked max pooling, and its one-pass scan of long sequences."""

import numpy as np
import pytest
import torch

from rbp.cnn import CNNFamily, CNNParams, ConvClassifier
from rbp.fold_ensemble import FoldEnsemble
from rbp.kmers import MASK_ID, PAD_ID, encode_nucleotides
from rbp.train import predict

RNG = np.random.default_rng(0)


def _sequence(n: int) -> str:
    return "".join(RNG.choice(list("ACGT"), n))


@pytest.fixture
def family():
    return CNNFamily(CNNParams(channels=[6, 5], kernel_size=[7, 3], dilation=[1, 2], dense_size=4), k=3)


def test_nucleotides_are_one_token_each_in_the_vocabulary_scheme():
    ids = encode_nucleotides(["ATCGN", "AC"], min_width=6)
    assert ids.tolist() == [[5, 6, 7, 8, 1, 0], [5, 7, 0, 0, 0, 0]]


def test_the_one_hot_encoding_is_fixed_and_blank_for_padding_unknown_and_mask():
    model = ConvClassifier()
    table = model.embedding.weight
    assert not table.requires_grad
    assert torch.equal(table[5:9], torch.eye(4)) and not table[[0, 1, MASK_ID]].any()


@pytest.mark.parametrize("layers", [dict(channels=[16], kernel_size=[12], dilation=[1]),
                                    dict(channels=[6, 5], kernel_size=[7, 3], dilation=[2, 1]),
                                    dict(channels=[4], kernel_size=[16], dilation=[3]),
                                    dict(channels=[4], kernel_size=[1], dilation=[1])])
def test_the_first_layer_read_from_tables_equals_the_convolution(layers):
    torch.manual_seed(5)
    model = ConvClassifier(**layers, dense_size=4).eval()
    sequences = ["".join(RNG.choice(list("ACGTN"), RNG.integers(20, 90))) for _ in range(50)] + ["ACGU"]
    ids = torch.from_numpy(encode_nucleotides(sequences, min_width=model.receptive_field))
    ids[0, 3] = MASK_ID
    convolved = model.convolutions[0](model.embedding(ids).transpose(1, 2)).detach()
    with torch.no_grad():
        looked_up = model.first_layer_lookup(ids)
        logits = model(ids)
    torch.testing.assert_close(looked_up, convolved, atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, model(ids).detach(), atol=1e-5, rtol=0)  # with gradients: the convolution


def test_the_tables_follow_the_weights():
    torch.manual_seed(6)
    model = ConvClassifier(channels=[8], kernel_size=[6], dilation=[1], dense_size=4).eval()
    ids = torch.from_numpy(encode_nucleotides([_sequence(40)], min_width=6))
    with torch.no_grad():
        before = model.first_layer_lookup(ids)
        model.convolutions[0].weight.mul_(2)
        model.convolutions[0].bias.zero_()
        after = model.first_layer_lookup(ids)
    torch.testing.assert_close(after, model.convolutions[0](model.embedding(ids).transpose(1, 2)).detach(),
                               atol=1e-5, rtol=0)
    assert not torch.allclose(before, after)


def test_padding_does_not_change_a_sequences_logit(family):
    torch.manual_seed(0)
    model = family.build().eval()
    short, long = _sequence(30), _sequence(70)
    alone = predict(model, family.encode([short]), logits=True)
    beside = predict(model, family.encode([short, long]), logits=True)
    assert beside[0] == pytest.approx(alone[0], abs=1e-6)


def test_in_training_too_padding_leaves_a_sequences_logit_and_gradient_alone():
    torch.manual_seed(0)
    model = ConvClassifier(channels=[6, 5], kernel_size=[7, 3], dilation=[1, 2], dropout=0.0, dense_size=4).train()
    encode = CNNFamily(CNNParams(), k=3).encode
    short, long = _sequence(30), _sequence(70)

    def logit_and_gradient(sequences):
        model.zero_grad()
        logit = model(**encode(sequences))[0]
        logit.backward()
        return logit.detach(), model.convolutions[0].weight.grad.clone()

    alone = logit_and_gradient([short])  # no padding: nothing masked
    beside = logit_and_gradient([short, long])  # padded: its positions past the end masked
    torch.testing.assert_close(beside[0], alone[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(beside[1], alone[1], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("channels, kernel_size, dilation", [([6], [7], [1]), ([6, 5], [7, 3], [1, 2])])
def test_training_pools_as_relu_then_dropout_then_the_maximum_would(channels, kernel_size, dilation):
    """The training forward takes the maximum before the last ReLU and dropout's scaling: the same logit and
    gradient as the layers applied in their order, with the dropout mask it draws."""
    torch.manual_seed(0)
    model = ConvClassifier(channels, kernel_size, dilation, dropout=0.4, dense_size=4).train()
    ids = CNNFamily(CNNParams(kernel_size=kernel_size, dilation=dilation), k=3).encode(
        [_sequence(40), _sequence(33), _sequence(25)])["input_ids"]

    def in_order():
        x = model.embedding(ids).transpose(1, 2)
        for layer in list(model.convolutions)[:-1]:
            x = layer(x)  # ... the last ReLU
        keep = torch.rand(x.shape) >= 0.4  # the draw the forward makes
        x = x * keep / 0.6
        x = x.masked_fill(model._beyond((ids != PAD_ID).sum(1), x), float("-inf"))
        return model.head(x.max(dim=2).values).squeeze(-1)

    results = []
    for forward in (lambda: model(input_ids=ids), in_order):
        torch.manual_seed(7)
        model.zero_grad()
        logits = forward()
        logits.sum().backward()
        results.append((logits.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]))
    (fused, fused_grads), (ordered, ordered_grads) = results
    assert len(set(fused.tolist())) == 3  # dropout and the head's mask drew the same values in both
    torch.testing.assert_close(fused, ordered, atol=1e-6, rtol=1e-5)
    for a, b in zip(fused_grads, ordered_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert fused_grads[0].abs().sum() > 0


def test_one_pass_scan_equals_scoring_each_window(family):
    torch.manual_seed(1)
    model = family.build().eval()
    sequence, window = _sequence(400), 41
    windows = [sequence[s:s + window] for s in range(len(sequence) - window + 1)]
    one_by_one = predict(model, family.encode(windows), logits=True)
    scanned = family.window_logits(model, sequence, window)
    assert scanned.shape == (len(windows),)
    np.testing.assert_allclose(scanned, one_by_one, atol=1e-5)


def test_windows_narrower_than_the_filters_scan_as_they_score(family):
    torch.manual_seed(4)
    model = family.build().eval()
    sequence, window = _sequence(60), 9  # the receptive field is 11 nt
    windows = [sequence[s:s + window] for s in range(len(sequence) - window + 1)]
    np.testing.assert_allclose(family.window_logits(model, sequence, window),
                               predict(model, family.encode(windows), logits=True), atol=1e-5)


def test_the_scan_is_the_same_across_chunks(family, monkeypatch):
    torch.manual_seed(2)
    model = family.build().eval()
    sequence = _sequence(300)
    whole = family.window_logits(model, sequence, 50)
    monkeypatch.setattr("rbp.cnn.SCAN_CHUNK", 37)
    np.testing.assert_allclose(family.window_logits(model, sequence, 50), whole, atol=1e-6)


def test_a_predictor_scans_with_the_one_pass(family):
    torch.manual_seed(3)
    models = [family.build().eval(), family.build().eval()]
    predictor = FoldEnsemble(family, None, models, [1, 2], window=41, threshold=0.5)
    sequence = _sequence(200)
    starts, scores = predictor.window_scores(sequence, stride=7)
    expected = predictor.probabilities([sequence[s:s + 41] for s in starts])
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    assert starts[-1] == len(sequence) - 41


def test_a_sequence_shorter_than_the_receptive_field_still_scores(family):
    model = family.build().eval()
    assert np.isfinite(predict(model, family.encode(["ACG"]))).all()


def test_every_single_change_of_a_window_in_one_pass_equals_scoring_each_changed_window(family, monkeypatch):
    torch.manual_seed(1)
    one_layer = CNNFamily(CNNParams(channels=[16], kernel_size=[5], dense_size=4), k=3)
    model = one_layer.build().eval()
    windows = [_sequence(30), _sequence(12) + "N" + _sequence(17), _sequence(30)]
    with torch.inference_mode():
        changed, own = one_layer.change_logits(model, windows)
    assert changed.shape == (3, 30, 4)
    np.testing.assert_allclose(own, predict(model, one_layer.encode(windows), logits=True), atol=1e-5)
    for i, window in enumerate(windows):
        each = [window[:p] + b + window[p + 1:] for p in range(30) for b in "ACGT"]
        direct = predict(model, one_layer.encode(each), logits=True).reshape(30, 4)
        np.testing.assert_allclose(changed[i], direct, atol=1e-5)
    monkeypatch.setattr("rbp.cnn.CHANGE_BUDGET", 1)  # a window per pass: the same figures
    with torch.inference_mode():
        one_by_one = one_layer.change_logits(model, windows)
    np.testing.assert_allclose(one_by_one[0], changed, atol=1e-6)
    np.testing.assert_allclose(one_by_one[1], own, atol=1e-6)
    deeper = family.build().eval()  # two layers, dilated: read change by change instead
    assert family.change_logits(deeper, windows) is None
    assert one_layer.change_logits(model, ["ACG"]) is None  # narrower than a filter
