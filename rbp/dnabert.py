"""DNABERT for binding-site classification: a pre-trained checkpoint loaded as DNABERT publishes it
(`rbp.dnabert_checkpoint`), or DNABERT's architecture trained from scratch, as a model family.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from rbp.dnabert_checkpoint import (
    NUM_LABELS,
    DNABERTError,
    check_attention,
    load_checkpoint,
    load_model,
    load_with_info,
    local_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from rbp.dropout import draw_on_cpu_fast
from rbp.families import FAMILIES
from rbp.kmers import encode_kmers, kmer_strings, kmer_vocab
from rbp.train import TrainParams

if TYPE_CHECKING:  # transformers is imported where it is used: importing this module (the params) stays light
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

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


CHECKPOINT_LOG_MB = 50  # fold checkpoints are logged by default up to this size (small: 0.6 MB; base: 344 MB)
# Evaluated on a CPU, a pass holds at most this many bytes in its widest activation (the feed-forward
# layer's; 42 MB in a pass of 512 sequences of 81 nt): with `rbp.allocator`'s thresholds the small
# model's 5 fold models scanned 4,920 windows in 5.3-5.5 s against 6.5-7.6 s in passes of 512.
CPU_PASS_BYTES = 8 << 20


# --------------------------------------------------------------------------- its params section


@dataclass
class DNABERTParams(TrainParams):
    """The `dnabert` section of the params: the training loop's knobs, the starting weights and the model."""

    # pretrained: fine-tune `checkpoint` | scratch: DNABERT's architecture from random weights, on purpose;
    # null = pretrained when a checkpoint is given, else scratch
    init: Literal["pretrained", "scratch"] | None = None
    checkpoint: str | None = None  # a local DNABERT directory (config.json, vocab.txt, weights)
    size: Literal["small", "base"] = "small"  # scratch only: base = DNABERT-3's own size
    max_seq_length: int = 100  # tokens, counting [CLS] and [SEP]
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    log_checkpoints: bool | None = None  # log each fold's best model; null = when it is under 50 MB
    max_epochs: int = 2  # its validation AUC levels off by epoch 2 at CPU size; paper.yaml: 5
    patience: int = 5
    optimizer: Literal["rmsprop", "adam", "adamw", "sgd"] = "adamw"
    lr: float = 4e-4
    batch_size: int = 64
    weight_decay: float = 0.01
    schedule: Literal["constant", "linear", "cosine"] = "linear"
    warmup_fraction: float = 0.1
    grad_clip: float | None = 1.0

    @property
    def initialisation(self) -> str:
        """`pretrained` or `scratch`, as every tag and label says."""
        return self.init or ("pretrained" if self.checkpoint else "scratch")

    def problems(self, name: str, params: Any) -> Iterator[str]:
        """What is wrong with these settings as the section `name` of the run's `params` (a checkpoint is
        needed only when its notebook runs), one message each."""
        yield from super().problems(name, params)
        for key in ("hidden_dropout", "attention_dropout"):
            if not 0 <= getattr(self, key) < 1:
                yield f"{name}.{key} must lie in [0, 1), got {getattr(self, key)}"
        if self.init == "scratch" and self.checkpoint:
            yield (f"{name}.init is scratch, but {name}.checkpoint names {self.checkpoint!r}: drop the checkpoint to "
                   f"train from random weights, or set {name}.init: pretrained to fine-tune it")
        if self.init == "pretrained" and not self.checkpoint and FAMILIES[name].notebook in params.notebooks:
            yield needs_checkpoint(params.k)
        if not 3 <= self.max_seq_length <= 512:
            yield (f"{name}.max_seq_length must lie between 3 and 512 tokens (DNABERT's position limit), "
                   f"got {self.max_seq_length}")


