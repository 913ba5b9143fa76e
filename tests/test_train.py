from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from rbp.cv import run_fold
from rbp.data import Folds, load_labelled, make_folds, write_folds
from rbp.fasta import Record, write_fasta
from rbp.lstm import LSTMFamily, LSTMParams
from rbp.optim import EarlyStopping, make_schedule
from rbp.train import TrainingError, TrainParams, train_model

CPU = torch.device("cpu")
TINY = LSTMParams(embedding_dim=16, hidden_size=16, num_layers=1, dense_size=8, optimizer="adam", lr=1e-2,
                  batch_size=32, max_epochs=8, patience=3)


def _separable_folds(tmp_path, n=120, seed=0) -> Folds:
    """Positives carry TGTAAATA at a random place, negatives never do: perfectly separable."""
    rng = np.random.default_rng(seed)

    def background():
        seq = "".join(rng.choice(list("ACG"), size=30))  # no T: the motif cannot arise by chance
        return seq

    pos = []
    for i in range(n):
        seq, at = background(), int(rng.integers(0, 22))
        pos.append(Record(f"p{i}", seq[:at] + "TGTAAATA" + seq[at + 8:]))
    neg = [Record(f"n{i}", background()) for i in range(n)]
    write_fasta(tmp_path / "pos.fa", pos)
    write_fasta(tmp_path / "neg.fa", neg)
    data = load_labelled(tmp_path / "pos.fa", tmp_path / "neg.fa")
    write_folds(data, make_folds(data.table.label, 2, seed=0, val_fraction=0.2), tmp_path / "folds", 3)
    return Folds(tmp_path / "folds")


@pytest.mark.parametrize("mask_fraction", [0.0, 0.15])
def test_loop_learns_a_separable_problem(tmp_path, mask_fraction):
    folds = _separable_folds(tmp_path)
    cfg = replace(TINY, mask_fraction=mask_fraction)
    result = run_fold(LSTMFamily(cfg, 3), folds, 1, cfg, CPU, seed=0, progress=False)
    assert result.metrics["test_auc"] > 0.95
    assert result.training.best_val_auc > 0.95
    assert len(result.predictions) == len(folds.split(1, "test"))
    assert set(result.predictions.columns) == {"id", "label", "probability", "fold"}


def test_same_seed_same_metrics(tmp_path):
    folds = _separable_folds(tmp_path)
    cfg = replace(TINY, max_epochs=2)
    a = run_fold(LSTMFamily(cfg, 3), folds, 2, cfg, CPU, seed=5, progress=False)
    b = run_fold(LSTMFamily(cfg, 3), folds, 2, cfg, CPU, seed=5, progress=False)
    assert a.metrics == b.metrics
    assert [vars(x)["val_auc"] for x in a.training.history] == [vars(x)["val_auc"] for x in b.training.history]
    c = run_fold(LSTMFamily(cfg, 3), folds, 2, cfg, CPU, seed=6, progress=False)
    assert c.predictions.probability.tolist() != a.predictions.probability.tolist()


@pytest.mark.parametrize(
    "scores, patience, min_epochs, best, stopped_at",
    [
        ([0.6, 0.7, 0.65, 0.66, 0.69, 0.5], 3, 0, 2, 5),
        ([0.6, 0.7, 0.7, 0.71, 0.70, 0.70], 2, 0, 4, 6),  # a tie is not an improvement
        ([0.9, 0.5, 0.5, 0.5, 0.5, 0.5], 1, 4, 1, 4),  # min_epochs holds off the stop
        ([0.5, 0.6, 0.7], 5, 0, 3, None),
    ],
)
def test_early_stopping_on_scripted_scores(scores, patience, min_epochs, best, stopped_at):
    stopper, stopped = EarlyStopping(patience, min_epochs), None
    for epoch, score in enumerate(scores, start=1):
        stopper.update(epoch, score)
        if stopper.should_stop(epoch):
            stopped = epoch
            break
    assert (stopper.best_epoch, stopped) == (best, stopped_at)


