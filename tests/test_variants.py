"""`rbp variants`: variant effects against a brute-force reading, the known answer on synthetic data,
the results folder, VCF input, the MLflow run and every refusal."""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from rbp.cli import main
from rbp.errors import RbpError
from rbp.fasta import Record, write_fasta
from rbp.fold_ensemble import FoldEnsemble
from rbp.synthetic import make_transcript, transcript_variants
from rbp.variants import BASES, effects, known_answer, logodds, read_variants, score_variants
from tests.conftest import saved_cv_model

# A small CNN learns the synthetic element in seconds (test ROC AUC about 0.85 on 2 x 1,500 sequences).
CNN = {"cnn": {"channels": [32], "kernel_size": [12], "dense_size": 32, "max_epochs": 10, "patience": 3}}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return saved_cv_model(tmp_path_factory.mktemp("variants-model"), "cnn", 1500, 42,
                          {"dataset": "synthetic", "synthetic": True}, CNN)


@pytest.fixture(scope="module")
def predictor(model_dir):
    return FoldEnsemble.load(model_dir)


@pytest.fixture
def transcript(tmp_path):
    record, planted = make_transcript(seed=42)
    table = transcript_variants(record, planted, seed=42)
    write_fasta(tmp_path / "transcript.fa", [record], rna=True)
    table.to_csv(tmp_path / "variants.tsv", sep="\t", index=False)
    return tmp_path / "transcript.fa", tmp_path / "variants.tsv", table


def _brute(predictor, sequence: str, position: int, alt: str):
    """The effect read the slow way: every covering window scored on its own, every change of the
    reference's best window spelled out."""
    window, at = predictor.window, position - 1
    mutated = sequence[:at] + alt + sequence[at + 1:]
    starts = [0] if len(sequence) <= window else range(max(0, at - window + 1), min(at, len(sequence) - window) + 1)
    ref = predictor.probabilities([sequence[s:s + window] for s in starts])
    alt_p = predictor.probabilities([mutated[s:s + window] for s in starts])
    best = list(starts)[int(np.argmax(ref))]
    w = sequence[best:best + window]
    base = logodds(predictor.probabilities([w]))[0]
    changes = {(q, b): logodds(predictor.probabilities([w[:q] + b + w[q + 1:]]))[0] - base
               for q in range(len(w)) for b in BASES if b != w[q]}
    own = changes.pop((at - best, alt))
    sizes = np.abs(list(changes.values()))  # every other change
    percentile = 100 * ((sizes < abs(own)).sum() + 0.5 * (sizes == abs(own)).sum()) / len(sizes)
    return ref.max(), alt_p.max(), own, percentile, best + 1


def test_effects_equal_a_brute_force_reading(predictor, tmp_path):
    rng = np.random.default_rng(0)
    long = "".join(rng.choice(list("ACGT"), 300))
    short = "".join(rng.choice(list("ACGT"), 50))  # shorter than the window: one window, itself
    fasta = tmp_path / "ref.fa"
    write_fasta(fasta, [Record("long", long), Record("short", short)])
    picks = [("long", 1), ("long", 40), ("long", 150), ("long", 299), ("long", 300), ("short", 1), ("short", 25)]
    rows = ["sequence_id\tposition\tref\talt"]
    for sid, position in picks:
        sequence = long if sid == "long" else short
        ref = sequence[position - 1]
        rows.append(f"{sid}\t{position}\t{ref}\t{next(b for b in 'GTAC' if b != ref)}")
    (tmp_path / "v.tsv").write_text("\n".join(rows) + "\n")
    found = read_variants(tmp_path / "v.tsv", fasta)
    table = effects(predictor, found.variants, found.loci(2 * predictor.window))
    assert len(table) == len(picks)
    for row in table.itertuples():
        sequence = long if row.sequence_id == "long" else short
        ref, alt, in_window, percentile, start = _brute(predictor, sequence, row.position, row.alt)
        assert row.ref_probability == pytest.approx(ref, abs=1e-6)
        assert row.alt_probability == pytest.approx(alt, abs=1e-6)
        assert row.delta_logodds == pytest.approx(logodds(alt) - logodds(ref), abs=1e-5)
        assert row.window_delta_logodds == pytest.approx(in_window, abs=1e-5)
        assert row.percentile == pytest.approx(percentile, abs=1e-6)
        assert row.ref_window == start
        assert row.site == {(True, True): "kept", (True, False): "lost", (False, True): "gained",
                            (False, False): "none"}[(ref >= predictor.threshold, alt >= predictor.threshold)]


