"""Overlapping sequences (windows of one site) are grouped, and every split keeps a group together."""

import numpy as np
import pytest

from rbp.data import DataError, make_folds
from rbp.overlap import overlap_groups


def _genome(n, seed=0):
    return "".join(np.random.default_rng(seed).choice(list("ACGT"), n))


def test_windows_of_one_site_share_a_group_and_others_do_not():
    genome = _genome(2000)
    sequences = [genome[100:201], genome[130:231],  # overlap by 71 nt
                 genome[190:291],  # overlaps the second by 41 nt, the first by 11: joined through the second
                 genome[1000:1101], genome[1070:1171],  # overlap by 31 nt: under 40, apart
                 genome[1500:1601].lower().replace("t", "u"),  # RNA, lower case ...
                 genome[1550:1651],  # ... and the same 51 nt in DNA
                 genome[1800:1830]]  # shorter than the overlap: alone
    groups = overlap_groups(sequences, 40)
    assert groups[0] == groups[1] == groups[2]
    assert len({groups[0], groups[3], groups[4], groups[5], groups[7]}) == 5
    assert groups[5] == groups[6]
    assert len(set(overlap_groups(sequences, 72))) == 8  # nothing shares 72 nt
    assert len(overlap_groups([], 40)) == 0


def test_a_stretch_is_compared_whole_not_by_its_hash_alone():
    """Every position of a stretch counts: sequences equal but for one letter in the middle are apart,
    and an N matches only an N."""
    base = _genome(60, seed=1)
    changed = base[:30] + ("A" if base[30] != "A" else "C") + base[31:]
    with_n = base[:30] + "N" + base[31:]
    assert len(set(overlap_groups([base, changed, with_n, with_n.lower()], 40))) == 3
    with pytest.raises(ValueError, match="at least 1 nt"):
        overlap_groups([base], 0)


def _overlapping_set(n_sites=60, windows=4, seed=0):
    """`n_sites` sites, each read as `windows` shifted 101-nt windows; one site in five bound."""
    genome = _genome(n_sites * 400, seed)
    sequences, labels, site = [], [], []
    for s in range(n_sites):
        for w in range(windows):
            start = s * 400 + 10 * w
            sequences.append(genome[start:start + 101])
            labels.append(int(s % 5 == 0))
            site.append(s)
    return sequences, np.array(labels), np.array(site)


@pytest.mark.parametrize("folds", [0, 3])
def test_cross_validation_keeps_every_site_on_one_side_of_every_split(folds):
    sequences, labels, site = _overlapping_set()
    groups = overlap_groups(sequences, 40)
    assert len(set(groups)) == 60 and all(len(set(site[groups == g])) == 1 for g in set(groups))
    table = make_folds(labels, folds, seed=1, val_fraction=0.2, test_fraction=0.25, groups=groups)
    for _, part in table.groupby("fold"):
        assert sorted(part["index"]) == list(range(len(labels)))  # train, dev, test still partition the set
        sides = part.assign(site=site[part["index"]]).groupby("site").split.nunique()
        assert (sides == 1).all()  # no site split between training, validation and test
        for _, rows in part.groupby("split"):
            assert set(labels[rows["index"]]) == {0, 1}
    without = make_folds(labels, folds, seed=1, val_fraction=0.2, test_fraction=0.25)
    assert any((part.assign(site=site[part["index"]]).groupby("site").split.nunique() > 1).any()
               for _, part in without.groupby("fold"))  # a plain split does cut sites: the test above can fail


def test_a_fixed_test_set_keeps_overlapping_training_windows_on_one_side_of_the_validation_split():
    sequences, labels, site = _overlapping_set()
    fixed_test = site >= 45  # the last 15 sites are the given test file
    table = make_folds(labels, 0, seed=0, val_fraction=0.2, fixed_test=fixed_test,
                       groups=overlap_groups(sequences, 40))
    assert set(table.loc[table.split == "test", "index"]) == set(np.flatnonzero(fixed_test))
    training = table[table.split != "test"]
    assert (training.assign(site=site[training["index"]]).groupby("site").split.nunique() == 1).all()
    dev = training.loc[training.split == "dev", "index"]
    assert 0.1 <= len(dev) / len(training) <= 0.3 and set(labels[dev]) == {0, 1}


def test_groups_of_one_sequence_each_split_as_without_groups():
    labels = np.array([1] * 30 + [0] * 70)
    plain = make_folds(labels, 5, seed=3, val_fraction=0.1)
    assert make_folds(labels, 5, seed=3, val_fraction=0.1, groups=np.arange(100)).equals(plain)


def test_a_split_left_with_one_class_by_the_groups_is_refused_by_name():
    labels = np.array([1] * 8 + [0] * 32)
    groups = np.where(labels == 1, 0, np.arange(40))  # every bound sequence one site
    with pytest.raises(DataError, match=r"fold \d: its (train|dev|test) split holds only one class once overlapping "
                                        r"sequences are kept together \(group_overlap\)"):
        make_folds(labels, 2, seed=0, val_fraction=0.2, groups=groups)


def test_prepare_folds_groups_the_windows_of_a_data_set_and_says_how_many(tmp_path):
    from rbp.data import Folds, prepare_folds
    from rbp.fasta import Record, write_fasta
    from rbp.params import load_params

    sequences, labels, site = _overlapping_set()
    for name, label in (("positives.fa", 1), ("negatives.fa", 0)):
        write_fasta(tmp_path / name, [Record(f"s{i}", seq) for i, seq in enumerate(sequences) if labels[i] == label])
    params = load_params(overrides={"data_dir": str(tmp_path), "folds": 3})
    manifest = prepare_folds(params, tmp_path / "run")
    assert manifest["group_overlap"] == 40 and manifest["overlapping"] == len(sequences)
    folds = Folds(tmp_path / "run" / "folds")
    site_of = {f"s{i}": s for i, s in enumerate(site)}
    for fold in folds.fold_numbers:
        sides = {split: {site_of[i] for i in folds.split(fold, split).id} for split in ("train", "dev", "test")}
        assert not (sides["train"] & sides["dev"] or sides["train"] & sides["test"] or sides["dev"] & sides["test"])
    plain = prepare_folds(load_params(overrides={"data_dir": str(tmp_path), "folds": 3, "group_overlap": None}),
                          tmp_path / "plain")
    assert plain["group_overlap"] is None and plain["overlapping"] == 0
