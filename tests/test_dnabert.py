"""rbp.dnabert: DNABERT checkpoints as DNABERT publishes them, tokenisation, scratch models, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import BertForSequenceClassification, BertTokenizer

from rbp.data import sha256_file
from rbp.dnabert import SIZES, DNABERTFamily, DNABERTParams, encode, scratch_config, scratch_model
from rbp.dnabert_checkpoint import DNABERTError, load_checkpoint, read_checkpoint, save_checkpoint
from rbp.kmers import kmer_vocab
from rbp.train import probability_of
from tests.dnabert_layout import mlm_state_dict, write_dnabert_checkpoint

# DNABERT-3's ids (k-mers ordered over A, T, C, G): ACG=16, CGT=50, GTA=57, TAC=23.
ACGTAC_IDS = [2, 16, 50, 57, 23, 3]
SEQUENCES = ["ACGTAC", "GGGTTTAAACCCACGT", "ACNTA", "TTT", "AC"]


@pytest.fixture
def checkpoint_dir(tmp_path):
    return write_dnabert_checkpoint(tmp_path / "dnabert3")


def logits_of(model, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


# --------------------------------------------------------------------------- loading DNABERT's layout


@pytest.mark.parametrize("weights", ["bin", "legacy", "safetensors"])
def test_dnabert_layout_loads_with_a_new_two_label_head(tmp_path, weights):
    directory = write_dnabert_checkpoint(tmp_path / "ck", weights=weights)
    assert json.loads((directory / "config.json").read_text())["model_type"] == "bert"  # as DNABERT's fork writes
    torch.manual_seed(0)
    model = load_checkpoint(directory, k=3)

    assert isinstance(model, BertForSequenceClassification)
    assert model.config.num_labels == 2 and model.classifier.weight.shape == (2, 32)
    assert model.config._attn_implementation == "sdpa"
    in_file = mlm_state_dict(json.loads((directory / "config.json").read_text()), seed=0)
    loaded = model.state_dict()
    encoder_keys = [key for key in in_file if key.startswith("bert.")]
    assert len(encoder_keys) > 30
    for key in encoder_keys:
        assert torch.equal(loaded[key], in_file[key]), key
    assert logits_of(model, encode(SEQUENCES, 3, 100)).shape == (len(SEQUENCES), 2)


def test_the_legacy_file_is_saved_as_dnabert_saved_it(tmp_path):
    import zipfile

    weights = write_dnabert_checkpoint(tmp_path / "ck", weights="legacy") / "pytorch_model.bin"
    assert not zipfile.is_zipfile(weights)  # torch's serialisation before 1.6
    state = torch.load(weights, weights_only=True)
    assert len(state) == 46
    shared = [("cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight"),
              ("cls.predictions.decoder.bias", "cls.predictions.bias")]
    for a, b in shared:
        assert state[a].untyped_storage().data_ptr() == state[b].untyped_storage().data_ptr(), (a, b)


def test_a_model_hub_copy_loads_without_ever_importing_its_code(tmp_path):
    import sys

    directory = write_dnabert_checkpoint(tmp_path / "hub", weights="legacy", hub=True)
    assert "auto_map" in json.loads((directory / "config.json").read_text())
    assert json.loads((directory / "tokenizer_config.json").read_text())["tokenizer_class"] == "DNATokenizer"
    family = DNABERTFamily(DNABERTParams(checkpoint=str(directory), max_epochs=1), 3)
    model = family.build()
    batch = family.encode(["ACGTACGTTAGC", "GGGTTTAAACCC"])
    assert batch["input_ids"][0, :5].tolist() == ACGTAC_IDS[:5]  # DNABERT's ids, not a custom tokenizer's
    loss = model(**batch, labels=torch.tensor([1, 0])).loss
    loss.backward()  # a training step's worth of use
    assert family.tags()["init"] == "pretrained"
    assert not (directory / "IMPORTED").exists()
    assert not any(name.endswith(("modeling_dnabert", "configuration_dnabert", "tokenization_dnabert"))
                   for name in sys.modules)


def test_a_model_hub_id_is_refused_at_once_not_looked_up(monkeypatch):
    import os

    import huggingface_hub

    assert os.environ["HF_HUB_OFFLINE"] == "1"

    def no_network(*args, **kwargs):
        raise AssertionError("the hub was asked")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    with pytest.raises(DNABERTError, match=r"'zhihan1996/DNA_bert_3' looks like a model hub id, but checkpoints "
                                           r"are read only from a local directory .*hf download"):
        DNABERTFamily(DNABERTParams(checkpoint="zhihan1996/DNA_bert_3"), 3)


def test_family_from_checkpoint_tags_hash_and_fresh_models(checkpoint_dir):
    params = DNABERTParams(checkpoint=str(checkpoint_dir), hidden_dropout=0.3, attention_dropout=0.2)
    torch.manual_seed(5)
    expected_next = torch.rand(3)
    torch.manual_seed(5)
    family = DNABERTFamily(params, k=3)
    assert torch.equal(torch.rand(3), expected_next), "creating the family must not move the caller's RNG"

    assert family.name == "dnabert" and family.pretrained
    assert family.tags() == {"init": "pretrained", "checkpoint": str(checkpoint_dir.resolve()),
                           "weights_sha256": sha256_file(checkpoint_dir / "pytorch_model.bin")}
    assert "pre-trained checkpoint" in family.describe() and "NOT" not in family.describe()
    assert "new, randomly initialised classification head" in family.describe()

    torch.manual_seed(1)
    first = family.build()
    torch.manual_seed(1)
    second = family.build()
    assert first is not second
    assert first.config.hidden_dropout_prob == 0.3 and first.config.attention_probs_dropout_prob == 0.2
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{key}: same seed, same fresh model"


def test_eager_attention_gives_the_same_logits(checkpoint_dir):
    batch = encode(SEQUENCES, 3, 100)
    torch.manual_seed(0)
    sdpa = load_checkpoint(checkpoint_dir, attn_implementation="sdpa")
    torch.manual_seed(0)
    eager = load_checkpoint(checkpoint_dir, attn_implementation="eager")
    assert eager.config._attn_implementation == "eager"
    torch.testing.assert_close(logits_of(sdpa, batch), logits_of(eager, batch), atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- tokenisation


def test_tokenises_to_dnabert_ids_on_both_paths(checkpoint_dir):
    tokenizer = read_checkpoint(checkpoint_dir).tokenizer
    fast = encode(["ACGTAC"], 3)
    assert fast["input_ids"].tolist() == [ACGTAC_IDS]
    for max_length in (None, 5, 100):
        fast = encode(SEQUENCES, 3, max_length)
        slow = encode(SEQUENCES, 3, max_length, tokenizer=tokenizer)
        assert fast["input_ids"].dtype == slow["input_ids"].dtype == torch.int64
        assert torch.equal(fast["input_ids"], slow["input_ids"]), max_length
        assert torch.equal(fast["attention_mask"], slow["attention_mask"]), max_length


def test_encoding_pads_truncates_and_masks():
    batch = encode(["ACGTAC", "ACGT", "ACNT"], 3, max_length=5)
    assert batch["input_ids"].tolist() == [[2, 16, 50, 57, 3], [2, 16, 50, 3, 0], [2, 1, 1, 3, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0]]
    assert encode([], 3)["input_ids"].shape == (0, 2)


def test_lowercasing_trap_is_avoided(checkpoint_dir):
    """DNABERT's tokenizer_config.json says do_lower_case: true; BERT's tokenizer obeys it by default."""
    assert json.loads((checkpoint_dir / "tokenizer_config.json").read_text())["do_lower_case"] is True
    kmers = " ".join(kmer_vocab(3)[5:])

    # The trap: the plain way to load the tokenizer lower-cases "ACG" to "acg", which is not in the
    # vocabulary, so every k-mer becomes [UNK] (id 1) and the model sees no sequence at all.
    naive = BertTokenizer.from_pretrained(checkpoint_dir)
    assert set(naive(kmers, add_special_tokens=False)["input_ids"]) == {1}

    ours = read_checkpoint(checkpoint_dir).tokenizer
    ids = ours(kmers, add_special_tokens=False)["input_ids"]
    assert 1 not in ids and ids == list(range(5, 69))
    family = DNABERTFamily(DNABERTParams(checkpoint=str(checkpoint_dir)), k=3)
    assert 1 not in family.encode(["".join(kmer_vocab(3)[5:])])["input_ids"].tolist()[0]


def test_checkpoint_vocab_in_its_own_order_wins(checkpoint_dir):
    shuffled = list(kmer_vocab(3))
    shuffled[5:] = sorted(shuffled[5:])  # A, C, G, T order: a different id for most k-mers
    (checkpoint_dir / "vocab.txt").write_text("\n".join(shuffled) + "\n")
    family = DNABERTFamily(DNABERTParams(checkpoint=str(checkpoint_dir)), k=3)
    assert not family.checkpoint.uses_dnabert_vocab
    ids = family.encode(["ACGTAC"])["input_ids"].tolist()[0]
    assert ids == [2] + [shuffled.index(kmer) for kmer in ("ACG", "CGT", "GTA", "TAC")] + [3]
    assert ids != ACGTAC_IDS


# --------------------------------------------------------------------------- errors


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _unrelated_weights(directory):
    torch.save({"linear.weight": torch.zeros(2, 2)}, directory / "pytorch_model.bin")


def _lowercase_vocab(directory):
    tokens = kmer_vocab(3)
    (directory / "vocab.txt").write_text("\n".join(tokens[:5] + tuple(t.lower() for t in tokens[5:])) + "\n")


def _other_size_config(directory):
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "intermediate_size": 64}))


def _write(name, text):
    return lambda directory: (directory / name).write_text(text)


def _delete(name):
    return lambda directory: (directory / name).unlink()


BROKEN = {
    "missing config": (_delete("config.json"), r"missing config\.json \(expected config\.json"),
    "missing vocab": (_delete("vocab.txt"), r"missing vocab\.txt"),
    "missing weights": (_delete("pytorch_model.bin"), r"missing model\.safetensors or pytorch_model\.bin"),
    "invalid json": (_write("config.json", '{"vocab_size": 69,'), r"config\.json: not valid JSON"),
    "vocab size": (_write("vocab.txt", "\n".join(kmer_vocab(3)[:60]) + "\n"),
                   r"vocab\.txt: 60 tokens, but .*config\.json says vocab_size 69"),
    "lower-case vocab": (_lowercase_vocab, r"maps 64 of 64 valid 3-mers to \[UNK\] \(e\.g\. AAA\)"),
    "truncated weights": (lambda d: _truncate(d / "pytorch_model.bin"),
                          r"pytorch_model\.bin: the weights do not load .*is the file complete"),
    "unrelated weights": (_unrelated_weights, r"pytorch_model\.bin: \d+ encoder weights are not in the file"),
    "weights of another size": (_other_size_config, r"pytorch_model\.bin: 6 weights do not fit config\.json"),
    "other model type": (_write("config.json", '{"model_type": "roberta", "vocab_size": 69}'),
                         r"model_type 'roberta' is not a BERT"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_checkpoints_fail_when_the_family_is_created(checkpoint_dir, case):
    breaks, message = BROKEN[case]
    breaks(checkpoint_dir)
    with pytest.raises(DNABERTError, match=message) as raised:
        DNABERTFamily(DNABERTParams(checkpoint=str(checkpoint_dir)), k=3)
    assert str(checkpoint_dir) in str(raised.value)


def test_truncated_safetensors_fail(tmp_path):
    directory = write_dnabert_checkpoint(tmp_path / "ck", weights="safetensors")
    _truncate(directory / "model.safetensors")
    with pytest.raises(DNABERTError, match=r"model\.safetensors: the weights do not load"):
        load_checkpoint(directory)


def test_missing_directory(tmp_path):
    with pytest.raises(DNABERTError, match=r"nowhere: no such directory"):
        DNABERTFamily(DNABERTParams(checkpoint=str(tmp_path / "nowhere")), k=3)


def test_vocabulary_k_must_match_the_data_k(tmp_path):
    directory = write_dnabert_checkpoint(tmp_path / "dnabert4", k=4)
    with pytest.raises(DNABERTError, match=r"vocabulary of 4-mers .* encoded as 3-mers \(k = 3\)"):
        DNABERTFamily(DNABERTParams(checkpoint=str(directory)), k=3)
    assert read_checkpoint(directory).k == 4


def test_max_seq_length_beyond_the_position_embeddings(checkpoint_dir):
    with pytest.raises(DNABERTError, match=r"max_seq_length: 600 tokens.*max_position_embeddings 512"):
        DNABERTFamily(DNABERTParams(checkpoint=str(checkpoint_dir), max_seq_length=600), k=3)


# --------------------------------------------------------------------------- scratch


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("k", [3, 4])
def test_scratch_config_is_dnabert_architecture(size, k):
    config = scratch_config(k, size)
    assert config.vocab_size == 5 + 4**k and config.num_labels == 2
    for key, value in SIZES[size].items():
        assert getattr(config, key) == value
    assert SIZES["base"]["hidden_size"] == 768 and SIZES["base"]["num_hidden_layers"] == 12


def test_scratch_family_is_never_presented_as_pretrained():
    family = DNABERTFamily(DNABERTParams(size="small", hidden_dropout=0.25), k=3)
    assert not family.pretrained
    assert family.tags() == {"init": "scratch", "size": "small"}
    assert "**NOT pre-trained**" in family.describe() and "\n" not in family.describe()
    torch.manual_seed(0)
    model = family.build()
    assert model.config.hidden_dropout_prob == 0.25
    assert model.bert.embeddings.word_embeddings.weight.shape == (69, SIZES["small"]["hidden_size"])
    assert len(model.bert.encoder.layer) == SIZES["small"]["num_hidden_layers"]
    assert family.build() is not model
    batch = family.encode(SEQUENCES)
    assert batch["input_ids"].shape == (len(SEQUENCES), 16)  # 14 3-mers of the longest + [CLS], [SEP]
    probs = probability_of(logits_of(model, batch))
    assert probs.shape == (len(SEQUENCES),) and bool(((probs > 0) & (probs < 1)).all())


def test_scratch_rejects_unknown_size_and_attention():
    with pytest.raises(DNABERTError, match="dnabert.size: 'huge'"):
        scratch_model(3, "huge")
    with pytest.raises(DNABERTError, match="attn_implementation: 'flash'"):
        DNABERTFamily(DNABERTParams(), k=3, attn_implementation="flash")


# --------------------------------------------------------------------------- save and reload


def test_save_and_load_give_identical_predictions(tmp_path, checkpoint_dir):
    torch.manual_seed(0)
    family = DNABERTFamily(DNABERTParams(checkpoint=str(checkpoint_dir)), k=3)
    model = family.build()
    batch = family.encode(SEQUENCES)
    before = logits_of(model, batch)

    saved = family.save(model, tmp_path / "saved")
    assert (saved / "model.safetensors").is_file() and (saved / "vocab.txt").is_file()
    assert json.loads((saved / "tokenizer_config.json").read_text())["do_lower_case"] is False
    assert torch.equal(logits_of(load_checkpoint(saved), batch), before)
    # The reloaded head is the saved one, not a new random one; and plain transformers reads it too.
    reloaded_family = DNABERTFamily(DNABERTParams(checkpoint=str(saved)), k=3)
    assert not reloaded_family.new_head and "head saved with it" in reloaded_family.describe()
    assert torch.equal(logits_of(reloaded_family.build(), batch), before)
    plain = BertForSequenceClassification.from_pretrained(saved, local_files_only=True)
    assert torch.equal(logits_of(plain, batch), before)
    assert BertTokenizer.from_pretrained(saved)("ACG CGT GTA TAC")["input_ids"] == ACGTAC_IDS


def test_save_scratch_model_with_k(tmp_path):
    torch.manual_seed(0)
    model = scratch_model(3, "small")
    batch = encode(SEQUENCES, 3, 100)
    save_checkpoint(model, tmp_path / "scratch", 3)
    assert torch.equal(logits_of(load_checkpoint(tmp_path / "scratch", k=3), batch), logits_of(model, batch))
    with pytest.raises(DNABERTError, match="261 tokens for a model with vocab_size 69"):
        save_checkpoint(model, tmp_path / "wrong", 4)


# --------------------------------------------------------------------------- padding


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_padding_does_not_change_logits(checkpoint_dir, attn_implementation):
    torch.manual_seed(0)
    model = load_checkpoint(checkpoint_dir, attn_implementation=attn_implementation)
    short, long = "ACGTACGTTA", "GGGTTTAAACCCACGTACGTAGCTAGCTAGGATC"
    alone = logits_of(model, encode([short], 3))
    padded_batch = encode([short, long], 3)
    assert padded_batch["attention_mask"][0].sum() < padded_batch["attention_mask"].shape[1]
    padded = logits_of(model, padded_batch)
    torch.testing.assert_close(padded[0], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded[1], logits_of(model, encode([long], 3))[0], atol=1e-5, rtol=1e-5)


def test_family_keeps_the_centre_of_sequences_longer_than_the_token_limit():
    from rbp.dnabert import DNABERTFamily, DNABERTParams

    family = DNABERTFamily(DNABERTParams(max_seq_length=10), 3)
    long = "A" * 20 + "CGTACGTACG" + "T" * 20  # 50 nt; 8 k-mers fit between [CLS] and [SEP]
    ids = family.encode([long])["input_ids"][0]
    assert len(ids) == 10 and ids[0] == 2 and ids[-1] == 3
    centre = long[(50 - 10) // 2:(50 - 10) // 2 + 10]
    assert centre == "CGTACGTACG"
    assert ids.tolist() == family.encode([centre])["input_ids"][0].tolist()


def test_the_family_says_how_it_starts_and_refuses_pretrained_without_a_checkpoint(checkpoint_dir):
    with pytest.raises(DNABERTError, match="dnabert.init is pretrained, but dnabert.checkpoint names no checkpoint"):
        DNABERTFamily(DNABERTParams(init="pretrained"), 3)
    with pytest.raises(DNABERTError, match="dnabert.init is scratch, but dnabert.checkpoint names"):
        DNABERTFamily(DNABERTParams(init="scratch", checkpoint=str(checkpoint_dir)), 3)
    assert DNABERTFamily(DNABERTParams(init="scratch"), 3).tags()["init"] == "scratch"
    assert DNABERTFamily(DNABERTParams(checkpoint=str(checkpoint_dir)), 3).tags()["init"] == "pretrained"


def test_fold_checkpoints_are_logged_by_size_not_by_device():
    small, base = DNABERTFamily(DNABERTParams(size="small"), 3), DNABERTFamily(DNABERTParams(size="base"), 3)
    assert small.megabytes == pytest.approx(sum(p.numel() for p in small.build().parameters()) * 4 / 1e6)
    assert small.megabytes < 1 and 300 < base.megabytes < 400  # DNABERT-3 base: 86 M float32 weights
    assert small.log_checkpoints and not base.log_checkpoints
    assert DNABERTFamily(DNABERTParams(size="base", log_checkpoints=True), 3).log_checkpoints
    assert not DNABERTFamily(DNABERTParams(log_checkpoints=False), 3).log_checkpoints


def test_built_models_draw_their_hidden_dropout_fast_from_scratch_or_a_checkpoint(tmp_path):
    from torch import nn

    from rbp.dropout import Dropout

    directory = write_dnabert_checkpoint(tmp_path / "ckpt")
    for family in (DNABERTFamily(DNABERTParams(init="scratch", size="small", hidden_dropout=0.2), 3),
                   DNABERTFamily(DNABERTParams(checkpoint=str(directory), hidden_dropout=0.2), 3)):
        dropouts = [m for m in family.build().modules() if isinstance(m, nn.Dropout)]
        assert dropouts and all(type(m) is Dropout for m in dropouts)
        assert {m.p for m in dropouts} >= {0.2}


def test_evaluated_on_a_cpu_a_model_runs_in_passes_its_caches_hold(tmp_path):
    """Passes of 512 small-DNABERT rows outgrow the caches: a built or loaded model runs in passes of
    `cpu_pass_tokens`, alone or as an ensemble's member, with the same scores."""
    from rbp.ensemble import MeanProbability
    from rbp.train import predict

    torch.manual_seed(0)
    family = DNABERTFamily(DNABERTParams(), k=3)
    model = family.build()
    loaded = family.load(family.save(model, tmp_path / "saved"))
    assert model.cpu_pass_tokens == loaded.cpu_pass_tokens == 8 * 2**20 // (4 * SIZES["small"]["intermediate_size"])
    generator = torch.Generator().manual_seed(1)
    sequences = ["".join("ACGT"[i] for i in torch.randint(0, 4, (81,), generator=generator)) for _ in range(300)]
    inputs = family.encode(sequences)  # 81 tokens: [CLS], 79 3-mers, [SEP]
    rows = []
    loaded.register_forward_pre_hook(lambda _, args, kwargs: rows.append(len(kwargs["input_ids"])), with_kwargs=True)
    scores = predict(loaded, inputs, batch_size=512)
    assert rows == [101, 101, 98]  # 8,192 tokens // 81
    member = predict(MeanProbability({"dnabert": loaded, "same": model}),
                     {f"{name}.{key}": value for name in ("dnabert", "same") for key, value in inputs.items()},
                     batch_size=512, logits=True)
    assert rows[3:] == [101, 101, 98]  # inside the ensemble too
    np.testing.assert_allclose(member, torch.logit(torch.from_numpy(scores).double()).numpy(),
                               atol=1e-5)
    loaded.cpu_pass_tokens = None
    np.testing.assert_allclose(predict(loaded, inputs, batch_size=512), scores, atol=1e-6)
    assert rows[6:] == [300]
