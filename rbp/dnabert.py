"""DNABERT for binding-site classification: a pre-trained checkpoint loaded as DNABERT publishes it, or
DNABERT's architecture trained from scratch, behind the model-family interface of the training loop.

A DNABERT checkpoint directory holds `config.json` (written by transformers 2.5: no `model_type`, legacy
keys), `vocab.txt` (5 special tokens + 4**k upper-case k-mers), `pytorch_model.bin` (a `BertForMaskedLM`
state dict) or `model.safetensors`, and maybe a `tokenizer_config.json` saying `do_lower_case: true`.
It loads with the plain BERT classes, offline, never with remote code; its own vocab.txt wins, and
lower-casing is always off: a lower-casing tokenizer silently maps every k-mer to `[UNK]`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer
from transformers.utils import logging as hf_logging

from rbp.config import resolve
from rbp.data import center_window, sha256_file
from rbp.errors import RbpError
from rbp.kmers import K_RANGE, SPECIAL_TOKENS, encode_kmers, kmer_strings, kmer_vocab
from rbp.params import DNABERTParams

NUM_LABELS = 2  # softmax over (non-binding, binding)
ATTENTION = ("sdpa", "eager")  # sdpa trains faster; eager is needed for attention maps
# transformers prefers safetensors when both files are present; so do we, so the hash names the file used.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

_SHARED = dict(max_position_embeddings=512, type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12,
               initializer_range=0.02)
SIZES: dict[str, dict] = {
    # DNABERT's own size (BERT-base): real pre-training scale, meant for a GPU.
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 **_SHARED),
    # A CPU size: about 5 s per epoch of ~3,600 training sequences x 81 tokens on 2 cores, so 5 folds
    # x 5 epochs take a couple of minutes.
    "small": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                  **_SHARED),
}


class DNABERTError(RbpError):
    """A DNABERT checkpoint or setting that cannot be used; the message names the path or key."""


# --------------------------------------------------------------------------- checkpoint directories


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
    return BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=False)


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
    return Checkpoint(directory, config, vocab, vocab_k, weights_file, sha256_file(weights_file))


def _read_config(path: Path) -> BertConfig:
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DNABERTError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(values, dict):
        raise DNABERTError(f"{path}: expected a JSON object of BERT settings")
    # DNABERT's files have no model_type (transformers 2.5); a different one is another architecture.
    if values.get("model_type", "bert") != "bert":
        raise DNABERTError(f"{path}: model_type {values['model_type']!r} is not a BERT (DNABERT) model")
    if not isinstance(values.get("vocab_size"), int):
        raise DNABERTError(f"{path}: no integer vocab_size")
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
    model, _ = _load(checkpoint, hidden_dropout, attention_dropout, attn_implementation)
    return model


def _load(
    checkpoint: Checkpoint,
    hidden_dropout: float | None,
    attention_dropout: float | None,
    attn_implementation: str,
) -> tuple[BertForSequenceClassification, set[str]]:
    """The model and the names of the weights that were initialised afresh (not in the file)."""
    _check_attention(attn_implementation)
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


# --------------------------------------------------------------------------- from scratch


def scratch_config(
    k: int,
    size: str = "small",
    *,
    hidden_dropout: float = 0.1,
    attention_dropout: float = 0.1,
    attn_implementation: str = "sdpa",
) -> BertConfig:
    """DNABERT-k's architecture at `size` (see SIZES) over DNABERT's vocabulary (5 + 4**k tokens)."""
    if size not in SIZES:
        raise DNABERTError(f"dnabert.size: {size!r} is not one of {', '.join(SIZES)}")
    _check_attention(attn_implementation)
    return BertConfig(
        vocab_size=len(kmer_vocab(k)),
        pad_token_id=0,
        num_labels=NUM_LABELS,
        hidden_dropout_prob=hidden_dropout,
        attention_probs_dropout_prob=attention_dropout,
        attn_implementation=attn_implementation,
        **SIZES[size],
    )


def scratch_model(k: int, size: str = "small", **options) -> BertForSequenceClassification:
    """A randomly initialised (from torch's RNG: seed first) DNABERT-k classifier; NOT pre-trained."""
    return BertForSequenceClassification(scratch_config(k, size, **options))


def _check_attention(attn_implementation: str) -> None:
    if attn_implementation not in ATTENTION:
        raise DNABERTError(
            f"attn_implementation: {attn_implementation!r} is not one of {', '.join(ATTENTION)}"
        )


# --------------------------------------------------------------------------- encoding


def encode(
    sequences: Sequence[str],
    k: int,
    max_length: int | None = None,
    tokenizer: BertTokenizer | None = None,
) -> dict[str, torch.Tensor]:
    """Sequences (upper-case DNA) as `[CLS] k-mers [SEP]` token ids plus the attention mask.

    Rows are right-padded with `[PAD]` to the longest row; `max_length` counts [CLS] and [SEP] and
    keeps the first k-mers. Without a tokenizer the ids are DNABERT's vocabulary (vectorised); with
    one, its vocabulary decides (a checkpoint whose vocab.txt differs from DNABERT's order).
    """
    sequences = list(sequences)
    if tokenizer is None or not sequences:
        ids = torch.from_numpy(encode_kmers(sequences, k, max_length=max_length))
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}
    if max_length is not None and max_length < 3:
        raise DNABERTError(f"max_length: {max_length} leaves no room for k-mers")
    batch = tokenizer(
        kmer_strings(sequences, k),
        padding=True,
        truncation=max_length is not None,
        max_length=max_length,
        return_token_type_ids=False,
        return_tensors="pt",
    )
    return {"input_ids": batch["input_ids"].long(), "attention_mask": batch["attention_mask"].long()}


