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
from rbp.train import TrainParams, derived, watched

READOUTS = ("last", "max")
UNROLL_FROM = 64  # sequences in a batch from which the step-by-step evaluation (`_unrolled`) pays


@dataclass
class LSTMParams(TrainParams):
    """The `lstm` section of the params: the training loop's knobs and the network's sizes."""

    lr: float = 4e-4
    max_epochs: int = 4
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
    the maximum, so a padded sequence gets the same logit as the unpadded one. Evaluated on a CPU
    without gradients, a batch of unpadded sequences goes through `_unrolled` (the same values, about
    three times faster).
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
        width = input_ids.shape[1]
        lengths = (input_ids != PAD_ID).sum(dim=1).clamp(min=1)
        padded = not bool((lengths == width).all())
        if not (padded or len(input_ids) < UNROLL_FROM or input_ids.device.type != "cpu" or self.training
                or torch.is_grad_enabled() or watched(self.embedding, self.lstm)):  # on a GPU: cuDNN's LSTM
            return self.head(self._unrolled(input_ids)).squeeze(-1)
        embedded = self.embedding(input_ids)
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

    def _unrolled(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(N, 2 x hidden): the readout of the LSTM over unpadded sequences, evaluated step by step with
        both directions in one batched product: the same values as `nn.LSTM` (to float rounding).
        Each k-mer's input projection in the first layer is a row of a table (its embedding through
        the input weights, both biases added), so a step there costs the recurrent product alone; a
        later layer's input projection is one product over all positions. tanh is computed as
        2 sigmoid(2x) - 1, which these CPUs evaluate several times faster."""
        lstm, (table, layers) = self.lstm, self._step_tables()
        n, width = input_ids.shape
        hidden, vocab, depth = lstm.hidden_size, self.embedding.num_embeddings, lstm.num_layers
        steps = torch.cat([input_ids.T, input_ids.flip(1).T + vocab], dim=1)  # (width, 2N): forward, backward
        outputs = None
        for layer, (inputs, bias, recurrent) in enumerate(layers):
            if layer == 0:
                def gate_inputs(t):
                    return table.index_select(0, steps[t]).view(2, n, 4 * hidden)
            else:  # the previous layer's outputs at each position, forward then backward units
                below = torch.stack(outputs)  # (width, 2, N, hidden), the backward direction's in its own order
                x = torch.cat([below[:, 0], below[:, 1].flip(0)], dim=2)  # (width, N, 2 x hidden)
                pre = torch.stack([torch.matmul(x, inputs[0]) + bias[0], torch.matmul(x.flip(0), inputs[1]) + bias[1]],
                                  dim=1)  # (width, 2, N, 4 x hidden)

                def gate_inputs(t, pre=pre):
                    return pre[t]
            last_layer = layer == depth - 1
            h = c = kept = None
            outputs = []
            for t in range(width):
                gates = gate_inputs(t)
                if h is not None:
                    gates = torch.baddbmm(gates, h, recurrent)
                s = torch.sigmoid(gates)  # i, f, g (its columns doubled: sigmoid(2g)), o
                i, f, g, o = s.split(hidden, dim=2)
                g = g * 2 - 1  # tanh of the cell input
                c = i * g if c is None else torch.addcmul(f * c, i, g)
                h = o * (torch.sigmoid(c * 2) * 2 - 1)
                if not last_layer:
                    outputs.append(h)
                elif self.readout == "max":
                    kept = h if kept is None else torch.maximum(kept, h)
        kept = kept if self.readout == "max" else h
        return torch.cat([kept[0], kept[1]], dim=1)

    def _step_tables(self) -> tuple[torch.Tensor, list[tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]]]:
        """What `_unrolled` multiplies by, kept until a weight changes: (2 x vocabulary, 4 x hidden), each
        k-mer's first-layer gate inputs (forward rows, then backward ones); and per layer, both
        directions' input weights (transposed; None in the first layer), biases (None there: in the
        table) and recurrent weights (transposed), the cell-input gate's columns doubled."""
        return derived(self, [self.embedding.weight, *self.lstm.parameters()], self._make_step_tables)

    def _make_step_tables(self):
        lstm, hidden = self.lstm, self.lstm.hidden_size
        scale = torch.ones(4 * hidden, dtype=lstm.weight_ih_l0.dtype, device=lstm.weight_ih_l0.device)
        scale[2 * hidden:3 * hidden] = 2
        table, layers = [], []
        for layer in range(lstm.num_layers):
            inputs, biases, recurrent = [], [], []
            for suffix in ("", "_reverse"):
                w_ih, w_hh, b_ih, b_hh = (getattr(lstm, f"{name}_l{layer}{suffix}") for name in
                                          ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
                if layer == 0:
                    table.append((self.embedding.weight @ w_ih.T + b_ih + b_hh) * scale)
                else:
                    inputs.append(w_ih.T * scale)
                    biases.append((b_ih + b_hh) * scale)
                recurrent.append(w_hh.T * scale)
            layers.append((torch.stack(inputs).contiguous() if inputs else None,
                           torch.stack(biases) if biases else None, torch.stack(recurrent).contiguous()))
        return torch.cat(table).contiguous(), layers


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
