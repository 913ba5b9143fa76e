"""A trained cross-validation as one model to apply: the K fold models as an ensemble (mean
probability), the k-mer encoding and window length they were trained with, and a decision threshold
chosen on the folds' validation splits. Saved as a plain folder; no MLflow here (`rbp.tracking.flavour` wraps
the folder as an MLflow model).

Folder layout: `predictor.json` (family, params, window, threshold, figures) and one folder per fold
model, `fold-<i>/`, in the family's own checkpoint format.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.special import expit
from sklearn.metrics import roc_curve

from rbp import remembered
from rbp.errors import RbpError
from rbp.families import FAMILIES, ModelFamily, make_family
from rbp.params import Params, ParamsError, from_dict
from rbp.train import binding_logit, predict, probability_of, resolve_device

MANIFEST = "predictor.json"
CHUNK = 4096  # windows scored together (of many sequences, or of one long one): memory stays flat
THRESHOLD_CRITERION = ("Youden's J (sensitivity + specificity - 1), maximised over the fold models' "
                       "predictions on their own validation splits, pooled; test folds are never used")
NO_SELECTION_CRITERION = ("0.5, the class of the larger probability (as DNABERT calls): trained without a "
                          "validation split (selection: final), so nothing was chosen")
FORMAT = 1


def choose_threshold(labels, probabilities) -> float:
    """The probability cut that maximises sensitivity + specificity - 1 (a call is `p >= cut`)."""
    labels, probabilities = np.asarray(labels), np.asarray(probabilities, dtype=float)
    if len(set(labels.tolist())) < 2:
        raise RbpError("choosing a threshold needs validation predictions of both classes")
    fpr, tpr, cuts = roc_curve(labels, probabilities)
    best = int(np.argmax((tpr - fpr)[1:])) + 1  # the first cut (inf) calls nothing
    return float(cuts[best])


@dataclass
class FoldEnsemble:
    family: ModelFamily
    params: Params
    models: list[torch.nn.Module]
    folds: list[int]
    window: int  # nt: the training sequences' length (their median when they vary)
    threshold: float
    info: dict = field(default_factory=dict)  # dataset, run ids, CV figures: what the model card shows
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int = 512
    source: str = ""  # where it was loaded from (a model URI or folder); not saved

    @property
    def k(self) -> int:
        return self.family.k

    @property
    def threshold_criterion(self) -> str:
        section = getattr(self.params, self.family.name, None)
        return NO_SELECTION_CRITERION if getattr(section, "selection", "") == "final" else THRESHOLD_CRITERION

    @property
    def label(self) -> str:
        return FAMILIES[self.family.name].label

    def to(self, device: str | torch.device) -> FoldEnsemble:
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.models = [m.to(self.device).eval() for m in self.models]
        return self

    def fold_models(self, fold: int | None = None) -> list[torch.nn.Module]:
        """Every fold model, or the one of `fold` (as numbered in training)."""
        if fold is None:
            return self.models
        if fold not in self.folds:
            raise RbpError(f"fold {fold}: this model holds folds {', '.join(map(str, self.folds))}")
        return [self.models[self.folds.index(fold)]]

    def probabilities(self, sequences: Sequence[str], fold: int | None = None, logits: bool = False) -> np.ndarray:
        """P(binding site) of each sequence as it is (upper-case DNA): the mean over the fold models,
        or one fold model's (`fold`, as numbered in training). `logits`: the binding logit instead
        (what attributions read). Scored `batch_size` at a time, each batch encoded once for every
        fold model, sequences of like length together (less padding; the order given is kept)."""
        models = self.fold_models(fold)
        if remembered.active():  # each fold model's logits looked up where it scored the sequence before
            outputs = remembered.logits(self.family, models, sequences, self.batch_size, self.device)
            return np.mean([(binding_logit(out).float() if logits else probability_of(out)).numpy()
                            for out in outputs], axis=0).astype(float)
        lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
        order = np.argsort(lengths, kind="stable")
        out = np.zeros(len(sequences))
        for begin in range(0, len(sequences), self.batch_size):
            rows = order[begin:begin + self.batch_size]
            inputs = self.family.encode([sequences[i] for i in rows])
            with torch.inference_mode():
                out[rows] = np.mean([predict(m, inputs, self.batch_size, self.device, logits=logits)
                                     for m in models], axis=0)
        return out

    def scans(self, sequences: Iterable[str], stride: int = 1, fold: int | None = None
              ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Starts and probabilities of the windows that scan each sequence (the training length, every
        `stride` nt, the last flush with the end; a sequence no longer than the window is one window,
        itself), in the order given. The windows of many sequences are scored together, about `CHUNK`
        at a time; a long sequence's a chunk at a time (memory stays flat in its length), or all in
        one pass by a family that scans (`window_logits`: the CNN)."""
        from rbp.scan import window_starts

        pending: list[tuple[np.ndarray, list[str]]] = []  # sequences waiting: starts, windows
        waiting = 0  # their windows

        def flush():
            nonlocal waiting
            windows = [w for _, part in pending for w in part]
            scores = np.split(self.probabilities(windows, fold), np.cumsum([len(p) for _, p in pending])[:-1])
            yield from zip([starts for starts, _ in pending], scores, strict=True)
            pending.clear()
            waiting = 0

        scanner = hasattr(self.family, "window_logits")  # fully convolutional: every window in one pass
        for sequence in sequences:
            starts = window_starts(len(sequence), self.window, stride)
            if len(starts) <= CHUNK and not (scanner and len(starts) > self.batch_size):
                windows = [sequence] if len(sequence) <= self.window else \
                    [sequence[s:s + self.window] for s in starts.tolist()]
                pending.append((starts, windows))
                waiting += len(starts)
                if waiting >= CHUNK:
                    yield from flush()
                continue
            if pending:
                yield from flush()
            yield starts, self._long_scan(sequence, starts, fold, scanner)
        if pending:
            yield from flush()

    def _long_scan(self, sequence: str, starts: np.ndarray, fold: int | None, scanner: bool) -> np.ndarray:
        if scanner:
            models = self.fold_models(fold)
            with torch.inference_mode():
                every = [self.family.window_logits(m, sequence, self.window) for m in models]
            if remembered.active():
                windows = [sequence[s:s + self.window] for s in starts.tolist()]
                for model, scores in zip(models, every, strict=True):
                    remembered.remember(model, windows, scores[starts])
            return np.mean([expit(scores) for scores in every], axis=0)[starts]
        return np.concatenate([self.probabilities([sequence[s:s + self.window] for s in part], fold)
                               for part in np.array_split(starts, -(-len(starts) // CHUNK))])

    def window_scores(self, sequence: str, stride: int = 1, fold: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Starts and probabilities of the windows that scan `sequence` (see `scans`)."""
        return next(self.scans([sequence], stride, fold))

    def score(self, sequences: Sequence[str], fold: int | None = None) -> np.ndarray:
        """One probability per sequence: a sequence up to the window's length as it is; a longer one
        gets its best window's (stride 1)."""
        return np.array([scores.max() for _, scores in self.scans(sequences, 1, fold)])

    def table(self, sequences: Sequence[str], fold: int | None = None) -> pd.DataFrame:
        """probability and call (1 at or above the threshold) per sequence."""
        probability = self.score(sequences, fold)
        return pd.DataFrame({"probability": probability, "call": (probability >= self.threshold).astype(int)})

    # ------------------------------------------------------------------ the folder
    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for fold, model in zip(self.folds, self.models, strict=True):
            self.family.save(model, directory / f"fold-{fold}")
        manifest = {"format": FORMAT, "family": self.family.name, "k": self.k, "window": self.window,
                    "threshold": self.threshold, "threshold_criterion": self.threshold_criterion,
                    "folds": self.folds, "params": self.params.to_dict(), "info": self.info}
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> FoldEnsemble:
        directory = Path(directory)
        path = directory / MANIFEST
        if not path.is_file():
            raise RbpError(f"{directory}: not a saved rbp model (no {MANIFEST})")
        try:
            manifest = json.loads(path.read_text())
            name, params = manifest["family"], manifest["params"]
            if name not in FAMILIES:
                raise RbpError(f"{path}: model family {name!r} is not one this rbp knows ({', '.join(FAMILIES)})")
            section = params.get(name, {})
            if section.get("checkpoint"):  # the starting weights need not exist where the model is applied
                section["checkpoint"] = str(directory / f"fold-{manifest['folds'][0]}")
            checked = from_dict(params, str(path))
            family = make_family(name, checked)
            models = [family.load(directory / f"fold-{fold}") for fold in manifest["folds"]]
            return cls(family, checked, models, list(manifest["folds"]),
                       int(manifest["window"]), float(manifest["threshold"]), manifest.get("info", {})).to(device)
        except (KeyError, TypeError, ValueError, ParamsError) as exc:
            raise RbpError(f"{path}: not a readable rbp model ({type(exc).__name__}: {exc})") from None

    def with_k(self, k: int | None) -> FoldEnsemble:
        """Refuse a k the model was not trained with (the k-mer encoding is fixed); a k-mer regression
        takes any size it counts."""
        sizes = getattr(self.family, "kmer_sizes", (self.k,))
        if k is not None and k not in sizes:
            trained = (f"{sizes[0]}- to {sizes[-1]}-mers" if len(sizes) > 1 else
                       "single nucleotides (one-hot), not k-mers" if self.k == 1 else f"{self.k}-mers")
            raise RbpError(f"k = {k} was given, but this model was trained on {trained}; leave k out")
        return self


def training_window(folds) -> int:
    """The window a model scans with: the cut length when the run cut one, else the training
    sequences' median length."""
    if folds.length:
        return int(folds.length)
    return int(np.median(folds.sequences.sequence.str.len()))


def from_cross_validation(family: ModelFamily, params: Params, folds, results, info: dict | None = None
                          ) -> FoldEnsemble:
    """The FoldEnsemble of a finished cross-validation (`rbp.cv.FoldResult`s with validation predictions)."""
    parts = [r.val_predictions for r in results if r.val_predictions is not None]
    if parts:
        validation = pd.concat(parts, ignore_index=True)
        threshold = choose_threshold(validation.label, validation.probability)
    else:  # selection: final keeps no validation split: the class of the larger probability, as DNABERT calls
        threshold = 0.5
    return FoldEnsemble(family, dataclasses.replace(params), [r.model for r in results], [r.fold for r in results],
                     training_window(folds), threshold, dict(info or {}))
