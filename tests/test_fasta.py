import gzip

import pytest

from rbp.errors import RbpError
from rbp.fasta import FastaError, read_fasta


def test_multiline_lowercase_rna_and_whitespace(write_fasta_text):
    path = write_fasta_text("a.fa", ">r1 some description\nacgu\n  ACGU  \n\n>r2\n   uuuaaa\n")
    fasta = read_fasta(path)
    assert [(r.id, r.sequence) for r in fasta.records] == [("r1", "ACGTACGT"), ("r2", "TTTAAA")]
    assert fasta.skipped == []


def test_gzip(write_fasta_text):
    path = write_fasta_text("a.fa.gz", gzip.compress(b">x\nACGU\n"))
    assert read_fasta(path).records[0].sequence == "ACGT"


def test_ambiguous_skip_is_default_and_counted(write_fasta_text):
    path = write_fasta_text("a.fa", ">a\nACGN\n>b\nACGT\n>c\nRYAC\n")
    fasta = read_fasta(path)
    assert [r.id for r in fasta.records] == ["b"]
    assert fasta.skipped == ["a", "c"]


def test_ambiguous_keep(write_fasta_text):
    path = write_fasta_text("a.fa", ">a\nacgn\n")
    assert read_fasta(path, ambiguous="keep").records[0].sequence == "ACGN"


def test_ambiguous_error_names_file_line_and_record(write_fasta_text):
    path = write_fasta_text("a.fa", ">a\nACGT\n>b\nACNT\n")
    with pytest.raises(FastaError, match=r"a\.fa, line 3: record 'b' holds ambiguous bases \(N\)"):
        read_fasta(path, ambiguous="error")


def test_unknown_policy():
    with pytest.raises(RbpError, match="ambiguous: 'drop' is not one of skip, keep, error"):
        read_fasta("whatever.fa", ambiguous="drop")


@pytest.mark.parametrize(
    "content, message",
    [
        ("", r"empty\.fa: empty file"),
        ("\n  \n", r"empty\.fa: empty file"),
        ("ACGT\n>a\nACGT\n", r"empty\.fa, line 1: text before the first '>' header"),
        (">a\n>b\nACGT\n", r"empty\.fa, line 1: header '>a' has no sequence"),
        (">a\nACGT\n>b\n", r"empty\.fa, line 3: header '>b' has no sequence"),
        (">a\nACGT\n>a\nACGT\n", r"empty\.fa, line 3: duplicate id 'a' \(first at line 1\)"),
        (">a\nACGT\n>b\nAC-GT\n",
         r"empty\.fa, line 4: characters that are not nucleotides \('-'\) in record 'b'"),
        (">a\nACXJ\n", r"line 2: characters that are not nucleotides \('J', 'X'\)"),
        (">\nACGT\n", r"empty\.fa, line 1: header without an id"),
        ("id,sequence\nx,ACGT\n", r"line 1: text before the first '>' header; not a FASTA file"),
    ],
)
def test_malformed_files(write_fasta_text, content, message):
    path = write_fasta_text("empty.fa", content)
    with pytest.raises(FastaError, match=message):
        read_fasta(path)


def test_missing_file(tmp_path):
    with pytest.raises(FastaError, match=r"nope\.fa: file not found"):
        read_fasta(tmp_path / "nope.fa")


def test_directory(tmp_path):
    with pytest.raises(FastaError, match="is a directory"):
        read_fasta(tmp_path)


def test_binary_file(write_fasta_text):
    path = write_fasta_text("model.bin", bytes(range(256)) * 4)
    with pytest.raises(FastaError, match=r"model\.bin: binary content, not a FASTA text file"):
        read_fasta(path)


def test_non_utf8_file(write_fasta_text):
    path = write_fasta_text("latin.fa", ">a\nAC\xe9GT\n".encode("latin-1"))
    with pytest.raises(FastaError, match="not UTF-8"):
        read_fasta(path)


def test_damaged_gzip(write_fasta_text):
    path = write_fasta_text("a.fa.gz", gzip.compress(b">x\nACGU\n" * 100)[:30])
    with pytest.raises(FastaError, match="damaged gzip"):
        read_fasta(path)


def test_pum2_reads_whole(pum2_dir):
    positives = read_fasta(pum2_dir / "positives.fa")
    negatives = read_fasta(pum2_dir / "negatives.fa")
    assert (len(positives.records), len(negatives.records)) == (3101, 3101)
    assert positives.skipped == negatives.skipped == []
    records = positives.records + negatives.records
    assert {len(r.sequence) for r in records} == {81}
    assert all(set(r.sequence) <= set("ACGT") for r in records)
    # one record's sequence starts with spaces in the file: it must still be read whole
    raw = (pum2_dir / "positives.fa").read_text().splitlines() + (
        pum2_dir / "negatives.fa").read_text().splitlines()
    indented = [i for i, line in enumerate(raw) if line.startswith(" ") and not line.startswith(">")]
    assert indented, "the PUM2 files hold a record with leading spaces"
    header = next(raw[j] for j in range(indented[0], -1, -1) if raw[j].startswith(">"))
    rid = header[1:].split()[0]
    assert len(next(r for r in records if r.id == rid).sequence) == 81


