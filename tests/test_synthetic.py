from rbp.data import load_labelled
from rbp.motifs import motif_regex, motif_share
from rbp.synthetic import make_synthetic, write_synthetic


def test_shape_and_determinism():
    pos, neg = make_synthetic(seed=5)
    assert (len(pos), len(neg)) == (3101, 3101)
    assert {len(r.sequence) for r in pos + neg} == {81}
    assert make_synthetic(seed=5) == (pos, neg)
    assert make_synthetic(seed=6)[0] != pos


def test_motif_planted_in_positives_only(tmp_path):
    pos_path, neg_path = write_synthetic(tmp_path, seed=1)
    assert "U" in pos_path.read_text()  # written as RNA, like CLIP data
    share = motif_share(load_labelled(pos_path, neg_path).table).set_index("class").share
    assert 0.38 < share["positive"] < 0.55 and share["negative"] < 0.05


def test_motif_regex_iupac():
    assert motif_regex("UGUAHAUA").pattern == "TGTA[ACT]ATA"
