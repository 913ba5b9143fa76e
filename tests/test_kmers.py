import numpy as np
import pytest

from rbp.errors import RbpError
from rbp.kmers import encode_kmers, kmer_strings, kmer_vocab, mask_kmers


def test_vocab_matches_dnabert_ids():
    vocab = kmer_vocab(3)
    assert len(vocab) == 69
    assert vocab[:5] == ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
    expected = {"AAA": 5, "AAT": 6, "AAC": 7, "AAG": 8, "ATA": 9, "ACG": 16, "CGT": 50, "GGG": 68}
    assert {kmer: vocab.index(kmer) for kmer in expected} == expected


@pytest.mark.parametrize("k", [3, 4, 5, 6])
def test_vocab_sizes(k):
    vocab = kmer_vocab(k)
    assert len(vocab) == 5 + 4**k and len(set(vocab)) == len(vocab)
    assert vocab[5] == "A" * k and vocab[-1] == "G" * k


def test_vocab_is_dnabert_vocab_txt():
    lines = kmer_vocab(3)
    assert len(lines) == 69 and lines[2] == "[CLS]" and lines[16] == "ACG" and lines[50] == "CGT"


def test_encode_adds_cls_sep_and_pads():
    ids = encode_kmers(["ACGTAC", "ACGT"], 3)
    assert ids.tolist() == [[2, 16, 50, 57, 23, 3], [2, 16, 50, 3, 0, 0]]


def test_81_nt_gives_81_tokens():
    ids = encode_kmers(["ACGT" * 20 + "A"], 3)
    assert ids.shape == (1, 81) and ids[0, 0] == 2 and ids[0, -1] == 3


def test_unknown_letters_become_unk():
    ids = encode_kmers(["AANAAA"], 3, add_special_tokens=False)
    assert ids.tolist() == [[1, 1, 1, 5]]


def test_without_special_tokens_and_truncation():
    assert encode_kmers(["ACGTAC"], 3, add_special_tokens=False).tolist() == [[16, 50, 57, 23]]
    assert encode_kmers(["ACGTAC"], 3, max_length=4).tolist() == [[2, 16, 50, 3]]


@pytest.mark.parametrize("k", [3, 4, 5, 6])
def test_encode_agrees_with_vocab_lookup(k):
    rng = np.random.default_rng(k)
    seqs = ["".join(rng.choice(list("ACGT"), size=n)) for n in (k, 17, 40)]
    vocab = {kmer: i for i, kmer in enumerate(kmer_vocab(k))}
    ids = encode_kmers(seqs, k)
    for row, seq in zip(ids, seqs, strict=True):
        expected = [2] + [vocab[seq[i:i + k]] for i in range(len(seq) - k + 1)] + [3]
        assert row[: len(expected)].tolist() == expected
        assert not row[len(expected):].any()


def test_kmer_strings_are_dnabert_format():
    assert kmer_strings(["ACGTA"], 3) == ["ACG CGT GTA"]


def test_unsupported_k():
    with pytest.raises(RbpError, match="k: 7 is not supported"):
        kmer_vocab(7)


def test_mask_kmers_masks_only_kmer_tokens_at_about_the_fraction():
    import torch

    from rbp.kmers import CLS_ID, MASK_ID, PAD_ID, SEP_ID, UNK_ID

    ids = torch.from_numpy(encode_kmers(["ACGTNACGTACGT" * 20, "ACGT" * 10], 3))
    masked = mask_kmers(ids, 0.3, torch.Generator().manual_seed(0))
    changed = masked != ids
    assert (masked[changed] == MASK_ID).all()
    assert not changed[(ids == PAD_ID) | (ids == CLS_ID) | (ids == SEP_ID) | (ids == UNK_ID)].any()
    share = changed.sum().item() / (ids >= 5).sum().item()
    assert 0.2 < share < 0.4
    assert torch.equal(mask_kmers(ids, 0.0, torch.Generator().manual_seed(0)), ids)
    assert torch.equal(mask_kmers(ids, 0.3, torch.Generator().manual_seed(0)), masked)
