"""DNABERT checkpoint directories: read and check one, load its weights into a classifier, save one.

A DNABERT checkpoint directory holds `config.json` (written by DNABERT's transformers 2.5 fork:
`model_type: bert`, that version's keys), `vocab.txt` (5 special tokens + 4**k upper-case k-mers),
`pytorch_model.bin` (a `BertForMaskedLM` state dict, in torch's pre-1.6 serialisation, tied tensors
shared) or `model.safetensors`, and maybe a `tokenizer_config.json` saying `do_lower_case: true`.
A copy from a model hub may add an `auto_map`, a `tokenizer_class: DNATokenizer` and `.py` files:
those are ignored. It loads with the plain BERT classes, offline, never with remote code; its own
vocab.txt wins, and lower-casing is always off: a lower-casing tokenizer silently maps every k-mer to
`[UNK]`. Only a local directory is read: a model hub id is refused at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from rbp.config import resolve
from rbp.errors import RbpError
from rbp.kmers import K_RANGE, SPECIAL_TOKENS, kmer_vocab

if TYPE_CHECKING:  # transformers is imported where it is used: importing this module stays light
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

NUM_LABELS = 2  # softmax over (non-binding, binding)
ATTENTION = ("sdpa", "eager")  # sdpa trains faster; eager is needed for attention maps
# transformers prefers safetensors when both files are present; so do we, so the hash names the file used.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

class DNABERTError(RbpError):
    """A DNABERT checkpoint or setting that cannot be used; the message names the path or key."""


@dataclass(frozen=True)
class Checkpoint:
    """A checked checkpoint directory: everything but the weights themselves, which load per model."""

    directory: Path
    config: BertConfig
    vocab: tuple[str, ...]  # vocab.txt, line by line: the token of id i is vocab[i]
    k: int
    weights_file: Path
    weights_sha256: str

    @property
    def uses_dnabert_vocab(self) -> bool:
        """True when vocab.txt is DNABERT's own vocabulary in DNABERT's order (the fast encoding applies)."""
        return self.vocab == kmer_vocab(self.k)

    @cached_property
    def tokenizer(self) -> BertTokenizer:
        return make_tokenizer(self.vocab)


def make_tokenizer(vocab: Sequence[str]) -> BertTokenizer:
    """A BERT WordPiece tokenizer over `vocab`, never lower-casing (DNABERT's k-mers are upper-case)."""
    from transformers import BertTokenizer

    return BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=False)


HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")  # owner/name


def local_checkpoint(value: str) -> Path:
    """`dnabert.checkpoint` as a local path (relative ones from the project root). A model hub id that
    is no local folder is refused at once, never looked up: nothing is downloaded."""
    path = resolve(value)
    if not path.exists() and HUB_ID.fullmatch(str(value)):
        raise DNABERTError(
            f"dnabert.checkpoint: {value!r} looks like a model hub id, but checkpoints are read only from a "
            f"local directory (nothing is downloaded; {path} does not exist). Download it where there is "
            f"network access (e.g. `hf download {value} --local-dir DIR`), copy DIR here and set "
            "dnabert.checkpoint=DIR")
    return path