def test_a_fifo_or_device_is_refused_without_reading_it(tmp_path):
    import os

    fifo = tmp_path / "pipe.fa"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero"):
        with pytest.raises(FastaError, match="not a regular file"):
            read_fasta(path)


def _random_fasta(path, records: int, length: int, seed: int = 0) -> int:
    """A FASTA file of random sequences (they compress about 3.5-fold, as real ones do); their total length."""
    import numpy as np

    rng = np.random.default_rng(seed)
    with open(path, "w") as out:
        for i in range(records):
            sequence = "".join(np.array(list("ACGU"))[rng.integers(0, 4, length)])
            out.write(f">r{i}\n" + "\n".join(sequence[j:j + 60] for j in range(0, length, 60)) + "\n")
    return records * length


def test_a_file_over_the_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    """A plain file is judged by its size on disk, a gzipped one by decompressing it once a chunk at
    a time: refusing either costs a chunk of memory, not the file."""
    import gzip
    import tracemalloc

    import rbp.fasta

    big = tmp_path / "big.fa"
    _random_fasta(big, 20, 100_000)  # 2 MB of sequence
    monkeypatch.setattr(rbp.fasta, "MAX_BYTES", 2**20)
    monkeypatch.setattr(rbp.fasta, "_CHUNK", 2**16)
    packed = tmp_path / "big.fa.gz"
    packed.write_bytes(gzip.compress(big.read_bytes()))
    for path, message in ((big, r"big\.fa: more than 1 MiB of FASTA text; split it"),
                          (packed, r"big\.fa\.gz: more than 1 MiB of FASTA text once decompressed")):
        tracemalloc.start()
        with pytest.raises(FastaError, match=message):
            read_fasta(path)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 2**20, f"{path.name}: {peak} bytes to refuse it"


def test_a_gzip_bomb_is_refused_as_one(tmp_path, monkeypatch):
    import gzip
    import tracemalloc

    import rbp.fasta

    monkeypatch.setattr(rbp.fasta, "MAX_BYTES", 4 * 2**20)
    monkeypatch.setattr(rbp.fasta, "_CHUNK", 2**16)
    bomb = tmp_path / "bomb.fa.gz"
    bomb.write_bytes(gzip.compress(b">a\n" + b"A" * (64 * 2**20) + b"\n"))  # 64 MiB in about 64 KB
    tracemalloc.start()
    with pytest.raises(FastaError, match=r"bomb\.fa\.gz: a decompression bomb: [\d,]+ bytes of gzip expand "
                                         r"past 4 MiB \(more than 50-fold\); refused unread"):
        read_fasta(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**20, f"{peak} bytes to refuse it"


def test_reading_keeps_little_more_than_the_sequences(tmp_path):
    """Parsing streams: memory at its peak is under 3x the sequence bytes kept, not a copy of the file."""
    import tracemalloc

    path = tmp_path / "long.fa"
    kept = _random_fasta(path, 10, 200_000)
    tracemalloc.start()
    fasta = read_fasta(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert sum(len(r.sequence) for r in fasta.records) == kept
    assert peak < 3 * kept, f"{peak / kept:.2f} bytes per nucleotide kept"


def test_corrupted_gzip_bytes_are_a_damaged_file(write_fasta_text):
    import gzip

    packed = bytearray(gzip.compress(b">x\nACGU\n" * 2000))
    packed[40:60] = bytes(20)  # corrupted in the middle, not truncated
    path = write_fasta_text("bad.fa.gz", bytes(packed))
    with pytest.raises(FastaError, match=r"bad\.fa\.gz: damaged gzip file"):
        read_fasta(path)


def test_a_labelled_file_reads_each_records_class_from_its_header(write_fasta_text):
    path = write_fasta_text("l.fa", "> chr1,+,367697,367797; class:1\nACGU\nAC\n>b class=0\nCCCC\n"
                                    ">c x;class:1;y\nGGNG\n")
    fasta = read_fasta(path, label_key="class")
    assert [(r.id, r.sequence) for r in fasta.records] == [("chr1,+,367697,367797", "ACGTAC"), ("b", "CCCC")]
    assert list(fasta.labels) == [1, 0] and fasta.skipped == ["c"]  # the skipped record's label was checked too
    assert read_fasta(path).labels is None  # unlabelled reading ignores headers


@pytest.mark.parametrize("header, message", [
    ("b", r"l\.fa, line 3: header 'b' has no label; .* as class:0 or class:1"),
    ("b subclass:1", r"line 3: header 'b subclass:1' has no label"),
    ("b class:2", r"line 3: header 'b class:2' gives the label class:2; a label must be 0 or 1"),
    ("b class:", r"line 3: header 'b class:' gives the label class:; a label must be 0 or 1"),
    ("b class:1 class:0", r"gives the label class:1, class:0"),
])
def test_a_bad_label_is_refused_by_line(write_fasta_text, header, message):
    path = write_fasta_text("l.fa", f">a class:1\nACGT\n>{header}\nACGT\n")
    with pytest.raises(FastaError, match=message):
        read_fasta(path, label_key="class")
