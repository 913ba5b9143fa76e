import json

import numpy as np
import pandas as pd
import pytest

from rbp.data import DataError, Folds, load_labelled, make_folds, prepare_folds, write_folds
from rbp.params import load_params


def _labels(n_pos, n_neg):
    return np.array([1] * n_pos + [0] * n_neg)


@pytest.mark.parametrize("folds", [2, 5])
def test_folds_are_stratified_disjoint_and_covering(folds):
    labels = _labels(53, 47)
    table = make_folds(labels, folds, seed=1, val_fraction=0.2)
    tests = table[table.split == "test"]
    assert sorted(tests["index"]) == list(range(100))  # each position tested exactly once
    for fold, part in table.groupby("fold"):
        assert sorted(part["index"]) == list(range(100))  # train, dev, test partition the set
        for split, rows in part.groupby("split"):
            share = labels[rows["index"]].mean()
            assert abs(share - 0.53) < 0.1, (fold, split, share)
    assert set(table.split) == {"train", "dev", "test"}


def test_folds_are_deterministic_and_seeded():
    labels = _labels(40, 40)
    a = make_folds(labels, 5, seed=3, val_fraction=0.1)
    pd.testing.assert_frame_equal(a, make_folds(labels, 5, seed=3, val_fraction=0.1))
    assert not a.equals(make_folds(labels, 5, seed=4, val_fraction=0.1))


def test_single_split_when_folds_is_zero():
    table = make_folds(_labels(50, 50), 0, seed=0, val_fraction=0.1, test_fraction=0.3)
    assert set(table.fold) == {1}
    assert (table.split == "test").sum() == 30


def test_too_few_sequences_for_folds():
    with pytest.raises(DataError, match="too few sequences for 5 folds: 4 positives and 10 negatives"):
        make_folds(_labels(4, 10), 5, seed=0, val_fraction=0.1)


def test_single_class():
    with pytest.raises(DataError, match="only one class"):
        make_folds(_labels(10, 0), 2, seed=0, val_fraction=0.1)


def test_labelled_set(write_fasta_text):
    pos = write_fasta_text("p.fa", ">p1\nACGU\n>p2\nAAAA\n")
    neg = write_fasta_text("n.fa", ">n1\nCCCC\n")
    data = load_labelled(pos, neg)
    assert data.table.to_dict("list") == {"id": ["p1", "p2", "n1"], "sequence": ["ACGT", "AAAA", "CCCC"],
                                          "label": [1, 1, 0]}
    assert data.sources["positives"]["records"] == 2 and len(data.data_sha256) == 64


def test_shorter_than_k(write_fasta_text):
    pos = write_fasta_text("p.fa", ">p1\nACGU\n>p2\nAA\n")
    neg = write_fasta_text("n.fa", ">n1\nCCCC\n")
    with pytest.raises(DataError, match=r"p\.fa: record 'p2' has 2 nt, shorter than k = 3"):
        load_labelled(pos, neg, k=3)


def test_id_in_both_files(write_fasta_text):
    pos = write_fasta_text("p.fa", ">x\nACGU\n")
    neg = write_fasta_text("n.fa", ">x\nCCCC\n")
    with pytest.raises(DataError, match=r"id 'x' stands in both .*p\.fa and .*n\.fa"):
        load_labelled(pos, neg)


def test_no_negatives_left(write_fasta_text):
    pos = write_fasta_text("p.fa", ">x\nACGU\n")
    neg = write_fasta_text("n.fa", ">y\nNNNN\n")
    with pytest.raises(DataError, match="no usable negatives"):
        load_labelled(pos, neg)


