"""Binding logits remembered per fold model and sequence, while `remembered_scores()` is open.

Applying several models of one run to the same sequences scores the ensemble's members twice: once on
their own, and once more inside the ensemble (its fold models hold copies of theirs). Within
`remembered_scores()` each fold model's binding logit of each sequence is kept, under a fingerprint of
the model's weights, so a model with the same weights is not run again on a sequence it scored, and an
ensemble's fold model (a family with `parts`) is combined from its members' logits. The predict and
interpret steps open it around their loop over models; nothing is remembered outside it.
"""

from __future__ import annotations

import hashlib
import itertools
import weakref
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import torch

from rbp.train import predict

LIMIT = 1_000_000  # sequences remembered in all (about 0.3 GB of windows of 100 nt); past it, scored as before
_remembered: dict[str, dict[str, float]] | None = None
_fingerprints: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@contextmanager
def remembered_scores():
    """Remember fold models' logits per sequence until the block ends (nested: the outer one's memory)."""
    global _remembered
    outer = _remembered
    _remembered = {} if outer is None else outer
    try:
        yield
    finally:
        _remembered = outer


def active() -> bool:
    return _remembered is not None


def fingerprint(model: torch.nn.Module) -> str:
    """A digest of the model's class and of every tensor of its state (names, dtypes, shapes, bytes)."""
    if model not in _fingerprints:
        digest = hashlib.blake2b(type(model).__qualname__.encode(), digest_size=16)
        for name, tensor in model.state_dict().items():
            tensor = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{name}:{tensor.dtype}:{tensor.numel()}".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes())
        _fingerprints[model] = digest.hexdigest()
    return _fingerprints[model]


def logits(family, models: Sequence[torch.nn.Module], sequences: Sequence[str], batch_size: int,
           device: torch.device) -> list[torch.Tensor]:
    """The binding logits of `sequences` by each of `models` (fold models of `family`), as tensors the way
    a model's output gives them: remembered ones looked up, the others scored `batch_size` at a time
    (like lengths together, each batch encoded once for every model) and remembered; an ensemble's fold
    models combined from their members'."""
    if hasattr(family, "parts"):
        parts = [family.parts(model) for model in models]
        members = [logits(parts[0][j][0], [own[j][1] for own in parts], sequences, batch_size, device)
                   for j in range(len(parts[0]))]
        return [family.from_parts([member[i] for member in members]) for i in range(len(models))]
    memories = [_remembered.setdefault(fingerprint(model), {}) for model in models]
    missing = sorted((s for s in dict.fromkeys(sequences) if any(s not in memory for memory in memories)), key=len)
    scored: list[dict[str, float]] = [{} for _ in models]
    for begin in range(0, len(missing), batch_size):
        part = missing[begin:begin + batch_size]
        inputs = family.encode(part)
        for model, found in zip(models, scored, strict=True):
            found.update(zip(part, predict(model, inputs, batch_size, device, logits=True).tolist(), strict=True))
    for memory, found in zip(memories, scored, strict=True):
        _keep(memory, found.items())
    return [torch.tensor(np.array([memory[s] if s in memory else found[s] for s in sequences], dtype=np.float32))
            for memory, found in zip(memories, scored, strict=True)]


def remember(model: torch.nn.Module, sequences: Sequence[str], values: np.ndarray) -> None:
    """Keep logits scored another way (a long sequence's windows scanned in one pass)."""
    if active():
        _keep(_remembered.setdefault(fingerprint(model), {}), zip(sequences, np.asarray(values).tolist(), strict=True))


def _keep(memory: dict[str, float], items) -> None:
    """Add (sequence, logit) pairs to one model's memory, as many as `LIMIT` leaves room for."""
    room = LIMIT - sum(map(len, _remembered.values()))
    memory.update(itertools.islice(items, max(room, 0)))