def needs_checkpoint(k: int) -> str:
    """What to say when DNABERT is to be fine-tuned but no checkpoint is named."""
    return (f"dnabert.init is pretrained, but dnabert.checkpoint names no checkpoint. DNABERT-{k} is a BERT "
            f"model pre-trained on the human genome with {k}-mer tokens (Ji et al. 2021, Bioinformatics 37:2112); "
            f"its authors publish the weights at https://github.com/jerryji1993/DNABERT (README, section "
            f"'Download pre-trained DNABERT': DNABERT{k}). Unzip it and point dnabert.checkpoint at the unpacked "
            f"folder (the one holding config.json, vocab.txt and pytorch_model.bin), e.g. "
            f"-p dnabert.checkpoint=/data/dnabert/{k}-new-12w-0. To train DNABERT's architecture from random "
            f"weights on purpose (its scores then measure the architecture, not the pre-training), "
            f"set -p dnabert.init=scratch.")


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
    from transformers import BertConfig

    if size not in SIZES:
        raise DNABERTError(f"dnabert.size: {size!r} is not one of {', '.join(SIZES)}")
    check_attention(attn_implementation)
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
    from transformers import BertForSequenceClassification

    return BertForSequenceClassification(scratch_config(k, size, **options))


def sized_for_cpu(model: BertForSequenceClassification) -> BertForSequenceClassification:
    """`model`, telling `rbp.train.logits_of` how many tokens one CPU pass should hold (`cpu_pass_tokens`):
    CPU_PASS_BYTES of its feed-forward activations (small: 8,192 tokens, about 100 sequences of 81 nt;
    base: 682)."""
    model.cpu_pass_tokens = max(1, CPU_PASS_BYTES // (4 * model.config.intermediate_size))
    return model


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
        check_attention(attn_implementation)
        if params.initialisation == "pretrained" and not params.checkpoint:
            raise DNABERTError(needs_checkpoint(k))
        if params.init == "scratch" and params.checkpoint:
            raise DNABERTError(f"dnabert.init is scratch, but dnabert.checkpoint names {params.checkpoint!r}")
        self.params, self.k, self.attn_implementation = params, k, attn_implementation
        self.checkpoint = read_checkpoint(local_checkpoint(params.checkpoint), k) if params.checkpoint else None
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
                _, fresh = load_with_info(self.checkpoint, params.hidden_dropout, params.attention_dropout,
                                 attn_implementation)
            self.new_head = any(key.startswith("classifier.") for key in fresh)

    @property
    def megabytes(self) -> float:
        """The size of one fold model's weights in float32 (counted without building it)."""
        from transformers import BertForSequenceClassification

        with torch.device("meta"):
            shell = BertForSequenceClassification(self.config)
        return sum(p.numel() for p in shell.parameters()) * 4 / 1e6

    @property
    def log_checkpoints(self) -> bool:
        """Whether each fold's best model is logged as well: `log_checkpoints`, or (null) when a fold
        model is at most CHECKPOINT_LOG_MB (the registered model holds every fold's weights anyway)."""
        if self.params.log_checkpoints is not None:
            return self.params.log_checkpoints
        return self.megabytes <= CHECKPOINT_LOG_MB

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
        model = load_model(self.checkpoint, **options) if self.checkpoint else \
            scratch_model(self.k, self.params.size, **options)
        return sized_for_cpu(draw_on_cpu_fast(model))  # its hidden dropout's masks (`rbp.dropout`)

    def encode(self, sequences: Sequence[str]) -> dict[str, torch.Tensor]:
        """Token ids and mask. A sequence with more k-mers than `max_seq_length` - 2 keeps its centred
        part (the binding site of a CLIP peak sits in the middle), never just its start."""
        from rbp.data import center_window  # here: rbp.data brings scikit-learn, which the params need not

        # The checkpoint's own vocab.txt wins; DNABERT's order takes the vectorised path.
        fast = self.checkpoint is None or self.checkpoint.uses_dnabert_vocab
        tokenizer = None if fast else self.checkpoint.tokenizer
        longest = self.params.max_seq_length - 2 + self.k - 1  # nt that fit between [CLS] and [SEP]
        return encode(center_window(sequences, longest), self.k, self.params.max_seq_length, tokenizer)

    def save(self, model: BertForSequenceClassification, directory: str | Path) -> Path:
        return save_checkpoint(model, directory, self.vocab)

    def load(self, directory: str | Path) -> BertForSequenceClassification:
        return sized_for_cpu(load_checkpoint(directory, self.k, attn_implementation=self.attn_implementation).eval())

    def embeddings(self, model: BertForSequenceClassification) -> torch.nn.Module:
        return model.bert.embeddings.word_embeddings

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

