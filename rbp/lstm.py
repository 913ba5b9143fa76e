"""The bidirectional LSTM of the original exercise, over DNABERT's k-mer ids."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rbp.errors import RbpError
from rbp.families import load_checkpoint, save_checkpoint
from rbp.kmers import PAD_ID, encode_kmers, kmer_vocab
from rbp.train import TrainParams

READOUTS = ("last", "max")


@dataclass
class LSTMParams(TrainParams):
    """The `lstm` section of the params: the training loop's knobs and the network's sizes."""

    max_epochs: int = 6
    patience: int = 3
    embedding_dim: int = 128
    hidden_size: int = 100
    num_layers: int = 1  # the original exercise has 2 (params/paper.yaml)
    dropout: float = 0.1  # between LSTM layers: no effect with one layer
    dense_size: int = 64
    readout: Literal["last", "max"] = "max"  # max over positions | last: the final states (the original)

    def problems(self, name: str, params: Any = None) -> Iterator[str]:
        yield from super().problems(name, params)
        if not 0 <= self.dropout < 1:
            yield f"{name}.dropout must lie in [0, 1), got {self.dropout}"


class BiLSTMClassifier(nn.Module):
    """Embedding → biLSTM → a readout of the last layer → dense → ReLU → 1 logit.

    The readout is `last` (the original exercise's: the final forward and backward states) or `max`
    (the maximum of each output unit over all positions, as DeepBind-style models pool: a motif
    anywhere in the sequence reaches the head as directly as one at either end). Returns one logit
    per sequence (the sigmoid is in the loss). Padding (id 0) is skipped by packing and left out of
    the maximum, so a padded sequence gets the same logit as the unpadded one.
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 128, hidden_size: int = 100,
                 num_layers: int = 2, dropout: float = 0.1, dense_size: int = 64, readout: str = "last"):
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {', '.join(READOUTS)}, not {readout!r}")
        self.readout = readout
        self.config = dict(vocab_size=vocab_size, embedding_dim=embedding_dim, hidden_size=hidden_size,
                           num_layers=num_layers, dropout=dropout, dense_size=dense_size, readout=readout)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_ID)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, num_layers, batch_first=True, bidirectional=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.head = nn.Sequential(nn.Linear(2 * hidden_size, dense_size), nn.ReLU(), nn.Linear(dense_size, 1))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        embedded = self.embedding(input_ids)
        width = input_ids.shape[1]
        lengths = (input_ids != PAD_ID).sum(dim=1).clamp(min=1)
        padded = not bool((lengths == width).all())
        if padded:
            inputs = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        else:
            inputs = embedded  # no padding in this batch: the fast path
        outputs, (hidden, _) = self.lstm(inputs)
        if self.readout == "last":
            final = torch.cat([hidden[-2], hidden[-1]], dim=1)  # last layer: forward, backward
        else:
            if padded:
                outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=width)
                beyond = torch.arange(width, device=input_ids.device)[None, :] >= lengths[:, None]
                outputs = outputs.masked_fill(beyond[:, :, None], float("-inf"))
            final = outputs.max(dim=1).values
        return self.head(final).squeeze(-1)


class LSTMFamily:
    """Builds the biLSTM for each fold and encodes sequences as k-mer ids (no [CLS]/[SEP])."""

    name = "lstm"
    amp = False  # cuDNN's LSTM takes bf16 only in recent releases: it trains in full precision

    def __init__(self, params: LSTMParams, k: int):
        self.params, self.k = params, k

    def build(self) -> BiLSTMClassifier:
        p = self.params
        return BiLSTMClassifier(len(kmer_vocab(self.k)), p.embedding_dim, p.hidden_size, p.num_layers,
                                p.dropout, p.dense_size, p.readout)

    def encode(self, sequences) -> dict[str, torch.Tensor]:
        ids = encode_kmers(list(sequences), self.k, add_special_tokens=False)
        return {"input_ids": torch.from_numpy(ids)}

    def embeddings(self, model: BiLSTMClassifier) -> nn.Module:
        return model.embedding

    def tags(self) -> dict[str, str]:
        return {}

    def describe(self) -> str:
        p = self.params
        extras = ""
        if p.mask_fraction:
            extras += f", {p.mask_fraction:.0%} of the k-mers of each training batch masked"
        if p.ema_decay:
            extras += f", a moving average of the weights (decay {p.ema_decay})"
        layers = "1 layer" if p.num_layers == 1 else f"{p.num_layers} layers"
        readout = "the maximum over positions" if p.readout == "max" else "the final states"
        return (f"Bidirectional LSTM: {layers} of {p.hidden_size} units over {p.embedding_dim}-d "
                f"embeddings of {self.k}-mers, read out by {readout}, {p.optimizer} lr {p.lr}, batch {p.batch_size}, "
                f"up to {p.max_epochs} epochs (patience {p.patience}){extras}.")

    def save(self, model: BiLSTMClassifier, directory: str | Path) -> Path:
        """The weights plus what rebuilds the model: `load` reads it back."""
        return save_checkpoint(self, model, directory, k=self.k)

    def load(self, directory: str | Path) -> BiLSTMClassifier:
        """A model saved by `save` (the folder, or its model.pt), in eval mode on the CPU."""
        model, saved, path = load_checkpoint(self, directory, BiLSTMClassifier)
        if int(saved["k"]) != self.k:
            raise RbpError(f"{path}: a biLSTM over {saved['k']}-mers, but this family encodes {self.k}-mers")
        return model
