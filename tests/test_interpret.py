"""rbp.interpret: which held-out sites are explained, and the summary of what was found."""

import re

import numpy as np
import pandas as pd
import pytest

from rbp.errors import RbpError
from rbp.interpret import Interpretation, confident_positives
from rbp.motif_discovery import Motif, iupac_ppm, match_table


def test_confident_positives_are_called_held_out_binding_sites_of_one_length():
    oof = pd.DataFrame({"id": ["a", "b", "c", "d", "e"], "label": [1, 1, 1, 0, 1],
                        "probability": [0.9, 0.95, 0.4, 0.99, 0.8], "fold": [1, 2, 1, 1, 2]})
    sequences = pd.DataFrame({"id": list("abcde"), "sequence": ["AAACCCGGG", "TTTACGTTT", "ACGTACGTA",
                                                                 "GGGGGGGGG", "ACG"]})
    table = confident_positives(oof, sequences, 0.5, 10, length=5)
    # c is under the threshold, d is a negative, e is shorter than the window; the rest cut to their centre
    assert table.id.tolist() == ["b", "a"] and table.sequence.tolist() == ["TACGT", "ACCCG"]
    assert table.fold.tolist() == [2, 1]
    assert confident_positives(oof, sequences, 0.5, 1, length=5).id.tolist() == ["b"]
    assert confident_positives(oof, sequences, 0.5, 10).sequence.str.len().unique().tolist() == [9]  # most common
    with pytest.raises(RbpError, match="no binding site was called at or above the threshold 0.990"):
        confident_positives(oof, sequences, 0.99, 10)
    with pytest.raises(RbpError, match="no confident binding site is 20 nt or longer"):
        confident_positives(oof, sequences, 0.5, 10, length=20)


def test_the_summary_says_whether_the_top_motif_itself_matches():
    pattern = np.vstack([np.full((2, 4), 0.25), iupac_ppm("UGUAAAUA"), np.full((2, 4), 0.25)])
    top = Motif("motif 1", pattern[2:6], np.ones((4, 4)), 40, 35, 0.35, pattern=pattern)
    other = Motif("motif 2", iupac_ppm("GGCGCC"), np.ones((6, 4)), 10, 10, 0.1)
    table = pd.DataFrame({"id": ["a"], "sequence": ["A" * 12], "fold": [1], "probability": [0.9]})
    interpretation = Interpretation("LSTM", "ism", table, np.zeros((1, 12)), np.zeros((1, 12, 4)), [top, other],
                                    match_table([top, other], ["UGUAHAUA"]), 1.0)
    summary = interpretation.summary()
    assert (summary["top_motif"], summary["top_motif_match"], summary["best_matching_motif"]) == (
        "UGUA", "UGUAHAUA", "motif 1 (UGUA)")
    assert summary["top_motif_similarity"] > 0.9 and summary["method"] == "in-silico mutagenesis"
    none = Interpretation("LSTM", "ism", table, np.zeros((1, 12)), np.zeros((1, 12, 4)), [], match_table([], []), 1.0)
    assert none.summary()["top_motif"] == "" and none.summary()["best_known_match"] == ""


def test_the_summary_sentence_reads_back_from_its_csv_with_a_model_without_motifs(tmp_path):
    """The driver prints 07's summary from interpret_summary.csv, where a model that found no motif has
    empty cells: every row must still read as a sentence."""
    import pandas as pd

    from rbp.interpret import describe_summary

    rows = [{"model": "DNABERT (scratch)", "method": "in-silico mutagenesis", "sequences": 80, "motifs": 0,
             "top_motif": "", "top_motif_share": float("nan"), "top_motif_match": "",
             "top_motif_similarity": float("nan"), "best_matching_motif": "", "best_known_match": "",
             "best_similarity": float("nan"), "seconds": 25.8},
            {"model": "LSTM", "method": "in-silico mutagenesis", "sequences": 80, "motifs": 1,
             "top_motif": "UGUACAUA", "top_motif_share": 0.15, "top_motif_match": "UGUAHAUA",
             "top_motif_similarity": 0.94, "best_matching_motif": "motif 1 (UGUACAUA)",
             "best_known_match": "UGUAHAUA", "best_similarity": 0.94, "seconds": 12.6}]
    pd.DataFrame(rows).to_csv(tmp_path / "summary.csv", index=False)
    read = pd.read_csv(tmp_path / "summary.csv").to_dict("records")
    sentences = [describe_summary(row) for row in read]
    assert sentences[0] == "DNABERT (scratch): top motif none (seqlets in 0% of 80 sites explained)"
    assert sentences[1] == ("LSTM: top motif UGUACAUA (seqlets in 15% of 80 sites explained), matches UGUAHAUA "
                            "(similarity 0.94)")
    assert [describe_summary(row) for row in rows] == sentences


@pytest.mark.parametrize("dataset, proteins", [
    ("24_PARCLIP_QKI_hg19", ["QKI"]), ("10_PARCLIP_ELAVL1A_hg19", ["ELAVL1"]), ("8_PARCLIP_ELAVL1_hg19", ["ELAVL1"]),
    ("16_ICLIP_hnRNPC_Hela", ["hnRNPC"]), ("18_ICLIP_hnRNPL_Hela", ["hnRNPL"]), ("20_ICLIP_hnRNPlike_U266", []),
    ("30_ICLIP_U2AF65_Hela", ["U2AF65"]), ("28_ICLIP_TIA1_hg19", ["TIA1"]), ("pum2", ["PUM2"]),
    ("14_PARCLIP_FUS_mut_hg19", []), ("HuR-knockdown", ["ELAVL1"]), ("synthetic", []), ("qkiller", []),
])
def test_a_data_set_named_after_a_protein_gets_its_known_motifs(dataset, proteins):
    from rbp.known_motifs import describe, known_for
    from rbp.motifs import IUPAC

    found = known_for(dataset)
    assert [entry.protein for entry in found] == proteins
    for entry in found:
        assert all(set(motif) <= set(IUPAC) for motif in entry.motifs) and re.search(r"\d{4}", entry.source)
    if found:
        assert describe(found).startswith(f"{proteins[0]}: ")