# --------------------------------------------------------------------------- the model family


class DNABERTFamily:
    """DNABERT for the training loop: `build()` a fresh model per fold, `encode()` sequences once.

    `amp`: on CUDA the loop trains it under bf16 autocast.

    With `params.checkpoint` the directory is checked and its weights loaded once here, so a bad
    checkpoint stops the run before any fold starts; without, DNABERT's architecture from scratch.
    """

    name = "dnabert"
    amp = True

    def __init__(self, params: DNABERTParams, k: int, *, attn_implementation: str = "sdpa"):
        _check_attention(attn_implementation)
        self.params, self.k, self.attn_implementation = params, k, attn_implementation
        self.checkpoint = read_checkpoint(resolve(params.checkpoint), k) if params.checkpoint else None
        config = self.checkpoint.config if self.checkpoint else scratch_config(k, params.size)
        if params.max_seq_length > config.max_position_embeddings:
            where = self.checkpoint.directory / "config.json" if self.checkpoint else f"size {params.size}"
            raise DNABERTError(
                f"dnabert.max_seq_length: {params.max_seq_length} tokens, but the model ({where}) has "
                f"max_position_embeddings {config.max_position_embeddings}"
            )
        self.config = config
        self.new_head = True  # a pre-trained file has no classifier; a fine-tuned one (save_checkpoint) has
        if self.checkpoint:
            # Load once to fail fast on weights that do not load, leaving the caller's RNG untouched.
            with torch.random.fork_rng(devices=[]):
                _, fresh = _load(self.checkpoint, params.hidden_dropout, params.attention_dropout,
                                 attn_implementation)
            self.new_head = any(key.startswith("classifier.") for key in fresh)

    @property
    def pretrained(self) -> bool:
        return self.checkpoint is not None

    @property
    def vocab(self) -> tuple[str, ...]:
        return self.checkpoint.vocab if self.checkpoint else kmer_vocab(self.k)

    def build(self) -> BertForSequenceClassification:
        options = dict(
            hidden_dropout=self.params.hidden_dropout,
            attention_dropout=self.params.attention_dropout,
            attn_implementation=self.attn_implementation,
        )
        if self.checkpoint:
            return load_model(self.checkpoint, **options)
        return scratch_model(self.k, self.params.size, **options)

    def encode(self, sequences: Sequence[str]) -> dict[str, torch.Tensor]:
        """Token ids and mask. A sequence with more k-mers than `max_seq_length` - 2 keeps its centred
        part (the binding site of a CLIP peak sits in the middle), never just its start."""
        # The checkpoint's own vocab.txt wins; DNABERT's order takes the vectorised path.
        fast = self.checkpoint is None or self.checkpoint.uses_dnabert_vocab
        tokenizer = None if fast else self.checkpoint.tokenizer
        longest = self.params.max_seq_length - 2 + self.k - 1  # nt that fit between [CLS] and [SEP]
        return encode(center_window(sequences, longest), self.k, self.params.max_seq_length, tokenizer)

    def save(self, model: BertForSequenceClassification, directory: str | Path) -> Path:
        return save_checkpoint(model, directory, self.vocab)

    @property
    def tags(self) -> dict[str, str]:
        if self.checkpoint:
            return {"init": "pretrained", "checkpoint": str(self.checkpoint.directory.resolve()),
                    "weights_sha256": self.checkpoint.weights_sha256}
        return {"init": "scratch", "size": self.params.size}

    def describe(self) -> str:
        """One Markdown sentence for a notebook: pre-trained (which file) or NOT pre-trained."""
        shape = f"{self.config.num_hidden_layers} layers, hidden size {self.config.hidden_size}"
        if self.checkpoint:
            c = self.checkpoint
            head = ("a new, randomly initialised classification head" if self.new_head
                    else "the classification head saved with it")
            return (
                f"DNABERT-{self.k} fine-tuned from the pre-trained checkpoint `{c.directory}` ({shape}; "
                f"weights `{c.weights_file.name}`, sha256 `{c.weights_sha256[:12]}…`), with {head}."
            )
        own = ", DNABERT's own" if self.params.size == "base" else ""
        return (
            f"DNABERT-{self.k}'s architecture, size `{self.params.size}`{own} ({shape}), trained from random "
            f"initial weights: this model is **NOT pre-trained**, so its scores measure the architecture "
            f"alone, not DNABERT's pre-training."
        )

