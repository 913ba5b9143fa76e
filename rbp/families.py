"""The model-family protocol and the registry of families.

A model family is what the CV loop (`rbp.cv`), tracking (`rbp.tracking`), the comparison and the
notebooks know of a model: how to build a fresh one for a fold, how to encode sequences into its
input tensors, how to save and load a trained one, where its token embeddings are (for gradient
attributions), its tags and a one-line description, and whether mixed precision applies to it.
They use nothing else, so a family is free in how it does these.

Adding a family is one module plus one registry entry: write `rbp/<name>.py` with a class that
implements `ModelFamily` (constructed as `Family(section_params, k)`), and add a `FamilyInfo` to
`FAMILIES` below; its hyper-parameters are the section `<name>` of `rbp.params.Params`, a
`TrainParams` subclass, so the one training loop and the params checks apply to it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from rbp.params import Params


@runtime_checkable
class ModelFamily(Protocol):
    name: ClassVar[str]  # the registry key, the `model_family` tag and the params section
    amp: ClassVar[bool]  # train under bf16 autocast on CUDA (never on the CPU)
    k: int  # the k-mer size of the data it is trained on

    def build(self) -> torch.nn.Module:
        """A freshly initialised model (seeded by the caller), returning logits from `model(**batch)`."""

    def encode(self, sequences: Sequence[str]) -> dict[str, torch.Tensor]:
        """Model inputs for upper-case DNA sequences: named tensors with one row per sequence."""

    def save(self, model: torch.nn.Module, directory: str | Path) -> Path:
        """Write a trained model into `directory` so that `load(directory)` gives it back."""

    def load(self, directory: str | Path) -> torch.nn.Module:
        """A model saved by `save`, in eval mode on the CPU."""

    def embeddings(self, model: torch.nn.Module) -> torch.nn.Module:
        """The layer that embeds the `input_ids` tokens (gradient attributions start there)."""

    def tags(self) -> dict[str, str]:
        """Tags for its MLflow runs beyond the house tags (e.g. DNABERT's `init`)."""

    def describe(self) -> str:
        """One Markdown sentence for a notebook: what is trained, and how."""


@dataclass(frozen=True)
class FamilyInfo:
    name: str
    label: str  # how tables and figures name it
    implementation: str  # "module:Class", imported only when the family is used
    notebook: str  # its cross-validation notebook


FAMILIES: dict[str, FamilyInfo] = {  # in table order
    "dnabert": FamilyInfo("dnabert", "DNABERT", "rbp.dnabert:DNABERTFamily", "02_dnabert_cv"),
    "lstm": FamilyInfo("lstm", "LSTM", "rbp.lstm:LSTMFamily", "03_lstm_cv"),
}
NOTEBOOK_FAMILY = {info.notebook: name for name, info in FAMILIES.items()}


def family_class(name: str) -> type:
    if name not in FAMILIES:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}")
    module, cls = FAMILIES[name].implementation.split(":")
    return getattr(importlib.import_module(module), cls)


def make_family(name: str, params: Params, **options) -> ModelFamily:
    """The family `name` with its section of `params` and the data's k."""
    return family_class(name)(getattr(params, name), params.k, **options)
