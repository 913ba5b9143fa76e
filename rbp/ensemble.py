"""An ensemble of other families' models: on each fold, the mean probability of their fold models.

Nothing is trained: each member's fold model was trained on that fold's training part and chose its
epoch on the fold's validation split, so the mean of them is evaluated on the fold's test rows as
any other model is, and its decision threshold comes from their mean on the validation splits.

A fold model of the ensemble is one torch module holding its members' fold models; its inputs are
the members' inputs side by side (`<member>.<input>`), so predicting, registering, scanning and
in-silico mutagenesis treat it as any other family's model.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from rbp.errors import ParamsError, RbpError
from rbp.families import FAMILIES, ModelFamily, family_class, settings_class
from rbp.schema import build
from rbp.train import EpochLog, TrainResult, binding_logit, logits_of, loss_of, predict, probability_of

if TYPE_CHECKING:
    from rbp.fold_ensemble import FoldEnsemble

MANIFEST = "ensemble.json"
EDGE = 1e-12  # probabilities are kept this far from 0 and 1 when the mean is turned back into a logit


@dataclass
class EnsembleParams:
    """The `ensemble` section of the params: the mean probability of other families' fold models, fold by
    fold (nothing is trained)."""

    members: list[str] = field(default_factory=list)  # families to average; [] = every other model of the run
    selection: Literal["validation"] = "validation"
    eval_batch_size: int = 256

    def problems(self, name: str, params: Any) -> Iterator[str]:
        """What is wrong with these settings as the section `name` of the run's `params` (whose notebooks
        must train the members before the ensemble's notebook), one message each."""
        if self.eval_batch_size < 1:
            yield f"{name}.eval_batch_size must be at least 1, got {self.eval_batch_size}"
        families = [family for family in FAMILIES if family != name]
        for member in self.members:
            if member not in families:
                yield f"{name}.members holds {member!r}; members are model families: {', '.join(families)}"
        notebook = FAMILIES[name].notebook
        if notebook in params.notebooks:
            before = params.notebooks[:params.notebooks.index(notebook)]
            trained = [family for family in FAMILIES if FAMILIES[family].notebook in before]
            members = self.members or trained
            missing = [m for m in members if m not in trained]
            if missing or len(members) < 2:
                why = (f"{', '.join(FAMILIES[m].notebook for m in missing)} must come before it" if missing
                       else f"it needs at least two model notebooks before it, got {len(trained)}")
                yield f"notebooks runs {notebook}, which averages models trained earlier in the same run: {why}"


class MeanProbability(nn.Module):
    """Members' models side by side: the logit of the mean of their binding probabilities (in float64,
    so that a confident sequence keeps a finite, ordered logit)."""

    def __init__(self, members: dict[str, nn.Module]):
        super().__init__()
        self.members = nn.ModuleDict(members)

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        logits = []
        for name, model in self.members.items():
            own = {key.split(".", 1)[1]: value for key, value in inputs.items() if key.startswith(f"{name}.")}
            logits.append(binding_logit(logits_of(model, own)))
        return mean_probability_logit(logits)


def mean_probability_logit(member_logits: list[torch.Tensor]) -> torch.Tensor:
    """The logit of the mean of the members' binding probabilities, given their binding logits."""
    mean = torch.stack([torch.sigmoid(logit.double()) for logit in member_logits]).mean(dim=0)
    return torch.logit(mean.clamp(EDGE, 1 - EDGE))


