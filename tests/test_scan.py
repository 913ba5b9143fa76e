"""Window coordinates, the per-nucleotide profile, site calls and BED lines, on hand-made inputs."""

import numpy as np
import pytest

from rbp.errors import RbpError
from rbp.scan import bed_lines, bedgraph_lines, call_sites, motif_positions, profile, sites_table, window_starts


@pytest.mark.parametrize(("length", "window", "stride", "expected"), [
    (10, 4, 2, [0, 2, 4, 6]),  # even length, the stride lands on the end
    (11, 4, 2, [0, 2, 4, 6, 7]),  # odd length: one more window, flush with the end
    (10, 4, 3, [0, 3, 6]),  # 6 + 4 = 10: flush already
    (12, 5, 3, [0, 3, 6, 7]),  # the stride does not divide the length
    (9, 9, 1, [0]),  # the window is the sequence
    (5, 9, 1, [0]),  # shorter than the window: the sequence as it is
    (6, 3, 1, [0, 1, 2, 3]),
])
def test_window_starts(length, window, stride, expected):
    starts = window_starts(length, window, stride)
    assert starts.tolist() == expected
    assert starts[-1] + min(window, length) == length  # the last window is flush with the end


def test_a_stride_longer_than_the_window_is_refused():
    with pytest.raises(RbpError, match="stride 5 is longer than the window"):
        window_starts(20, 4, 5)


def test_profile_is_the_max_of_the_windows_covering_each_position():
    length, window = 11, 4
    starts = window_starts(length, window, 2)  # 0, 2, 4, 6, 7
    scores = np.array([0.1, 0.9, 0.3, 0.2, 0.5])
    expected = [max(s for st, s in zip(starts, scores, strict=True) if st <= i < st + window) for i in range(length)]
    assert profile(length, starts, window, scores).tolist() == pytest.approx(expected)
    assert expected == [0.1, 0.1, 0.9, 0.9, 0.9, 0.9, 0.3, 0.5, 0.5, 0.5, 0.5]


def test_profile_of_a_sequence_shorter_than_the_window():
    assert profile(3, np.array([0]), 8, np.array([0.7])).tolist() == [0.7, 0.7, 0.7]


def test_sites_are_merged_runs_above_the_threshold_with_peak_and_summit():
    length, window = 20, 4
    starts = window_starts(length, window, 2)  # 0, 2, ..., 16
    scores = np.array([0.1, 0.6, 0.8, 0.2, 0.1, 0.1, 0.1, 0.1, 0.7])
    sites = call_sites(length, starts, window, scores, threshold=0.5)
    # windows at 2 and 4 (0.6, 0.8) overlap: one site 2..8; the window at 16 (0.7): 16..20
    assert [(s.start, s.end, s.peak, s.summit, s.windows) for s in sites] == [
        (2, 8, 0.8, 6, 2), (16, 20, 0.7, 18, 1)]
    assert call_sites(length, starts, window, scores, threshold=0.95) == []


def test_bed_and_bedgraph_lines_are_zero_based_and_half_open():
    starts = window_starts(10, 4, 2)
    sites = {"tx1": call_sites(10, starts, 4, np.array([0.2, 0.9, 0.1, 0.1]), 0.5)}
    table = sites_table(sites)
    assert bed_lines(table) == ["tx1\t2\t6\ttx1:site1\t900\t+"]
    lines = bedgraph_lines("tx1", profile(10, starts, 4, np.array([0.2, 0.9, 0.1, 0.1])))
    assert lines == ["tx1\t0\t2\t0.2", "tx1\t2\t6\t0.9", "tx1\t6\t10\t0.1"]
    for line in bed_lines(table):
        chrom, start, end, name, score, strand = line.split("\t")
        assert 0 <= int(start) < int(end) <= 10 and 0 <= int(score) <= 1000 and strand == "+"


def test_motif_positions_find_overlapping_iupac_matches_in_rna_or_dna():
    assert motif_positions("ccUGUAAAUAuguacauacc", "UGUAHAUA") == [2, 10]
    assert motif_positions("AAAA", "AA") == [0, 1, 2]
    with pytest.raises(RbpError, match="motif 'UGX': X is not an IUPAC nucleotide code"):
        motif_positions("ACGT", "UGX")