class _Scripted(nn.Module):
    """Validation AUC is scripted per epoch: it predicts the labels with a quality set from outside."""

    def __init__(self, qualities):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.qualities = qualities
        self.epoch = 0

    def forward(self, x, y):
        if not self.training:
            q = self.qualities[self.epoch - 1]
            noise = torch.linspace(-1, 1, len(y))[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
            return q * (y.float() - 0.5) + (1 - q) * noise + self.w * 0
        return self.w * x.float()


def test_loop_restores_the_best_validation_epoch():
    qualities = [0.2, 0.9, 0.5, 0.4, 0.3, 0.3]
    model = _Scripted(qualities)
    y = torch.tensor([0, 1] * 20)
    data = {"x": torch.ones(40), "y": y}
    cfg = TrainParams(max_epochs=6, patience=3, optimizer="sgd", lr=0.1, batch_size=8)

    weights = {}

    def tick(log):
        weights[log.epoch] = float(model.w)
        model.epoch = log.epoch + 1

    model.epoch = 1
    with torch.no_grad():
        model.w.fill_(0.0)
    result = train_model(model, data, y, data, y, cfg, CPU, seed=0, on_epoch=tick, progress=False)
    aucs = [log.val_auc for log in result.history]
    assert result.best_epoch == int(np.argmax(aucs)) + 1 == 2
    assert len(result.history) == 5 and result.stopped_early
    assert len(set(weights.values())) == 5  # the weights moved every epoch ...
    assert float(model.w) == weights[2]  # ... and those of the best validation epoch came back


class _SharedClock(_Scripted):
    """_Scripted whose epoch is shared with copies of it (the moving average is a copy), and which
    records the weight that every training step starts from."""

    clock = 1

    @property
    def epoch(self):
        return type(self).clock

    @epoch.setter
    def epoch(self, value):
        type(self).clock = value

    def forward(self, x, y):
        if self.training:
            self.seen.append(float(self.w))
        return super().forward(x, y)


def test_moving_average_of_the_weights_is_validated_and_restored():
    qualities = [0.2, 0.9, 0.5, 0.4, 0.3, 0.3]
    y = torch.tensor([0, 1] * 20)
    data = {"x": torch.ones(40), "y": y}
    cfg = TrainParams(max_epochs=6, patience=3, optimizer="sgd", lr=0.1, batch_size=8)

    def train(decay):
        model = _SharedClock(qualities)
        model.seen = []
        model.epoch = 1

        def tick(log):
            model.epoch = log.epoch + 1

        result = train_model(model, data, y, data, y, replace(cfg, ema_decay=decay), CPU, seed=0, on_epoch=tick,
                             progress=False)
        return model, result

    plain, plain_result = train(None)
    averaged, result = train(0.9)
    assert result.best_epoch == plain_result.best_epoch == 2
    # Raw weights after each of the first 2 epochs' 10 steps; the average starts at the first of them.
    after_step = plain.seen[1:11]
    ema = after_step[0]
    for w in after_step[1:]:
        ema = 0.9 * ema + 0.1 * w
    assert float(averaged.w) == pytest.approx(ema, rel=1e-5)
    assert float(averaged.w) != pytest.approx(float(plain.w), rel=1e-3)  # not the raw weights of epoch 2


class _NaN(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, input_ids):
        return self.w * float("nan") * input_ids[:, 0].float()


def test_nan_loss_names_fold_and_epoch():
    ids = torch.ones(16, 4, dtype=torch.long)
    labels = torch.tensor([0, 1] * 8)
    with pytest.raises(TrainingError, match="lstm fold 3: the training loss became nan in epoch 1"):
        train_model(_NaN(), {"input_ids": ids}, labels, {"input_ids": ids}, labels, TrainParams(), CPU,
                     seed=0, name="lstm fold 3", progress=False)


COS = [0.5 * (1 + np.cos(np.pi * p)) for p in (0, 0.25, 0.5, 0.75)]


@pytest.mark.parametrize("schedule, expected", [("constant", [0.5, 1, 1, 1, 1, 1]),
                                                ("linear", [0.5, 1, 1, 0.75, 0.5, 0.25]),
                                                ("cosine", [0.5, 1, *COS])])
def test_schedules_warm_up_then_decay(schedule, expected):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_schedule(opt, TrainParams(schedule=schedule, warmup_fraction=1 / 3), total_steps=6)
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx(expected)


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_dnabert_checkpoint_fine_tunes_on_a_separable_problem(tmp_path, ema_decay):
    from rbp.dnabert import DNABERTFamily, DNABERTParams
    from tests.dnabert_layout import write_dnabert_checkpoint

    folds = _separable_folds(tmp_path)
    checkpoint = write_dnabert_checkpoint(tmp_path / "dnabert", k=3, hidden=32, layers=2, heads=2)
    cfg = DNABERTParams(checkpoint=str(checkpoint), lr=1e-3, batch_size=16, max_epochs=6, patience=6,
                        warmup_fraction=0.1, ema_decay=ema_decay)
    family = DNABERTFamily(cfg, 3)
    result = run_fold(family, folds, 1, cfg, CPU, seed=0, progress=False)
    assert result.metrics["test_auc"] > 0.95, result.training.history


def test_a_run_away_training_is_flagged():
    from rbp.cv import divergence
    from rbp.train import EpochLog, TrainResult

    def result(losses, auc=0.49):
        return TrainResult(best_epoch=1, best_val_auc=auc,
                           history=[EpochLog(i + 1, loss, loss, auc, 1e6, 1.0) for i, loss in enumerate(losses)])

    message = divergence(result([0.69, 3e5, 8e11]), fold=2)
    assert message.startswith("fold 2: training diverged (training loss 0.69 in epoch 1, 8e+11 in epoch 3")
    assert "best validation AUC 0.490" in message and "lower the learning rate" in message
    assert divergence(result([0.69, 0.5, 0.4], auc=0.9), fold=1) is None
    assert divergence(result([0.69]), fold=1) is None