def test_write_and_read_folds(small_data_dir, tmp_path):
    data = load_labelled(small_data_dir / "positives.fa", small_data_dir / "negatives.fa", k=3)
    assignment = make_folds(data.table.label, 3, seed=0, val_fraction=0.2)
    manifest = write_folds(data, assignment, tmp_path / "run" / "folds", 3, seed=0)
    folds_dir = tmp_path / "run" / "folds"
    assert json.loads((folds_dir / "manifest.json").read_text()) == manifest
    assert manifest["counts"] == {"total": 120, "positives": 60, "negatives": 60}
    assert manifest["inputs"]["positives"]["sha256"] and manifest["k"] == 3
    dnabert = pd.read_csv(folds_dir / "fold-1" / "train.tsv", sep="\t")
    assert list(dnabert.columns) == ["sequence", "label"]
    assert all(len(s.split(" ")) == 79 and len(s.split(" ")[0]) == 3 for s in dnabert.sequence)
    folds = Folds(folds_dir)
    assert folds.fold_numbers == [1, 2, 3]
    tests = pd.concat(folds.split(f, "test") for f in folds.fold_numbers)
    assert sorted(tests.id) == sorted(data.table.id)
    for f in folds.fold_numbers:
        ids = [set(folds.split(f, s).id) for s in ("train", "dev", "test")]
        assert sum(map(len, ids)) == 120 and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sorted(p.name for p in tmp_path.joinpath("run").iterdir()) == ["folds"]  # no temp left


def test_failed_write_leaves_nothing(small_data_dir, tmp_path, monkeypatch):
    data = load_labelled(small_data_dir / "positives.fa", small_data_dir / "negatives.fa")
    assignment = make_folds(data.table.label, 3, seed=0, val_fraction=0.2)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("rbp.data.build_manifest", boom)
    with pytest.raises(OSError):
        write_folds(data, assignment, tmp_path / "run" / "folds", 3)
    assert list((tmp_path / "run").iterdir()) == []


def test_prepare_folds_on_synthetic(tmp_path):
    manifest = prepare_folds(load_params(overrides={"folds": 3}), tmp_path)
    assert manifest["synthetic"] is True and manifest["counts"]["total"] == 6202
    assert manifest["group_overlap"] == 40 and manifest["overlapping"] == 0  # random sequences: nothing shared
    assert (tmp_path / "data" / "positives.fa").exists()


def test_pum2_folds(pum2_dir, tmp_path):
    params = load_params(overrides={"data_dir": str(pum2_dir)})
    manifest = prepare_folds(params, tmp_path)
    assert manifest["dataset"] == pum2_dir.name
    assert manifest["counts"] == {"total": 6202, "positives": 3101, "negatives": 3101}
    assert {f["test"] for f in manifest["fold_sizes"]} <= {1240, 1241}
    assert len(manifest["fold_sizes"]) == 5


def test_center_window():
    from rbp.data import center_window

    assert center_window(["AAACCCGGG", "ACGT", "ACGTA"], 3) == ["CCC", "ACG", "CGT"]
    assert center_window(["ACGTAC"], None) == ["ACGTAC"]
    once = center_window(["ACGTACGTAA"], 5)
    assert center_window(once, 5) == once


def test_apply_window_keep_or_drop_short():
    from rbp.data import apply_window

    table = pd.DataFrame({"id": ["a", "b"], "sequence": ["AAACCCGGGTT", "ACGT"], "label": [1, 0]})
    kept = apply_window(table, 5, "keep")
    assert kept.sequence.tolist() == ["CCCGG", "ACGT"]
    assert apply_window(table, 5, "drop").id.tolist() == ["a"]


def test_folds_read_through_a_window_keep_their_assignment(small_data_dir, tmp_path):
    params = load_params(overrides={"data_dir": str(small_data_dir), "folds": 3})
    prepare_folds(params, tmp_path)
    full, cut = Folds(tmp_path / "folds"), Folds(tmp_path / "folds", length=21)
    for fold in full.fold_numbers:
        a, b = full.split(fold, "test"), cut.split(fold, "test")
        assert a.id.tolist() == b.id.tolist()
        assert (b.sequence.str.len() == 21).all()
        assert [s[30:51] for s in a.sequence] == b.sequence.tolist()  # the centre of 81 nt
    assert cut.length == 21