def test_variants_that_break_the_planted_core_lower_binding_and_far_ones_do_not(model_dir, transcript, tmp_path):
    fasta, variants, table = transcript
    result = score_variants([str(model_dir)], fasta, variants, tmp_path / "out", figures=0, progress=False)
    scored = result.table.merge(table[["name", "kind"]], on=["name", "kind"])
    core, far = scored[scored.kind == "core"], scored[scored.kind == "far"]
    assert len(core) == 12 and len(far) >= 10
    assert (core.delta < 0).all(), core[["name", "delta"]]
    assert core.delta_logodds.abs().median() > 3 * far.delta_logodds.abs().median()
    assert core.percentile.median() > far.percentile.median()
    assert far.delta.abs().max() < 0.1  # a small CNN's background sits near its threshold: calls may flip
    answer = known_answer(result.table, dict(zip(table.name, table.kind, strict=True)))
    assert answer[["model", "kind", "variants", "lowered"]].values.tolist() == [
        ["synthetic", "core", 12, 12], ["synthetic", "far", len(far), int((far.delta < 0).sum())]]


def test_the_results_folder_holds_the_table_the_inputs_sha256_and_figures(model_dir, transcript, tmp_path):
    fasta, variants, table = transcript
    out = tmp_path / "out"
    result = score_variants([str(model_dir)], fasta, variants, out, figures=3, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["figures", "summary.json", "variants.tsv"]
    written = pd.read_csv(out / "variants.tsv", sep="\t")
    assert len(written) == len(table) and set(written.name) == set(table.name)
    assert list(written.columns[:6]) == ["name", "sequence_id", "position", "ref", "alt", "kind"]  # kind carried
    assert set(written.ref) <= set("ACGU")  # written as given (RNA letters)
    assert (np.diff(written.percentile) <= 0).all()  # ranked
    summary = json.loads((out / "summary.json").read_text())
    for role, path in (("fasta", fasta), ("variants", variants)):
        assert summary["inputs"][role]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert summary["variants"] == len(table) and sum(summary["sites"]["synthetic"].values()) == len(table)
    assert len(list((out / "figures").glob("*.png"))) == 3 and summary["figures"] == 3
    assert "26 variants scored by 1 model" in str(result)


def test_several_models_give_a_row_per_variant_and_model(model_dir, predictor, transcript, tmp_path):
    fasta, variants, table = transcript
    other = FoldEnsemble(predictor.family, predictor.params, predictor.models, predictor.folds, predictor.window, 0.2,
                         {"dataset": "other"}).save(tmp_path / "other")
    result = score_variants([str(model_dir), str(other), str(model_dir)], fasta, variants, tmp_path / "out",
                            figures=1, progress=False)
    assert sorted(result.table.model.unique()) == ["other", "synthetic"]  # a model given twice scores once
    assert len(result.table) == 2 * len(table)
    both = result.table.pivot(index="name", columns="model", values="alt_probability")
    assert np.allclose(both.other, both.synthetic)  # the same weights, another threshold
    assert (result.table[result.table.model == "other"].threshold == 0.2).all()
    assert len(list((tmp_path / "out" / "figures").glob("*.png"))) == 2


VCF = """##fileformat=VCFv4.2
##contig=<ID=chrA,length=300>
##contig=<ID=chrB,length=120>
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO
chrA\t10\trs1\t{a10}\t{alts10}\t.\t.\t.
chrA\t20\t.\t{a20}T\t{a20}\t.\t.\t.
chrB\t100\trs3\t{b100}\t<DEL>\t.\t.\t.
chrB\t120\trs4\t{b120}\t{alt120}\t.\t.\t.
"""


def _reference(tmp_path):
    rng = np.random.default_rng(1)
    chroms = {"chrA": "".join(rng.choice(list("ACGT"), 300)), "chrB": "".join(rng.choice(list("ACGT"), 120))}
    write_fasta(tmp_path / "genome.fa", [Record(k, v) for k, v in chroms.items()])
    return chroms


def _other(base):
    return next(b for b in "ACGT" if b != base)


def test_a_vcf_over_a_reference_fasta(predictor, tmp_path):
    chroms = _reference(tmp_path)
    a10 = chroms["chrA"][9]
    alts = ",".join([b for b in "ACGT" if b != a10][:2])
    (tmp_path / "calls.vcf").write_text(VCF.format(a10=a10, alts10=alts, a20=chroms["chrA"][19],
                                                   b100=chroms["chrB"][99], b120=chroms["chrB"][119],
                                                   alt120=_other(chroms["chrB"][119])))
    found = read_variants(tmp_path / "calls.vcf", tmp_path / "genome.fa")
    assert [(v.sequence_id, v.position, v.alt) for v in found.variants] == [
        ("chrA", 10, b) for b in alts.split(",")] + [("chrB", 120, _other(chroms["chrB"][119]))]
    assert [v.name for v in found.variants][:2] == [f"rs1:chrA:10{a10}>{b}" for b in alts.split(",")]  # per ALT
    assert found.variants[2].name == "rs4"
    assert [(s["pos"], s["line"]) for s in found.skipped] == [(20, 6), (100, 7)]  # the indel, the symbolic allele
    result = score_variants([predictor], tmp_path / "genome.fa", tmp_path / "calls.vcf", tmp_path / "out",
                            figures=0, progress=False)
    assert len(result.table) == 3 and result.summary["skipped"] == 2
    assert "listed in skipped.tsv" in str(result)
    assert len(pd.read_csv(tmp_path / "out" / "skipped.tsv", sep="\t")) == 2


def test_a_vcf_whose_ref_or_chromosome_does_not_match_is_refused_by_line(predictor, tmp_path):
    chroms = _reference(tmp_path)
    wrong = _other(chroms["chrA"][9])
    text = VCF.format(a10=wrong, alts10=_other(wrong), a20=chroms["chrA"][19], b100=chroms["chrB"][99],
                      b120=chroms["chrB"][119], alt120=_other(chroms["chrB"][119]))
    (tmp_path / "bad.vcf").write_text(text)
    with pytest.raises(RbpError, match=rf"bad.vcf, line 5 \(chrA:10\): ref is {wrong}, but 'chrA' of .*genome.fa "
                                       rf"has {chroms['chrA'][9]} at position 10"):
        read_variants(tmp_path / "bad.vcf", tmp_path / "genome.fa")
    (tmp_path / "chrom.vcf").write_text(text.replace("chrA\t10", "chr9\t10").replace("##contig=<ID=chrA",
                                                                                      "##contig=<ID=chr9"))
    with pytest.raises(RbpError, match=r"line 5 \(chr9:10\): chromosome 'chr9' is not a record of .*genome.fa "
                                       r"\(it holds chrA, chrB\)"):
        read_variants(tmp_path / "chrom.vcf", tmp_path / "genome.fa")
    (tmp_path / "junk.vcf").write_text("not a vcf\n")
    with pytest.raises(RbpError, match="junk.vcf: not a readable VCF"):
        read_variants(tmp_path / "junk.vcf", tmp_path / "genome.fa")


@pytest.mark.parametrize(("content", "message"), [
    ("", "empty; give a header"),
    ("sequence_id\tpos\tref\talt\n", r"line 1: the header names sequence_id, pos, ref, alt; a variants table needs "
                                     r"the columns sequence_id, position, ref, alt"),
    ("sequence_id\tposition\tref\talt\n", "no variants below the header"),
    ("sequence_id\tposition\tref\talt\ns1\t3\tG\tA\n", r"line 2: ref is G, but 's1' of .*ref.fa has C at position 3 "
                                                      r"\(1-based\); are the coordinates 0-based"),
    ("sequence_id\tposition\tref\talt\ns1\t0\tA\tC\n", r"line 2: position 0 lies outside 's1' \(1 to 8\)"),
    ("sequence_id\tposition\tref\talt\ns1\t9\tA\tC\n", r"line 2: position 9 lies outside 's1' \(1 to 8\)"),
    ("sequence_id\tposition\tref\talt\ns1\tx\tA\tC\n", r"line 2: position 'x' is not a whole number"),
    ("sequence_id\tposition\tref\talt\ns9\t1\tA\tC\n", r"line 2: sequence 's9' is not a record of .*ref.fa"),
    ("sequence_id\tposition\tref\talt\ns1\t1\tAC\tA\n", r"line 2: ref 'AC' and alt 'A': only single-nucleotide"),
    ("sequence_id\tposition\tref\talt\ns1\t1\tA\tN\n", r"line 2: alt 'N' is not one of A, C, G, U"),
    ("sequence_id\tposition\tref\talt\ns1\t1\tA\tA\n", r"line 2: alt A equals ref: not a change"),
    ("sequence_id\tposition\tref\talt\ns1\t1\tA\n", r"line 2: 3 tab-separated fields, the header \(line 1\) has 4"),
    ("sequence_id\tposition\tref\talt\ns1\t1\tA\tC\n# note\n\ns1\t1\tA\tc\n",
     r"line 5: the same variant as line 2"),
    ("sequence_id\tposition\tref\talt\tname\ns1\t1\tA\tC\tv\ns1\t2\tC\tG\tv\n",
     r"line 3: the name 'v' is given to two variants \(line 2 too\)"),
    ("sequence_id\tposition\tref\talt\tgene\tgene\n", r"line 1: the header names gene twice"),
    ("sequence_id\tposition\tref\talt\tdelta\n", r"line 1: the column delta would be overwritten by the results"),
    ('sequence_id\tposition\tref\talt\tname\ns1\t1\tA\tC\t"a\ns1\t2\tC\tG\tb"\ns1\t2\tC\tG\tc\n',
     r"line 4: the same variant as line 3"),  # a quote is a letter: no line swallows the next
    ("sequence_id\tposition\tref\talt\tgene\ns1\t1\tA\tC\tcaf\xe9\n".encode("latin-1"),
     r"v.tsv: not UTF-8 text"),
])
def test_a_bad_variants_table_is_refused_by_line(tmp_path, content, message):
    write_fasta(tmp_path / "ref.fa", [Record("s1", "ACCGTTAA")])
    (tmp_path / "v.tsv").write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(RbpError, match=message):
        read_variants(tmp_path / "v.tsv", tmp_path / "ref.fa")


def test_the_command_line_scores_logs_and_refuses(model_dir, transcript, tmp_path, mlflow_store, capsys):
    import mlflow

    fasta, variants, table = transcript
    out = tmp_path / "out"
    assert main(["variants", "--model", str(model_dir), "--fasta", str(fasta), "--variants", str(variants),
                 "--out", str(out), "--figures", "1"]) == 0
    said = capsys.readouterr().out
    assert f"{len(table)} variants scored by 1 model" in said and "logged: run" in said
    runs = mlflow.search_runs(experiment_names=["synthetic"])
    run = runs[runs["tags.mlflow.runName"] == "variants"].iloc[0]
    assert run["tags.model_family"] == "variants"
    assert run["tags.input_sha256"] == hashlib.sha256(variants.read_bytes()).hexdigest()
    assert run["metrics.variants"] == len(table) and "metrics.synthetic.lost" in run
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run.run_id, "variants")}
    assert {"variants/variants.tsv", "variants/summary.json", "variants/figures"} <= logged
    inputs = mlflow.get_run(run.run_id).inputs.dataset_inputs
    assert sorted(i.tags[0].value for i in inputs) == ["fasta", "variants"]

    bad = tmp_path / "bad.tsv"
    bad.write_text("sequence_id\tposition\tref\talt\nnope\t1\tA\tC\n")
    assert main(["variants", "--model", str(model_dir), "--fasta", str(fasta), "--variants", str(bad),
                 "--out", str(tmp_path / "never"), "--no-log"]) == 2
    assert "bad.tsv, line 2: sequence 'nope' is not a record of" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
    assert main(["variants", "--model", str(model_dir), "--fasta", str(fasta), "--variants", str(variants),
                 "--out", str(out), "--no-log"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_a_spreadsheets_table_and_compressed_vcfs(tmp_path):
    import gzip

    import pysam

    chroms = _reference(tmp_path)
    bom = tmp_path / "excel.tsv"  # a byte-order mark and CRLF line ends, as spreadsheets save
    bom.write_bytes(f"\ufeffsequence_id\tposition\tref\talt\r\nchrA\t5\t{chroms['chrA'][4]}\tU\r\n".encode())
    [variant] = read_variants(bom, tmp_path / "genome.fa").variants
    (tmp_path / "excel.tsv.gz").write_bytes(gzip.compress(bom.read_bytes()))
    assert read_variants(tmp_path / "excel.tsv.gz", tmp_path / "genome.fa").variants == [variant]
    assert (variant.sequence_id, variant.position, variant.alt, variant.shown(variant.alt)) == ("chrA", 5, "T", "U")
    text = f"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\nchrB\t3\t.\t{chroms['chrB'][2]}\t" \
           f"{_other(chroms['chrB'][2])}\t.\t.\t.\n"
    (tmp_path / "calls.vcf").write_text(text)
    pysam.tabix_compress(str(tmp_path / "calls.vcf"), str(tmp_path / "calls.vcf.gz"))
    assert len(read_variants(tmp_path / "calls.vcf.gz", tmp_path / "genome.fa").variants) == 1  # bgzip
    (tmp_path / "plain.vcf.gz").write_bytes(gzip.compress(text.encode()))
    with pytest.raises(RbpError, match="plain.vcf.gz: compressed with gzip, not bgzip"):
        read_variants(tmp_path / "plain.vcf.gz", tmp_path / "genome.fa")
    (tmp_path / "genome.fa.gz").write_bytes(gzip.compress((tmp_path / "genome.fa").read_bytes()))
    with pytest.raises(RbpError, match="genome.fa.gz: cannot be read as an indexed reference FASTA"):
        read_variants(tmp_path / "calls.vcf", tmp_path / "genome.fa.gz")