class EnsembleFamily:
    """Combines the fold models of `members` (family name → its cross-validation as a `FoldEnsemble`),
    which the notebook loads from the run's registered models; a saved ensemble brings its members'
    families with it."""

    name = "ensemble"
    amp = False

    def __init__(self, params: EnsembleParams, k: int, members: dict[str, FoldEnsemble] | None = None):
        self.params, self._k = params, k
        members = members or {}
        self.members: dict[str, ModelFamily] = {name: predictor.family for name, predictor in members.items()}
        self.fold_models: dict[str, dict[int, nn.Module]] = {
            name: dict(zip(predictor.folds, predictor.models, strict=True)) for name, predictor in members.items()}

    @property
    def k(self) -> int:
        return max((family.k for family in self.members.values()), default=self._k)

    def _need_members(self) -> None:
        if not self.members:
            raise RbpError("ensemble: no member models; it combines models trained earlier in the same run")

    def encode(self, sequences) -> dict[str, torch.Tensor]:
        self._need_members()
        sequences = list(sequences)
        return {f"{name}.{key}": value for name, family in self.members.items()
                for key, value in family.encode(sequences).items()}

    def combine(self, fold: int) -> MeanProbability:
        """Fold `fold`'s models of every member as one model."""
        self._need_members()
        missing = [name for name, models in self.fold_models.items() if fold not in models]
        if missing:
            raise RbpError(f"ensemble: fold {fold} has no model of {', '.join(missing)}")
        return MeanProbability({name: self.fold_models[name][fold] for name in self.members}).eval()

    def fit(self, fold: int, train: dict, train_labels: torch.Tensor, dev: dict, dev_labels: torch.Tensor,
            device: torch.device, seed: int) -> tuple[MeanProbability, TrainResult]:
        """The members' fold models combined; its validation figures for the record (nothing is chosen)."""
        from sklearn.metrics import roc_auc_score  # here: importing its settings (the params) stays light

        start = time.perf_counter()
        model = self.combine(fold).to(device)
        logits = torch.from_numpy(predict(model, dev, self.params.eval_batch_size, device, logits=True))
        auc = float(roc_auc_score(dev_labels.numpy(), logits.numpy()))
        log = EpochLog(epoch=1, train_loss=float("nan"), val_loss=float(loss_of(logits, dev_labels)), val_auc=auc,
                       lr=float("nan"), seconds=time.perf_counter() - start)
        return model, TrainResult(best_epoch=1, best_val_auc=auc, history=[log],
                                  validation=probability_of(logits).numpy())

    def parts(self, model: MeanProbability) -> list[tuple[ModelFamily, nn.Module]]:
        """The members' families and fold models inside one of its fold models, whose binding logits
        `from_parts` makes its own (`rbp.remembered` scores them one by one)."""
        return [(self.members[name], member) for name, member in model.members.items()]

    from_parts = staticmethod(mean_probability_logit)

    def embeddings(self, model: MeanProbability) -> nn.Module:
        raise RbpError("the ensemble has no single token embedding: Integrated Gradients does not apply to it; "
                       "use ism")

    def tags(self) -> dict[str, str]:
        return {"members": ",".join(self.members)}

    def describe(self) -> str:
        names = ", ".join(FAMILIES[name].label for name in self.members) or "no members yet"
        return (f"Ensemble: on each fold, the mean probability of the fold models of {names} (each trained on "
                "the fold's training part, its epoch or strength chosen on the validation split); nothing more "
                "is trained or chosen.")

    # ------------------------------------------------------------------ the folder
    def save(self, model: MeanProbability, directory: str | Path) -> Path:
        """Each member's model in its family's format under `<member>/`, and what rebuilds the families."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        sections = {}
        for name, member in model.members.items():
            family = self.members[name]
            family.save(member, directory / name)
            sections[name] = {"k": family.k, "params": dataclasses.asdict(family.params)}
        path = directory / MANIFEST
        path.write_text(json.dumps({"family": self.name, "members": sections}, indent=2, default=str) + "\n")
        return path

    def load(self, directory: str | Path) -> MeanProbability:
        """A saved ensemble fold model; the members' families come with it (and serve `encode`)."""
        directory = Path(directory)
        path = directory / MANIFEST
        try:
            manifest = json.loads(path.read_text())
            sections = manifest["members"]
        except (OSError, ValueError, KeyError) as exc:
            raise RbpError(f"{path}: not a saved ensemble ({type(exc).__name__}: {exc})") from None
        members = {}
        for name, saved in sections.items():
            params = dict(saved["params"])
            if params.get("checkpoint"):  # the starting weights need not exist where the model is applied
                params["checkpoint"] = str(directory / name)
            try:
                section = build(settings_class(name), params, f"{path}: members.{name}", ParamsError)
            except KeyError:
                raise RbpError(f"{path}: member family {name!r} is not one this rbp knows") from None
            family = self.members.get(name) or family_class(name)(section, int(saved["k"]))
            self.members[name] = family
            members[name] = family.load(directory / name)
        return MeanProbability(members).eval()
