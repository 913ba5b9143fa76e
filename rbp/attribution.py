"""Per-nucleotide attributions: what a trained model looks at in a sequence.

Three methods, all reduced to one score per nucleotide (and, for in-silico mutagenesis, one per
nucleotide and base):

- `ism`: in-silico mutagenesis. Every position is changed to every other base and the model's
  binding logit is read again: exact, model-agnostic (it needs only a scoring function), and the
  hypothetical contribution of each base at each position, mean-centred over the four bases (what
  TF-MoDISco reads). A nucleotide's score is its own base's centred contribution: positive where
  the base raises the binding logit above the average base.
- `integrated_gradients`: Integrated Gradients (captum) on the token embeddings, from a baseline
  where every k-mer is `[MASK]`; a token's score is the sum over embedding dimensions.
- `cls_attention` (DNABERT): the last layer's attention from `[CLS]` to each token, averaged over
  heads, with eager attention.

K-mer token scores become nucleotide scores as DNABERT's own motif tools do: each nucleotide gets
the mean of the scores of the k-mers that cover it (`kmer_to_nucleotide`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from rbp.errors import RbpError
from rbp.kmers import MASK_ID, SPECIAL_TOKENS

BASES = "ACGT"  # the columns of every (L, 4) array here; T is U on RNA logos
METHODS = ("ism", "ig", "attention")
CHUNK = 8192  # mutated sequences scored at a time


def one_hot(sequences: Sequence[str]) -> np.ndarray:
    """(N, L, 4) in A, C, G, T order; any other letter (N) is all zero. Equal lengths only."""
    lengths = {len(s) for s in sequences}
    if len(lengths) > 1:
        raise RbpError(f"attributions: sequences of one length are needed, got lengths {sorted(lengths)[:5]}")
    codes = np.frombuffer("".join(sequences).encode("ascii"), dtype=np.uint8).reshape(len(sequences), -1)
    return np.stack([codes == ord(b) for b in BASES], axis=-1).astype(np.float32)


def ism(score: Callable[[list[str]], np.ndarray], sequences: Sequence[str], progress: bool = False
        ) -> np.ndarray:
    """Hypothetical contributions (N, L, 4) by in-silico mutagenesis: `score(variant) - score(sequence)`
    for every single-base variant, mean-centred over the four bases at each position (the reference
    base's own entry is 0 before centring). `score` maps sequences to binding logits."""
    from tqdm.auto import tqdm

    sequences = list(sequences)
    reference = one_hot(sequences)
    n, length = reference.shape[:2]
    reference_scores = np.asarray(score(sequences), dtype=np.float64)
    # Every (sequence, position, base) but the reference base itself, generated chunk by chunk.
    index = np.argwhere(reference == 0)  # (m, 3): sequence, position, base
    delta = np.zeros((n, length, 4))
    for begin in tqdm(range(0, len(index), CHUNK), desc="mutagenesis", unit="chunk", disable=not progress):
        part = index[begin:begin + CHUNK]
        variants = [sequences[i][:p] + BASES[b] + sequences[i][p + 1:] for i, p, b in part]
        delta[part[:, 0], part[:, 1], part[:, 2]] = np.asarray(score(variants)) - reference_scores[part[:, 0]]
    return (delta - delta.mean(axis=2, keepdims=True)).astype(np.float32)


def contributions(hypothetical: np.ndarray, sequences: Sequence[str]) -> np.ndarray:
    """(N, L): each nucleotide's own base's entry of the hypothetical contributions."""
    return (hypothetical * one_hot(sequences)).sum(axis=2)


def kmer_to_nucleotide(token_scores: np.ndarray, k: int) -> np.ndarray:
    """Scores of consecutive k-mer tokens (..., T) as scores of the T + k - 1 nucleotides they cover:
    each nucleotide gets the mean over the k-mers covering it (DNABERT's `get_real_score`)."""
    token_scores = np.asarray(token_scores, dtype=np.float64)
    kernel = np.ones(k)
    sums = np.apply_along_axis(lambda row: np.convolve(row, kernel), -1, token_scores)
    counts = np.convolve(np.ones(token_scores.shape[-1]), kernel)
    return sums / counts


def _kmer_tokens(input_ids: torch.Tensor, k: int, length: int) -> torch.Tensor:
    """A boolean mask of the k-mer tokens (not [CLS], [SEP], [PAD]) of equal-length rows."""
    mask = input_ids >= len(SPECIAL_TOKENS)
    mask |= input_ids == 1  # [UNK]: a k-mer with an ambiguous base is still a position
    if not bool((mask.sum(dim=1) == length - k + 1).all()):
        raise RbpError("attributions: every sequence must give one k-mer token per position")
    return mask


def integrated_gradients(family, model: torch.nn.Module, sequences: Sequence[str], steps: int = 32,
                         batch_size: int = 64) -> np.ndarray:
    """(N, L) nucleotide scores from Integrated Gradients on the token embeddings (captum), against a
    baseline of `[MASK]` in every k-mer position (special tokens kept)."""
    from captum.attr import LayerIntegratedGradients

    sequences = list(sequences)
    length = len(sequences[0]) if sequences else 0
    one_hot(sequences)  # equal lengths
    layer = family.embeddings(model)  # refuses a model without token embeddings, before any work
    model.eval()
    device = next(model.parameters()).device
    out = []
    for begin in range(0, len(sequences), batch_size):
        batch = {key: value.to(device) for key, value in family.encode(sequences[begin:begin + batch_size]).items()}
        ids = batch.pop("input_ids")
        kmers = _kmer_tokens(ids, family.k, length)
        baseline = ids.masked_fill(kmers, MASK_ID)
        explainer = LayerIntegratedGradients(_forward(model, list(batch)), layer)
        attributions = explainer.attribute(ids, baselines=baseline, additional_forward_args=tuple(batch.values()),
                                           n_steps=steps, internal_batch_size=batch_size * 8)
        tokens = attributions.sum(dim=-1).detach()
        out.append(tokens[kmers].reshape(len(ids), -1).cpu().numpy())
    if not out:
        return np.zeros((0, length))
    return kmer_to_nucleotide(np.concatenate(out), family.k)


def _forward(model, names: list[str]):
    """The binding logit as a function of the token ids and the other inputs, in order (for captum)."""
    from rbp.train import binding_logit, logits_of

    def forward(input_ids, *extra):
        return binding_logit(logits_of(model, {"input_ids": input_ids, **dict(zip(names, extra, strict=True))}))

    return forward


@torch.no_grad()
def cls_attention(family, model: torch.nn.Module, sequences: Sequence[str], batch_size: int = 128) -> np.ndarray:
    """(N, L) nucleotide scores: the last layer's attention from [CLS] to each k-mer token, averaged
    over heads (eager attention for this step only)."""
    if not hasattr(model, "set_attn_implementation"):
        raise RbpError(f"attention: the {family.name} model has no attention layers; use ism or ig")
    sequences = list(sequences)
    length = len(sequences[0]) if sequences else 0
    one_hot(sequences)
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    model.eval()
    device = next(model.parameters()).device
    out = []
    try:
        for begin in range(0, len(sequences), batch_size):
            batch = {key: value.to(device) for key, value in family.encode(sequences[begin:begin + batch_size]).items()}
            attention = model(**batch, output_attentions=True).attentions[-1]  # (n, heads, T, T)
            row = attention[:, :, 0, :].mean(dim=1)
            kmers = _kmer_tokens(batch["input_ids"], family.k, length)
            out.append(row[kmers].reshape(len(row), -1).float().cpu().numpy())
    finally:
        model.set_attn_implementation(previous)
    if not out:
        return np.zeros((0, length))
    return kmer_to_nucleotide(np.concatenate(out), family.k)
