"""The model-family protocol and the registry of families.

A model family is what the CV loop (`rbp.cv`), tracking (`rbp.tracking`), the comparison and the
notebooks know of a model: how to encode sequences into its input tensors, how to get a model for
a fold, how to save and load a trained one, where its token embeddings are (for gradient
attributions), its tags and a one-line description, and whether mixed precision applies to it.
They use nothing else, so a family is free in how it does these.

A fold's model comes one of two ways. A neural family (`TrainedFamily`: DNABERT, the LSTM, the CNN)
`build`s a fresh model that the one training loop (`rbp.train`) trains, choosing its epoch on the
validation split. A fitted family (`FittedFamily`: the k-mer regression, the ensemble) `fit`s the
fold itself from its training and validation rows, choosing what it chooses on validation only.
Either way the fold model is a torch module returning logits from `model(**inputs)`.

A family owns its settings: its module also defines its params section, a dataclass (`FamilySettings`:
a `rbp.train.TrainParams` subclass for a neural family, so the loop's knobs and checks apply to it)
that checks itself; `rbp.params` builds the schema's section `<name>` from the registry.

Adding a family is one module plus one registry entry: write `rbp/<name>.py` with a class that
implements one of the two (constructed as `Family(section_params, k)`) and its settings class, and add
a `FamilyInfo` to `FAMILIES` below (then its section to params/default.yaml and its notebook).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch


@runtime_checkable
class ModelFamily(Protocol):
    name: ClassVar[str]  # the registry key, the `model_family` tag and the params section
    amp: ClassVar[bool]  # train under bf16 autocast on CUDA (never on the CPU)
    k: int  # the size of its tokens: the data's k for k-mer models, 1 for nucleotides

    def encode(self, sequences: Sequence[str]) -> dict[str, torch.Tensor]:
        """Model inputs for upper-case DNA sequences: named tensors with one row per sequence."""

    def save(self, model: torch.nn.Module, directory: str | Path) -> Path:
        """Write a trained model into `directory` so that `load(directory)` gives it back."""

    def load(self, directory: str | Path) -> torch.nn.Module:
        """A model saved by `save`, in eval mode on the CPU."""

    def embeddings(self, model: torch.nn.Module) -> torch.nn.Module:
        """The layer that embeds the `input_ids` tokens (gradient attributions start there); an
        `RbpError` saying so where there is none."""

    def tags(self) -> dict[str, str]:
        """Tags for its MLflow runs beyond the house tags (e.g. DNABERT's `init`)."""

    def describe(self) -> str:
        """One Markdown sentence for a notebook: what is trained, and how."""


@runtime_checkable
class TrainedFamily(ModelFamily, Protocol):
    def build(self) -> torch.nn.Module:
        """A freshly initialised model (seeded by the caller) for the training loop."""


@runtime_checkable
class FittedFamily(ModelFamily, Protocol):
    def fit(self, fold: int, train: dict[str, torch.Tensor], train_labels: torch.Tensor,
            dev: dict[str, torch.Tensor], dev_labels: torch.Tensor, device: torch.device, seed: int
            ) -> tuple[torch.nn.Module, Any]:
        """Fold `fold`'s model from its training rows, anything it chooses chosen on `dev`; and the
        record of that choice (an `rbp.train.TrainResult`: `best_val_auc`, one `EpochLog`, `selected`
        figures)."""


class FamilySettings(Protocol):
    """A family's params section: a dataclass of plain values (what the schema reads from YAML), with
    what the CV loop reads of every family."""

    selection: str  # validation: choose on the validation split | final (trained families only): no choice
    eval_batch_size: int

    def problems(self, name: str, params: Any) -> Iterator[str]:
        """What is wrong with it as the section `name` of the run's params (an `rbp.params.Params`, for
        checks across sections), one full message each ("cnn.dense_size must be at least 1, got 0")."""


@dataclass(frozen=True)
class FamilyInfo:
    name: str
    label: str  # how tables and figures name it
    implementation: str  # "module:Class", imported only when the family is used
    settings: str  # "module:Class" of its params section (`FamilySettings`)
    notebook: str  # its cross-validation notebook
    preload: tuple[str, ...] = ()  # "module:Name" its models import when built or loaded (see `rbp.kernels`)


FAMILIES: dict[str, FamilyInfo] = {  # in table order
    "dnabert": FamilyInfo("dnabert", "DNABERT", "rbp.dnabert:DNABERTFamily", "rbp.dnabert:DNABERTParams",
                          "02_dnabert_cv", ("transformers:BertConfig", "transformers:BertForSequenceClassification",
                                            "transformers:BertTokenizer")),
    "lstm": FamilyInfo("lstm", "LSTM", "rbp.lstm:LSTMFamily", "rbp.lstm:LSTMParams", "03_lstm_cv"),
    "cnn": FamilyInfo("cnn", "CNN", "rbp.cnn:CNNFamily", "rbp.cnn:CNNParams", "03_cnn_cv"),
    "kmer_lr": FamilyInfo("kmer_lr", "k-mer LR", "rbp.kmer_lr:KmerLRFamily", "rbp.kmer_lr:KmerLRParams",
                          "03_kmer_lr_cv"),
    "ensemble": FamilyInfo("ensemble", "Ensemble", "rbp.ensemble:EnsembleFamily", "rbp.ensemble:EnsembleParams",
                           "03_ensemble_cv"),
}
NOTEBOOK_FAMILY = {info.notebook: name for name, info in FAMILIES.items()}


def family_class(name: str) -> type:
    """The class of family `name` (its module imported now)."""
    return _load(_info(name).implementation)


def settings_class(name: str) -> type:
    """The class of family `name`'s params section (its module imported now)."""
    return _load(_info(name).settings)


def _info(name: str) -> FamilyInfo:
    if name not in FAMILIES:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def _load(where: str) -> type:
    module, cls = where.split(":")
    return getattr(importlib.import_module(module), cls)


CHECKPOINT = "model.pt"  # a torch model of a family, as `save_checkpoint` writes it


def save_checkpoint(family, model: torch.nn.Module, directory: str | Path, **extra) -> Path:
    """`directory`/model.pt: the weights, the model's `config` (what rebuilds it), the family's name
    and params, and `extra` (e.g. the k it encodes); `load_checkpoint` reads it back."""
    import dataclasses

    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CHECKPOINT
    torch.save({"family": family.name, **extra, "config": model.config, "params": dataclasses.asdict(family.params),
                "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}, path)
    return path


def load_checkpoint(family, directory: str | Path, model_class: type) -> tuple[torch.nn.Module, dict, Path]:
    """The model `save_checkpoint` wrote (the folder or its model.pt), in eval mode on the CPU, with
    what was saved beside it and the file; refused when another family wrote it."""
    import torch

    from rbp.errors import RbpError

    path = Path(directory)
    if path.is_dir():
        path = path / CHECKPOINT
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved.get("family") != family.name:
        raise RbpError(f"{path}: not a {FAMILIES[family.name].label} checkpoint (family {saved.get('family')!r})")
    model = model_class(**saved["config"])
    model.load_state_dict(saved["state_dict"])
    return model.eval(), saved, path


def make_family(name: str, params: Any, **options) -> ModelFamily:
    """The family `name` with its section of `params` (an `rbp.params.Params`) and the data's k."""
    return family_class(name)(getattr(params, name), params.k, **options)