def test_window_errors(small_data_dir, tmp_path):
    params = load_params(overrides={"data_dir": str(small_data_dir), "folds": 3})
    prepare_folds(params, tmp_path)
    with pytest.raises(DataError, match="length: 2 nt is shorter than k = 3"):
        Folds(tmp_path / "folds", length=2)
    with pytest.raises(DataError, match="length 90: no sequences of that length are left"):
        Folds(tmp_path / "folds", length=90, short_sequences="drop")


def test_preprocess_with_a_window_writes_it_everywhere(small_data_dir, tmp_path):
    params = load_params(overrides={"data_dir": str(small_data_dir), "folds": 2, "length": 31})
    manifest = prepare_folds(params, tmp_path)
    assert manifest["length"] == 31 and manifest["n_dropped_short"] == 0
    dnabert = pd.read_csv(tmp_path / "folds" / "fold-1" / "test.tsv", sep="\t")
    assert {len(s.split(" ")) for s in dnabert.sequence} == {29}
    assert Folds(tmp_path / "folds").length == 31


def test_too_small_a_training_part_gets_our_message_not_scikit_learns():
    with pytest.raises(DataError, match=r"fold 1: its training part \(2 positives, 2 negatives\) is too small "
                                        r"for a stratified validation split of val_fraction 0.1") as info:
        make_folds([1, 1, 1, 0, 0, 0], 3, seed=0, val_fraction=0.1)
    assert "test_size" not in str(info.value)


def test_the_folds_folder_follows_the_umask(tmp_path):
    import os

    from rbp.synthetic import write_synthetic

    pos, neg = write_synthetic(tmp_path / "data", seed=1)
    data = load_labelled(pos, neg)
    previous = os.umask(0o022)
    try:
        write_folds(data, make_folds(data.table.label, 2, 0, 0.1), tmp_path / "folds", 3)
    finally:
        os.umask(previous)
    assert (tmp_path / "folds").stat().st_mode & 0o777 == 0o755


def test_a_record_too_long_to_train_on_is_refused_by_name(tmp_path):
    (tmp_path / "p.fa").write_text(">ok\nACGTACGT\n>huge\n" + "ACGT" * 300 + "\n")
    (tmp_path / "n.fa").write_text(">n\nACGTACGT\n")
    with pytest.raises(DataError, match=r"p\.fa: record 'huge' has 1200 nt, more than max_sequence_length = 1000"):
        load_labelled(tmp_path / "p.fa", tmp_path / "n.fa", max_length=1000)


def test_a_one_megabase_record_is_refused_at_the_default_limit(tmp_path):
    from rbp.data import load_dataset

    data = tmp_path / "d"
    data.mkdir()
    (data / "positives.fa").write_text(">chr_piece\n" + "ACGT" * 250_000 + "\n>ok\nACGTACGT\n")
    (data / "negatives.fa").write_text(">n\nACGTACGT\n")
    params = load_params(overrides={"data_dir": str(data)})
    with pytest.raises(DataError, match="record 'chr_piece' has 1000000 nt, more than max_sequence_length = 100000"):
        load_dataset(params, tmp_path / "run")


def _labelled(path, rows, prefix):
    """A labelled FASTA: `rows` as (label, sequence); ids prefix + number."""
    path.write_text("".join(f"> {prefix}{i}; class:{label}\n{seq}\n" for i, (label, seq) in enumerate(rows)))
    return path


def _rows(n_pos, n_neg, seed=0):
    rng = np.random.default_rng(seed)
    return [(label, "".join(rng.choice(list("ACGT"), 20))) for label in [1] * n_pos + [0] * n_neg]


def test_a_labelled_file_and_a_fixed_test_set(tmp_path):
    train = _labelled(tmp_path / "train.fa", _rows(20, 80), "tr")
    test = _labelled(tmp_path / "test.fa", _rows(10, 40, seed=1), "te")
    data = load_labelled(labelled=train, test_set=test)
    assert list(data.sources) == ["labelled", "test_set"]
    assert data.sources["labelled"]["positives"] == 20 and data.sources["test_set"]["negatives"] == 40
    assert data.fixed_test.sum() == 50 and set(data.table.id[data.fixed_test]) == {f"te{i}" for i in range(50)}
    folds = make_folds(data.table.label, 0, seed=0, val_fraction=0.25, fixed_test=data.fixed_test)
    assert set(folds.fold) == {1}
    by_split = {split: data.table.iloc[part["index"]] for split, part in folds.groupby("split")}
    assert set(by_split["test"].id) == set(data.table.id[data.fixed_test])  # the given test set, whole
    assert not set(by_split["train"].id) & set(by_split["test"].id)
    assert len(by_split["dev"]) == 25 and by_split["dev"].label.sum() == 5  # stratified: 1 in 5 bound
    assert load_labelled(labelled=train).fixed_test is None


