"""A tiny checkpoint in DNABERT's exact on-disk layout, for tests (no model hub, no real weights).

DNABERT's published directories were written by its fork of transformers 2.5 from a `BertForMaskedLM`:
a config.json with `model_type: bert` and that version's generation keys, vocab.txt, a
tokenizer_config.json that (wrongly, for upper-case k-mers) says `do_lower_case: true`,
special_tokens_map.json, and the MLM state dict (46 keys at 2 layers), which in that version still
held the (never trained) pooler, saved by torch before 1.6 (its legacy, non-zip serialisation) with
the decoder weight sharing storage with the word embeddings and `cls.predictions.bias` shared with the
decoder's bias (`weights="legacy"`).

`hub=True` adds what a copy from a model hub carries: an `auto_map` in config.json, a
`tokenizer_class: DNATokenizer` in tokenizer_config.json, and custom code (`.py` files) that must never
be imported: importing it writes `IMPORTED` into the directory and raises.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertForMaskedLM

from rbp.kmers import kmer_vocab

SPECIAL_TOKENS_MAP = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                      "mask_token": "[MASK]"}


def dnabert_config(k: int, hidden: int, layers: int, heads: int) -> dict:
    """config.json as DNABERT ships it (keys of its transformers 2.5 fork's PretrainedConfig)."""
    return {
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "bos_token_id": 0,
        "do_sample": False,
        "eos_token_ids": 0,
        "finetuning_task": None,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": hidden,
        "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
        "initializer_range": 0.02,
        "intermediate_size": 4 * hidden,
        "is_decoder": False,
        "label2id": {"LABEL_0": 0, "LABEL_1": 1},
        "layer_norm_eps": 1e-12,
        "length_penalty": 1.0,
        "max_length": 20,
        "max_position_embeddings": 512,
        "num_attention_heads": heads,
        "num_beams": 1,
        "num_hidden_layers": layers,
        "num_labels": 2,
        "num_return_sequences": 1,
        "num_rnn_layer": 1,
        "output_attentions": False,
        "output_hidden_states": False,
        "output_past": True,
        "pad_token_id": 0,
        "pruned_heads": {},
        "repetition_penalty": 1.0,
        "rnn": "lstm",
        "rnn_dropout": 0.0,
        "rnn_hidden": 768,
        "split": 10,
        "temperature": 1.0,
        "top_k": 50,
        "top_p": 1.0,
        "torchscript": False,
        "type_vocab_size": 2,
        "use_bfloat16": False,
        "vocab_size": len(kmer_vocab(k)),
    }


def mlm_state_dict(config: dict, seed: int) -> dict[str, torch.Tensor]:
    """A random BertForMaskedLM state dict plus the pooler that transformers 2.5 kept in it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForMaskedLM(BertConfig.from_dict(config))
        hidden = config["hidden_size"]
        pooler = {"bert.pooler.dense.weight": torch.randn(hidden, hidden) * 0.02,
                  "bert.pooler.dense.bias": torch.zeros(hidden)}
    # Separate copies: the decoder shares the embedding matrix, which safetensors will not store twice.
    state = {**model.state_dict(), **pooler}
    return {key: value.detach().clone().contiguous() for key, value in state.items()}


def shared_as_dnabert_saved(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ties of transformers 2.5's BertForMaskedLM: one tensor for the decoder and the word
    embeddings, one for `cls.predictions.bias` and the decoder's bias."""
    state = dict(state)
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"]
    state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]
    return state


CUSTOM_CODE = """from pathlib import Path

(Path(__file__).parent / "IMPORTED").write_text(__name__)
raise RuntimeError("custom model-hub code was imported")
"""


def write_dnabert_checkpoint(
    directory: str | Path,
    k: int = 3,
    weights: str = "bin",
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    lowercase_config: bool = True,
    seed: int = 0,
    hub: bool = False,
) -> Path:
    """Write a tiny DNABERT-k checkpoint into `directory` (created) and return the directory.

    `weights`: `bin` (torch's zip format), `legacy` (pre-1.6 serialisation, tied tensors shared, as
    DNABERT's files are) or `safetensors`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = dnabert_config(k, hidden, layers, heads)
    tokenizer_config = {"do_lower_case": True, "max_len": 512} if lowercase_config else None
    if hub:
        config["auto_map"] = {"AutoConfig": "configuration_dnabert.DNABertConfig",
                              "AutoModel": "modeling_dnabert.DNABertModel",
                              "AutoModelForSequenceClassification": "modeling_dnabert.DNABertForSequenceClassification"}
        tokenizer_config = {**(tokenizer_config or {}), "tokenizer_class": "DNATokenizer",
                            "auto_map": {"AutoTokenizer": ["tokenization_dnabert.DNATokenizer", None]}}
        for module in ("configuration_dnabert", "modeling_dnabert", "tokenization_dnabert"):
            (directory / f"{module}.py").write_text(CUSTOM_CODE)
    (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (directory / "vocab.txt").write_text("\n".join(kmer_vocab(k)) + "\n")
    if tokenizer_config:
        (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    (directory / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS_MAP))
    state = mlm_state_dict(config, seed)
    if weights == "bin":
        torch.save(state, directory / "pytorch_model.bin")
    elif weights == "legacy":
        torch.save(shared_as_dnabert_saved(state), directory / "pytorch_model.bin",
                   _use_new_zipfile_serialization=False)
    elif weights == "safetensors":
        save_file(state, directory / "model.safetensors", metadata={"format": "pt"})
    else:
        raise ValueError(f"weights: {weights!r} is not 'bin', 'legacy' or 'safetensors'")
    return directory