def read_checkpoint(directory: str | Path, k: int | None = None) -> Checkpoint:
    """Check a checkpoint directory (files, config, vocabulary, tokenizer) without loading its weights.

    `k`: the k-mer size the data is encoded with; the vocabulary must agree. None: taken from vocab.txt.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DNABERTError(f"DNABERT checkpoint {directory}: no such directory")
    config_path, vocab_path = directory / "config.json", directory / "vocab.txt"
    weights_file = next((directory / name for name in WEIGHT_FILES if (directory / name).is_file()), None)
    missing = [p.name for p in (config_path, vocab_path) if not p.is_file()]
    if weights_file is None:
        missing.append(" or ".join(WEIGHT_FILES))
    if missing:
        raise DNABERTError(
            f"DNABERT checkpoint {directory}: missing {', '.join(missing)} (expected config.json, vocab.txt "
            f"and the weights as {' or '.join(WEIGHT_FILES)})"
        )
    config = _read_config(config_path)
    vocab = _read_vocab(vocab_path)
    if len(vocab) != config.vocab_size:
        raise DNABERTError(
            f"{vocab_path}: {len(vocab)} tokens, but {config_path} says vocab_size {config.vocab_size}"
        )
    vocab_k = _vocab_k(vocab, vocab_path)
    if k is not None and vocab_k != k:
        raise DNABERTError(
            f"{vocab_path}: a vocabulary of {vocab_k}-mers (DNABERT-{vocab_k}), but the data are encoded "
            f"as {k}-mers (k = {k}); use a DNABERT-{k} checkpoint or set k: {vocab_k}"
        )
    _check_tokenizer(make_tokenizer(vocab), vocab_k, vocab_path)
    from rbp.data import sha256_file  # here: rbp.data brings scikit-learn, which the params need not

    return Checkpoint(directory, config, vocab, vocab_k, weights_file, sha256_file(weights_file))


def _read_config(path: Path) -> BertConfig:
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DNABERTError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(values, dict):
        raise DNABERTError(f"{path}: expected a JSON object of BERT settings")
    # DNABERT's fork writes model_type "bert" (some copies have none); another one is another architecture.
    if values.get("model_type", "bert") != "bert":
        raise DNABERTError(f"{path}: model_type {values['model_type']!r} is not a BERT (DNABERT) model")
    if not isinstance(values.get("vocab_size"), int):
        raise DNABERTError(f"{path}: no integer vocab_size")
    from transformers import BertConfig

    return BertConfig.from_dict(values)


def _read_vocab(path: Path) -> tuple[str, ...]:
    # BERT's loader takes one token per line; trailing blank lines are a file ending, not tokens.
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return tuple(lines)


def _vocab_k(vocab: tuple[str, ...], path: Path) -> int:
    """The k that vocab.txt's k-mers imply (every non-special token must have the same length)."""
    absent = [t for t in SPECIAL_TOKENS if t not in vocab]
    if absent:
        raise DNABERTError(f"{path}: not a DNABERT vocabulary, it lacks {', '.join(absent)}")
    lengths = sorted({len(t) for t in vocab if t not in SPECIAL_TOKENS})
    if len(lengths) != 1 or lengths[0] not in K_RANGE:
        raise DNABERTError(
            f"{path}: not a DNABERT k-mer vocabulary (token lengths {lengths}; expected one k in 3..6)"
        )
    return lengths[0]


def _check_tokenizer(tokenizer: BertTokenizer, k: int, path: Path) -> None:
    """Every k-mer must come out as its own id: the check that catches an all-[UNK] tokenizer."""
    all_kmers = kmer_vocab(k)[len(SPECIAL_TOKENS):]
    ids = tokenizer(" ".join(all_kmers), add_special_tokens=False)["input_ids"]
    unknown = [kmer for kmer, i in zip(all_kmers, ids, strict=True) if i == tokenizer.unk_token_id]
    if unknown:
        raise DNABERTError(
            f"{path}: the tokenizer maps {len(unknown)} of {len(all_kmers)} valid {k}-mers to [UNK] "
            f"(e.g. {unknown[0]}); the vocabulary must hold every upper-case k-mer (a lower-cased "
            f"vocabulary, or lower-casing input, loses them all)"
        )


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No load report or progress bar per fold: what the report says is checked (and raised) below."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_model(
    checkpoint: Checkpoint,
    *,
    hidden_dropout: float | None = None,
    attention_dropout: float | None = None,
    attn_implementation: str = "sdpa",
) -> BertForSequenceClassification:
    """The checkpoint's encoder with a 2-label classifier head: new (random, from torch's RNG) for a
    pre-trained file, the saved one for a file written by `save_checkpoint`.

    Dropouts given here override config.json's. The pooler is new too when the file has none.
    """
    model, _ = load_with_info(checkpoint, hidden_dropout, attention_dropout, attn_implementation)
    return model


