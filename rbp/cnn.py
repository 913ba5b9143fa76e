"""A convolutional network over one-hot nucleotides with global max pooling (DeepBind, iDeepS).

Convolutions are unpadded ("valid"), so every output position sees only real nucleotides and a
window's score depends on that window alone. That makes the model fully convolutional: the scores
of every window of a long sequence come out of one pass over it (`window_logits`), equal to scoring
the windows one by one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rbp.dropout import Dropout, kept
from rbp.families import load_checkpoint, save_checkpoint
from rbp.kmers import PAD_ID, SPECIAL_TOKENS, encode_nucleotides
from rbp.train import TrainParams, derived, watched

SCAN_CHUNK = 65_536  # windows scored per pass of a long sequence: memory stays flat in its length
CHANGE_BUDGET = 2**25  # bytes of one (windows, positions, kernel, filters) tensor in `change_logits`
TAPS_PER_ROW = 3  # kernel taps summed in one row of the first layer's tables (`first_layer_lookup`)
FEATURE_BUDGET = 2**22  # bytes of one (sequences, filters, positions) map when evaluating: it stays in cache


@dataclass
class CNNParams(TrainParams):
    """The `cnn` section of the params: convolutions over one-hot nucleotides, then each filter's maximum
    over all positions (the DeepBind / iDeepS line). One entry per layer in `channels`, `kernel_size` and
    `dilation`."""

    channels: list[int] = field(default_factory=lambda: [128])  # filters per layer
    kernel_size: list[int] = field(default_factory=lambda: [12])  # nt (layer 1) or positions (later layers)
    dilation: list[int] = field(default_factory=lambda: [1])  # spacing of a kernel's taps
    dropout: float = 0.2  # after each convolution and before the dense layer
    dense_size: int = 64
    max_epochs: int = 15
    patience: int = 4
    batch_size: int = 64
    optimizer: Literal["rmsprop", "adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3

    def problems(self, name: str, params: Any = None) -> Iterator[str]:
        yield from super().problems(name, params)
        if not 0 <= self.dropout < 1:
            yield f"{name}.dropout must lie in [0, 1), got {self.dropout}"
        channels, kernels, dilations = len(self.channels), len(self.kernel_size), len(self.dilation)
        if not (channels >= 1 and channels == kernels == dilations):
            yield (f"{name}.channels {name}.kernel_size and {name}.dilation need one entry per convolution layer, "
                   f"got {channels}, {kernels} and {dilations}")
        for key in ("channels", "kernel_size", "dilation"):
            if not all(v >= 1 for v in getattr(self, key)):
                yield f"{name}.{key} must all be at least 1, got {getattr(self, key)}"
        if self.dense_size < 1:
            yield f"{name}.dense_size must be at least 1, got {self.dense_size}"


def receptive_field(kernel_size, dilation) -> int:
    """nt that one output position of the last convolution sees."""
    return 1 + sum((k - 1) * d for k, d in zip(kernel_size, dilation, strict=True))


def one_hot_embedding() -> nn.Embedding:
    """Token ids to one-hot A, T, C, G (ids 5–8); `[PAD]`, `[UNK]` and `[MASK]` are all zero. Frozen:
    it is an encoding, not a parameter, and gradient attributions start at its output."""
    embedding = nn.Embedding(len(SPECIAL_TOKENS) + 4, 4)
    embedding.weight.data.zero_()
    embedding.weight.data[len(SPECIAL_TOKENS):] = torch.eye(4)
    embedding.weight.requires_grad_(False)
    return embedding


class ConvClassifier(nn.Module):
    """One-hot → [conv → ReLU → dropout] per layer → each filter's max over positions → dense → ReLU
    → dropout → 1 logit. Positions whose receptive field reaches past a sequence's end are left out
    of the maximum, so a padded sequence gets the logit of the unpadded one. Evaluated on a CPU without
    gradients, the first convolution is read from tables (`first_layer_lookup`: the same values)."""

    def __init__(self, channels=(128,), kernel_size=(12,), dilation=(1,), dropout: float = 0.2,
                 dense_size: int = 64):
        super().__init__()
        if not len(channels) == len(kernel_size) == len(dilation) >= 1:
            raise ValueError("channels, kernel_size and dilation need one entry per layer")
        self.config = dict(channels=list(channels), kernel_size=list(kernel_size), dilation=list(dilation),
                           dropout=dropout, dense_size=dense_size)
        self.embedding = one_hot_embedding()
        layers, width = [], 4
        for out, kernel, spacing in zip(channels, kernel_size, dilation, strict=True):
            layers += [nn.Conv1d(width, out, kernel, dilation=spacing), nn.ReLU(), Dropout(dropout)]
            width = out
        self.convolutions = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(width, dense_size), nn.ReLU(), Dropout(dropout),
                                  nn.Linear(dense_size, 1))

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.config["kernel_size"], self.config["dilation"])

    def features(self, input_ids: torch.Tensor, activated: bool = True) -> torch.Tensor:
        """(N, filters, positions) of the last convolution; before its ReLU (and dropout) unless `activated`.
        Evaluated without gradients, the first convolution is read from tables (`first_layer_lookup`)."""
        layers = list(self.convolutions) if activated else list(self.convolutions)[:-2]
        if not self._looks_up():
            return self.convolutions[:len(layers)](self.embedding(input_ids).transpose(1, 2))
        x = self.first_layer_lookup(input_ids)
        for layer in layers[1:]:
            x = layer(x)
        return x

    def _looks_up(self) -> bool:
        """Whether the first convolution is read from tables: when evaluating on a CPU without gradients,
        and nothing watches the one-hot input or the convolution (a hook, as attributions set)."""
        return not (self.training or torch.is_grad_enabled() or self.embedding.weight.device.type != "cpu"
                    or watched(self.embedding, self.convolutions[0]))

    def first_layer_lookup(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(N, filters, positions): the first convolution (before its ReLU) as sums of table rows.

        The input is one of a few embedding rows per position (one-hot A, C, G, T, or zero), so the
        contribution of `TAPS_PER_ROW` consecutive taps to every filter takes only symbols^taps values:
        a table. Each output position is then the sum of kernel / taps rows (4 for 12 taps) instead of
        a (4 x kernel) by filters product: the same values, in a few times less time on a CPU."""
        index = self._lookup_index(input_ids)
        if index is None:
            return self.convolutions[0](self.embedding(input_ids).transpose(1, 2))  # the convolution's own error
        return self._looked_up(index).transpose(1, 2)

    def _lookup_index(self, input_ids: torch.Tensor) -> torch.Tensor | None:
        """(N, positions, parts): the table row each part of the kernel reads at each output position;
        None when the sequences are narrower than the kernel."""
        conv = self.convolutions[0]
        kernel, spacing = conv.kernel_size[0], conv.dilation[0]
        positions = input_ids.shape[1] - (kernel - 1) * spacing
        if positions < 1:
            return None
        _, symbol_of, n_symbols = self._lookup_tables()
        taps, parts = TAPS_PER_ROW, -(-kernel // TAPS_PER_ROW)
        symbols = F.pad(symbol_of[input_ids], (0, parts * taps * spacing))  # past the end: padded taps only
        span = positions + (parts - 1) * taps * spacing
        codes = symbols[:, :span]
        for tap in range(1, taps):
            codes = codes * n_symbols + symbols[:, tap * spacing:tap * spacing + span]
        step, rows = taps * spacing, n_symbols**taps
        return torch.stack([codes[:, part * step:part * step + positions] + part * rows for part in range(parts)],
                           dim=2)

    def _looked_up(self, index: torch.Tensor) -> torch.Tensor:
        """(N, positions, filters): the first convolution at the rows `index` names."""
        summed = F.embedding_bag(index.reshape(-1, index.shape[2]), self._lookup_tables()[0], mode="sum")
        return summed.view(index.shape[0], index.shape[1], -1)

    def _lookup_tables(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The first layer's tables, one block of symbols^taps rows per part of the kernel (the bias in
        the first), the symbol of each token id, and the number of symbols; kept until a weight changes."""
        conv = self.convolutions[0]
        return derived(self, (conv.weight, conv.bias, self.embedding.weight), self._make_lookup_tables)

    def _make_lookup_tables(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        conv = self.convolutions[0]
        kernel, taps = conv.kernel_size[0], TAPS_PER_ROW
        parts = -(-kernel // taps)
        rows, symbol_of = torch.unique(self.embedding.weight, dim=0, return_inverse=True)
        # each symbol's contribution at each tap, (symbols, taps padded with zeros, filters)
        contribution = F.pad(torch.einsum("fbk,sb->skf", conv.weight, rows), (0, 0, 0, parts * taps - kernel))
        tables = []
        for part in range(parts):
            table = contribution[:, part * taps]
            for tap in range(1, taps):
                table = (table[:, None, :] + contribution[None, :, part * taps + tap]).flatten(0, 1)
            tables.append(table)  # row: the symbols of the part's taps as digits, the first most significant
        if conv.bias is not None:
            tables[0] = tables[0] + conv.bias  # every position sums one row of each part
        return torch.cat(tables).contiguous(), symbol_of.to(torch.int32), len(rows)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        lengths = (input_ids != PAD_ID).sum(dim=1)
        padded = not bool((lengths == input_ids.shape[1]).all())  # without padding, no position is masked
        if self.training:
            return self.head(self._pooled_in_training(input_ids, lengths if padded else None)).squeeze(-1)
        # Evaluating: the last ReLU after the maximum gives the same values (it is monotone) on a tensor
        # positions-times smaller. The batch goes through the convolutions a few sequences at a time, so
        # that their feature map stays in the cache (written and read again from memory it costs more
        # than the convolution itself).
        width = max(self.config["channels"]) * max(input_ids.shape[1], 1) * 4
        rows = max(1, FEATURE_BUDGET // width)
        # one layer read from tables: the rows of the whole batch at once, the map as (N, positions, filters)
        index = self._lookup_index(input_ids) if len(self.config["channels"]) == 1 and self._looks_up() else None
        pooled = []
        for first in range(0, len(input_ids), rows):
            if index is not None:
                features = self._looked_up(index[first:first + rows])
                if padded:
                    beyond = self._beyond(lengths[first:first + rows], features.transpose(1, 2)).transpose(1, 2)
                    features = features.masked_fill(beyond, float("-inf"))
                pooled.append(features.amax(dim=1))
                continue
            features = self.features(input_ids[first:first + rows], activated=False)
            if padded:
                features = features.masked_fill(self._beyond(lengths[first:first + rows], features), float("-inf"))
            pooled.append(features.amax(dim=2))
        pooled = pooled[0] if len(pooled) == 1 else torch.cat(pooled)
        return self.head(F.relu(pooled)).squeeze(-1)

    def _pooled_in_training(self, input_ids: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """(N, filters): each filter's maximum over positions of the last convolution after its ReLU and
        dropout, computed in the order that touches the feature map least. Dropout zeroes a position,
        and the ReLU and dropout's 1 / (1 - p) scaling are monotone, so the maximum of the masked map
        before them, passed through them, is the same value with the same gradient. The mask is drawn
        by `rbp.dropout.kept`, on every device."""
        x = self.embedding(input_ids).transpose(1, 2)
        for layer in list(self.convolutions)[:-2]:
            x = layer(x)  # ... the last convolution, before its ReLU and dropout
        p = self.convolutions[-1].p
        if p:
            x = x * kept(x, p)
        if lengths is not None:  # (the mask costs a copy of the feature map, forward and backward)
            x = x.masked_fill(self._beyond(lengths, x), float("-inf"))
        pooled = F.relu(x.max(dim=2).values)
        return pooled * (1.0 / (1.0 - p)) if p else pooled

    def _beyond(self, lengths: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """(N, 1, positions): the output positions whose receptive field reaches past a sequence's end."""
        last = (lengths - self.receptive_field).clamp(min=0)  # the last position inside the sequence
        return (torch.arange(features.shape[2], device=lengths.device)[None, :] > last[:, None])[:, None, :]

    def window_logits(self, input_ids: torch.Tensor, window: int) -> torch.Tensor:
        """(n, windows): the logit of every window of `window` nt of unpadded sequences of one length
        (n, L), in one pass: a sliding maximum over the features, then the head. Equal to `forward` on
        each window."""
        features = self.features(input_ids, activated=False)
        span = max(window - self.receptive_field + 1, 1)  # output positions inside one window
        pooled = F.relu(F.max_pool1d(features, span, stride=1))  # (n, filters, windows)
        return self.head(pooled.transpose(1, 2)).squeeze(-1)


class CNNFamily:
    """Builds the CNN for each fold; encodes sequences as one token per nucleotide."""

    name = "cnn"
    amp = True

    k = 1  # its tokens are single nucleotides, whatever k the data were cut into

    def __init__(self, params: CNNParams, k: int):
        self.params = params

    def build(self) -> ConvClassifier:
        p = self.params
        return ConvClassifier(p.channels, p.kernel_size, p.dilation, p.dropout, p.dense_size)

    def encode(self, sequences) -> dict[str, torch.Tensor]:
        ids = encode_nucleotides(sequences, min_width=receptive_field(self.params.kernel_size, self.params.dilation))
        return {"input_ids": torch.from_numpy(ids)}

    def embeddings(self, model: ConvClassifier) -> nn.Module:
        return model.embedding

    @torch.no_grad()
    def window_logits(self, model: ConvClassifier, sequence: str, window: int) -> np.ndarray:
        """The binding logit of every window of `window` nt of `sequence` (stride 1; one window, the
        sequence itself, when it is no longer than that), a chunk of windows per pass."""
        if len(sequence) <= window:
            return model(**_to(self.encode([sequence]), model)).float().cpu().numpy()
        n_windows = len(sequence) - window + 1
        out = []
        for first in range(0, n_windows, SCAN_CHUNK):
            count = min(SCAN_CHUNK, n_windows - first)
            part = sequence[first:first + count + window - 1]
            if window < model.receptive_field:  # a window narrower than a filter is scored as padded alone
                windows = [part[i:i + window] for i in range(count)]
                out.append(model(**_to(self.encode(windows), model)).float().cpu().numpy())
                continue
            out.append(self.windows_logits(model, [part], window)[0])
        return np.concatenate(out)

    def windows_logits(self, model: ConvClassifier, sequences: list[str], window: int) -> np.ndarray | None:
        """(n, windows): the binding logit of every window (stride 1) of sequences of one length, at
        least `window` nt, in one batched pass; None when the window is narrower than a filter."""
        if window < model.receptive_field or len({len(s) for s in sequences}) != 1 or len(sequences[0]) < window:
            return None
        ids = _to(self.encode(sequences), model)["input_ids"]
        return model.window_logits(ids, window).float().cpu().numpy()

    def change_logits(self, model: ConvClassifier, windows: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
        """Every single-nucleotide change of windows of one length, in one pass: (n, length, 4) logits
        of each window with A, C, G or T at each position (its own base gives itself) and (n,) the
        windows' own logits. A change moves only the outputs of the filters that cover it, so for a
        one-layer network without dilation each changed window costs the maximum over positions, not a
        convolution. None for deeper or dilated networks, or windows narrower than a filter."""
        conv = model.convolutions[0]
        kernel, length = conv.kernel_size[0], len(windows[0])
        if len(model.config["channels"]) != 1 or conv.dilation[0] != 1 or length < kernel or \
                len({len(w) for w in windows}) != 1:
            return None
        rows = max(1, CHANGE_BUDGET // (length * kernel * conv.out_channels * 4))  # windows per pass
        if len(windows) > rows:
            parts = [self.change_logits(model, windows[i:i + rows]) for i in range(0, len(windows), rows)]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        ids = _to(self.encode(windows), model)["input_ids"]
        x = model.embedding(ids)  # (n, length, 4): one-hot A, T, C, G; an unknown base is all zero
        features = conv(x.transpose(1, 2)).transpose(1, 2)  # (n, positions, filters), before the ReLU
        positions = features.shape[1]
        taps = conv.weight.permute(1, 2, 0)  # (4, kernel, filters): a base's contribution at each tap
        # output position q - t sees input position q through tap t
        index = torch.arange(length, device=ids.device)[:, None] - torch.arange(kernel, device=ids.device)[None, :]
        inside = (index >= 0) & (index < positions)
        covered = features[:, index.clamp(0, positions - 1), :]  # (n, length, kernel, filters)
        covered = covered.masked_fill(~inside[None, :, :, None], float("-inf"))
        without = covered - torch.einsum("nlb,bkf->nlkf", x, taps)  # the own base's contribution taken out
        low = torch.cummax(features, dim=1).values  # max over positions up to p
        high = torch.cummax(features.flip(1), dim=1).values.flip(1)  # max over positions from p
        q = torch.arange(length, device=ids.device)
        before = torch.where((q - kernel >= 0)[None, :, None], low[:, (q - kernel).clamp(min=0), :], float("-inf"))
        after = torch.where((q + 1 < positions)[None, :, None], high[:, (q + 1).clamp(max=positions - 1), :],
                            float("-inf"))
        untouched = torch.maximum(before, after)  # (n, length, filters): outputs no change at q reaches
        pooled = torch.stack([torch.maximum((without + taps[b]).amax(dim=2), untouched) for b in range(4)], dim=2)
        logits = model.head(F.relu(pooled)).squeeze(-1)  # (n, length, 4) in A, T, C, G order
        own = model.head(F.relu(features.amax(dim=1))).squeeze(-1)
        return logits[:, :, [0, 2, 3, 1]].float().cpu().numpy(), own.float().cpu().numpy()  # A, C, G, T

    def tags(self) -> dict[str, str]:
        return {}

    def describe(self) -> str:
        p = self.params
        layers = ", then ".join(f"{c} filters of {k}" + (f" (dilation {d})" if d > 1 else "")
                                for c, k, d in zip(p.channels, p.kernel_size, p.dilation, strict=True))
        extras = f", {p.mask_fraction:.0%} of the nucleotides of each training batch masked" if p.mask_fraction else ""
        return (f"Convolutional network on one-hot nucleotides: {layers}, each filter's maximum over all "
                f"positions, a dense layer of {p.dense_size}, dropout {p.dropout}; {p.optimizer} lr {p.lr}, "
                f"batch {p.batch_size}, up to {p.max_epochs} epochs (patience {p.patience}){extras}.")

    def save(self, model: ConvClassifier, directory: str | Path) -> Path:
        """The weights plus what rebuilds the model: `load` reads it back."""
        return save_checkpoint(self, model, directory)

    def load(self, directory: str | Path) -> ConvClassifier:
        """A model saved by `save` (the folder, or its model.pt), in eval mode on the CPU."""
        return load_checkpoint(self, directory, ConvClassifier)[0]


def _to(inputs: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    return {key: value.to(device) for key, value in inputs.items()}