def test_a_test_sequence_in_the_training_file_is_refused(tmp_path):
    train = _labelled(tmp_path / "train.fa", _rows(5, 5), "s")
    test = _labelled(tmp_path / "test.fa", _rows(5, 5, seed=1), "s")
    with pytest.raises(DataError, match="id 's0' stands in both .*train.fa and .*test.fa: a test sequence may not "
                                        "be trained on"):
        load_labelled(labelled=train, test_set=test)


@pytest.mark.parametrize("which", ["labelled", "test_set"])
def test_a_labelled_file_of_one_class_is_refused(tmp_path, which):
    good = _labelled(tmp_path / "good.fa", _rows(5, 5), "g")
    one = _labelled(tmp_path / "one.fa", _rows(0, 6), "o")
    files = {"labelled": one, "test_set": good} if which == "labelled" else {"labelled": good, "test_set": one}
    with pytest.raises(DataError, match=r"one\.fa: every usable record is labelled class:0; a labelled FASTA needs "
                                        "both classes"):
        load_labelled(**files)


def test_a_test_set_too_small_to_score_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"b\.fa: the test set holds 1 positives and 5 negatives; each class needs at "
                                        "least 2 to be scored"):
        load_labelled(labelled=_labelled(tmp_path / "a.fa", _rows(10, 10), "a"),
                      test_set=_labelled(tmp_path / "b.fa", _rows(1, 5), "b"))
    with pytest.raises(DataError, match="the test set holds 1 positives and 5 negatives"):  # folds made directly
        make_folds(np.array([1] * 10 + [0] * 10 + [1] + [0] * 5), 0, seed=0, val_fraction=0.2,
                   fixed_test=np.arange(26) >= 20)


def test_params_name_a_labelled_file_and_a_fixed_test_set(tmp_path):
    _labelled(tmp_path / "train.fa", _rows(20, 80), "tr")
    _labelled(tmp_path / "test.fa", _rows(10, 40, seed=1), "te")
    params = load_params(overrides={"data_dir": str(tmp_path), "labelled": "train.fa", "test_set": "test.fa",
                                    "folds": 0, "val_fraction": 0.2})
    manifest = prepare_folds(params, tmp_path / "run")
    assert manifest["protocol"] == "fixed_test" and manifest["test_fraction"] is None
    assert manifest["test_sha256"] == manifest["inputs"]["test_set"]["sha256"]
    assert manifest["fold_sizes"] == [{"fold": 1, "train": 80, "dev": 20, "test": 50}]
    folds = Folds(tmp_path / "run" / "folds")
    assert set(folds.split(1, "test").id) == {f"te{i}" for i in range(50)}
    assert "fixed_test" not in folds.sequences  # the folds folder keeps its columns
    plain = prepare_folds(load_params(overrides={"data_dir": str(tmp_path), "labelled": "train.fa", "folds": 2}),
                          tmp_path / "run2")
    assert plain["protocol"] == "cv" and plain["counts"]["total"] == 100


@pytest.mark.parametrize("overrides, message", [
    ({"data_dir": ".", "test_set": "t.fa"}, "folds must be 0 with a test_set, got 5"),
    ({"labelled": "t.fa"}, "labelled names a file inside data_dir: set data_dir too"),
    ({"data_dir": ".", "label_key": "class:"}, "label_key must be a word"),
])
def test_params_of_labelled_data_are_checked(overrides, message):
    from rbp.errors import ParamsError

    with pytest.raises(ParamsError, match=message):
        load_params(overrides=overrides)
