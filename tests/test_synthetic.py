import pytest

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
    # 45 % of positives carry an element; drawn from a weight matrix, about half are the exact consensus
    assert 0.18 < share["positive"] < 0.35 and share["negative"] < 0.02


def test_motif_regex_iupac():
    assert motif_regex("UGUAHAUA").pattern == "TGTA[ACT]ATA"


def test_oracle_is_the_exact_likelihood_ratio_of_the_generator():
    """Against the mixture written out by hand for short sequences: background, or an element (decoy)
    at one of the allowed starts."""
    import numpy as np

    from rbp import synthetic as s

    length = 12
    starts = s._starts(length)

    def likelihood(seq, background, pwm, share):
        codes = [s.BASES.index(c) for c in seq]
        plain = np.prod([background[c] for c in codes])
        sites = [np.prod([pwm[i - start, c] if 0 <= i - start < len(pwm) else background[c]
                          for i, c in enumerate(codes)]) for start in starts]
        return (1 - share) * plain + share * np.mean(sites)

    rng = np.random.default_rng(0)
    sequences = ["".join(rng.choice(list("ACGT"), length)) for _ in range(20)] + ["AATGTACATAAA", "AATGTAGGGGGG"]
    for seq in sequences:
        pos = likelihood(seq, s.POSITIVE_BACKGROUND, s.ELEMENT, s.ELEMENT_SHARE)
        neg = likelihood(seq, s.NEGATIVE_BACKGROUND, s.ELEMENT[:s.DECOY_LENGTH], s.DECOY_SHARE)
        assert s.oracle_scores([seq])[0] == pytest.approx(np.log(pos) - np.log(neg), rel=1e-9)
    assert starts[0] == 0 and starts[-1] == length - len(s.ELEMENT)  # every start fits the short sequence


def test_the_ceiling_is_high_but_not_perfect_and_beats_the_motif_alone():
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from rbp.synthetic import ceiling_auc

    pos, neg = make_synthetic(seed=2, n_per_class=800)
    table = pd.DataFrame({"sequence": [r.sequence for r in pos + neg], "label": [1] * 800 + [0] * 800})
    ceiling = ceiling_auc(table)
    motif = roc_auc_score(table.label, table.sequence.str.contains(motif_regex("UGUAHAUA")))
    assert 0.85 < ceiling < 0.97 and ceiling > motif + 0.05