def load_with_info(
    checkpoint: Checkpoint,
    hidden_dropout: float | None,
    attention_dropout: float | None,
    attn_implementation: str,
) -> tuple[BertForSequenceClassification, set[str]]:
    """The model and the names of the weights that were initialised afresh (not in the file)."""
    from transformers import BertForSequenceClassification

    check_attention(attn_implementation)
    overrides = {}
    if hidden_dropout is not None:
        overrides["hidden_dropout_prob"] = hidden_dropout
    if attention_dropout is not None:
        overrides["attention_probs_dropout_prob"] = attention_dropout
    weights = checkpoint.weights_file
    try:
        with _quiet_transformers():
            model, info = BertForSequenceClassification.from_pretrained(
                checkpoint.directory,
                num_labels=NUM_LABELS,
                local_files_only=True,
                use_safetensors=weights.name.endswith(".safetensors"),
                dtype=torch.float32,  # train in full precision whatever the file holds (AMP is the loop's)
                attn_implementation=attn_implementation,
                ignore_mismatched_sizes=True,  # reported below with the shapes, as one clear message
                output_loading_info=True,
                **overrides,
            )
    except Exception as exc:  # a corrupt file fails in torch, zipfile, pickle or safetensors
        text = str(exc).strip()
        reason = text.splitlines()[0].split(". ")[0] if text else "unexpected end of file"
        raise DNABERTError(
            f"{weights}: the weights do not load ({type(exc).__name__}: {reason}); is the file complete?"
        ) from None
    _check_loaded(info, weights)
    return model, set(info["missing_keys"]) | {m[0] for m in info["mismatched_keys"]}


def _is_new_head(key: str) -> bool:
    # The classifier never exists in a pre-trained file; the pooler is absent from MLM files saved by
    # newer transformers (and was never trained by MLM anyway).
    return key.startswith(("classifier.", "bert.pooler."))


def _check_loaded(info: dict, weights: Path) -> None:
    mismatched = sorted(m for m in info["mismatched_keys"] if not _is_new_head(m[0]))
    if mismatched:
        key, in_file, in_model = mismatched[0]
        raise DNABERTError(
            f"{weights}: {len(mismatched)} weights do not fit config.json (e.g. {key}: {tuple(in_file)} in "
            f"the file, {tuple(in_model)} expected)"
        )
    missing = sorted(key for key in info["missing_keys"] if not _is_new_head(key))
    if missing:
        raise DNABERTError(
            f"{weights}: {len(missing)} encoder weights are not in the file (e.g. {missing[0]}); "
            f"not a BERT checkpoint for this config.json"
        )


def load_checkpoint(
    directory: str | Path,
    k: int | None = None,
    *,
    hidden_dropout: float | None = None,
    attention_dropout: float | None = None,
    attn_implementation: str = "sdpa",
) -> BertForSequenceClassification:
    """Check and load a checkpoint directory (DNABERT's layout or one written by `save_checkpoint`)."""
    return load_model(
        read_checkpoint(directory, k),
        hidden_dropout=hidden_dropout,
        attention_dropout=attention_dropout,
        attn_implementation=attn_implementation,
    )


def save_checkpoint(
    model: BertForSequenceClassification, directory: str | Path, vocab: int | Sequence[str] | BertTokenizer
) -> Path:
    """Write `model` (safetensors) and its tokenizer files so that `load_checkpoint` gives it back.

    `vocab`: k (DNABERT's vocabulary), the token list, or a tokenizer. tokenizer_config.json says
    do_lower_case false, so even a plain `BertTokenizer.from_pretrained(directory)` reads it correctly.
    """
    directory = Path(directory)
    if isinstance(vocab, int):
        tokens = kmer_vocab(vocab)
    elif hasattr(vocab, "get_vocab"):
        ids = vocab.get_vocab()
        tokens = tuple(sorted(ids, key=ids.get))
    else:
        tokens = tuple(vocab)
    if len(tokens) != model.config.vocab_size:
        raise DNABERTError(f"save_checkpoint: {len(tokens)} tokens for a model with vocab_size "
                           f"{model.config.vocab_size}")
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)  # transformers 5 always writes model.safetensors
    (directory / "vocab.txt").write_text("\n".join(tokens) + "\n")
    tokenizer_config = {"tokenizer_class": "BertTokenizer", "do_lower_case": False,
                        "model_max_length": model.config.max_position_embeddings}
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    return directory


def check_attention(attn_implementation: str) -> None:
    if attn_implementation not in ATTENTION:
        raise DNABERTError(
            f"attn_implementation: {attn_implementation!r} is not one of {', '.join(ATTENTION)}"
        )
