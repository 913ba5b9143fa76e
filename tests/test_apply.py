"""`rbp predict`: a saved model applied to a FASTA file; its outputs and its refusals."""

import gzip
import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from rbp.apply import apply_model
from rbp.cli import main
from rbp.errors import RbpError
from rbp.fold_ensemble import FoldEnsemble
from rbp.remembered import remembered_scores
from rbp.synthetic import make_transcript, write_transcript
from tests.conftest import saved_cv_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny biLSTM ensemble (smoke settings, 2 folds) saved as a model folder."""
    return saved_cv_model(tmp_path_factory.mktemp("model"), "lstm", 60, 3, {"dataset": "tiny"})


def test_the_saved_model_reloads_with_its_window_threshold_and_folds(model_dir):
    predictor = FoldEnsemble.load(model_dir)
    assert (predictor.window, predictor.k, predictor.folds) == (81, 3, [1, 2])
    assert 0 < predictor.threshold < 1
    assert json.loads((model_dir / "predictor.json").read_text())["threshold_criterion"].startswith("Youden's J")
    sequences = ["ACGT" * 20 + "A", "TTGTAAATAA" * 8 + "C"]
    both = predictor.probabilities(sequences)
    assert np.allclose(both, (predictor.probabilities(sequences, fold=1) + predictor.probabilities(sequences, fold=2))
                       / 2)
    with pytest.raises(RbpError, match="fold 3: this model holds folds 1, 2"):
        predictor.probabilities(sequences, fold=3)


def test_predict_writes_scores_windows_profile_sites_and_figures(model_dir, tmp_path):
    fasta = tmp_path / "in.fa"
    transcript, planted = make_transcript(seed=1, length=800, sites=2)
    fasta.write_text(f">site\n{'ACGU' * 20}A\n>short\nacguacgu\n>{transcript.id}\n{transcript.sequence}\n")
    out = tmp_path / "out"
    result = apply_model(model_dir, fasta, out, stride=7, motif="UGUAHAUA", progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["figures", "profile.bedgraph", "scores.tsv", "sites.bed",
                                                    "sites.tsv", "summary.json", "windows.tsv"]
    scores = pd.read_csv(out / "scores.tsv", sep="\t")
    # the 81-nt and 8-nt records are one window each; the transcript is scanned: every 7 nt plus the last
    expected_windows = len(range(0, 800 - 81 + 1, 7)) + (1 if (800 - 81) % 7 else 0)
    assert scores.windows.tolist() == [1, 1, expected_windows]
    assert scores["UGUAHAUA_hits"].tolist()[2] == len(planted)
    windows = pd.read_csv(out / "windows.tsv", sep="\t")
    scanned = windows[windows.sequence_id == transcript.id]
    assert scanned.start.iloc[-1] == 800 - 81 and (scanned.end - scanned.start == 81).all()
    assert windows[windows.sequence_id == "short"][["start", "end"]].values.tolist() == [[0, 8]]
    # the sequence's score is its best window's, and the call is that score against the threshold
    best = windows.groupby("sequence_id", sort=False).probability.max()
    assert np.allclose(scores.set_index("sequence_id").probability.loc[best.index], best, atol=1e-6)
    threshold = result.summary["threshold"]
    assert (scores.call == (scores.probability >= threshold).astype(int)).all()
    # the bedGraph covers each sequence once, end to end
    graph = pd.read_csv(out / "profile.bedgraph", sep="\t", skiprows=1, names=["id", "start", "end", "value"])
    for sid, length in scores.set_index("sequence_id").length.items():
        part = graph[graph.id == sid]
        assert part.start.iloc[0] == 0 and part.end.iloc[-1] == length
        assert (part.start.iloc[1:].to_numpy() == part.end.iloc[:-1].to_numpy()).all()
    sites_bed = (out / "sites.bed").read_text().splitlines()
    assert len(sites_bed) == len(result.sites) == result.summary["sites"]
    for line in sites_bed:
        chrom, start, end, name, score, strand = line.split("\t")
        length = int(scores.set_index("sequence_id").length[chrom])
        assert 0 <= int(start) < int(end) <= length and strand == "+" and 0 <= int(score) <= 1000
    assert [p.name for p in (out / "figures").iterdir()] == [f"{transcript.id}.png"]
    assert json.loads((out / "summary.json").read_text())["windows"] == int(scores.windows.sum())


def test_a_lower_threshold_calls_at_least_as_many_sites_and_a_gzipped_fasta_reads(model_dir, tmp_path):
    fasta = tmp_path / "tx.fa.gz"
    record, _ = make_transcript(seed=2, length=1000, sites=3)
    with gzip.open(fasta, "wt") as fh:
        fh.write(f">{record.id}\n{record.sequence}\n")
    low = apply_model(model_dir, fasta, tmp_path / "low", stride=5, threshold=0.0, progress=False, figures=0)
    high = apply_model(model_dir, fasta, tmp_path / "high", stride=5, threshold=1.0, progress=False, figures=0)
    assert low.sites.to_dict("records")[0]["start"] == 0 and low.sites.end.tolist() == [1000]
    assert len(high.sites) <= len(low.sites)
    assert not any((tmp_path / "low" / "figures").iterdir())


@pytest.mark.parametrize(("content", "options", "message"), [
    (">a\nACGTXACGT\n", {}, "line 2: characters that are not nucleotides ('X')"),
    ("", {}, "empty file, no FASTA records"),
    (">a\nAC\n", {}, "record 'a' has 2 nt, fewer than the model's k = 3"),
    (">a\n" + "ACGT" * 30 + "\n", {"k": 4}, "k = 4 was given, but this model was trained on 3-mers"),
    (">a\n" + "ACGT" * 30 + "\n", {"stride": 100}, "stride 100 is longer than the window (81 nt)"),
    (">a\n" + "ACGT" * 30 + "\n", {"threshold": 1.5}, "threshold: must lie between 0 and 1, got 1.5"),
    (">a\n" + "ACGT" * 30 + "\n", {"motif": "UGJA"}, "motif 'UGJA': J is not an IUPAC nucleotide code"),
])
def test_bad_input_gets_one_message_and_leaves_nothing(model_dir, tmp_path, content, options, message):
    fasta = tmp_path / "in.fa"
    fasta.write_text(content)
    with pytest.raises(RbpError, match=message.replace("(", r"\(").replace(")", r"\)")):
        apply_model(model_dir, fasta, tmp_path / "out", progress=False, **options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.fa"]


def test_an_unknown_model_and_an_existing_output_folder_are_refused(model_dir, tmp_path, capsys):
    fasta = tmp_path / "in.fa"
    fasta.write_text(">a\n" + "ACGU" * 30 + "\n")
    with pytest.raises(RbpError, match="not a saved rbp model"):
        apply_model(tmp_path, fasta, tmp_path / "out", progress=False)  # a folder, but no model in it
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep me")
    assert main(["predict", "--model", str(model_dir), "--fasta", str(fasta), "--out", str(tmp_path / "taken")]) == 2
    assert "already exists; give another --out or remove it" in capsys.readouterr().err
    assert (tmp_path / "taken" / "x").read_text() == "keep me"


def test_the_command_line_writes_the_same_as_python(model_dir, tmp_path, capsys):
    fasta = tmp_path / "tx.fa"
    write_transcript(fasta, seed=3, length=600, sites=2)
    assert main(["predict", "--model", str(model_dir), "--fasta", str(fasta), "--out", str(tmp_path / "cli"),
                 "--stride", "3"]) == 0
    assert "1 sequences, " in capsys.readouterr().out
    again = apply_model(model_dir, fasta, tmp_path / "py", stride=3, progress=False)
    assert (tmp_path / "cli" / "windows.tsv").read_text() == (tmp_path / "py" / "windows.tsv").read_text()
    assert again.summary["windows"] == len(range(0, 600 - 81 + 1, 3))


def test_the_synthetic_transcript_is_scanned_only_by_models_of_synthetic_data(model_dir, tmp_path):
    from rbp.apply import input_fasta, load_model
    from rbp.synthetic import CONSENSUS  # UGUAHAUA

    real, uri = load_model(model_dir)
    assert real.source == uri == str(model_dir.resolve()) and load_model(real)[1] == uri
    with pytest.raises(RbpError, match=r"predict\.fasta: not given, and LSTM \(tiny\) learned from real data"):
        input_fasta({"LSTM": real}, None, tmp_path / "a")
    assert not (tmp_path / "a").exists()
    given = tmp_path / "given.fa"
    given.write_text(">x\nACGU\n")
    assert input_fasta({"LSTM": real}, given, tmp_path / "b") == (given, {})

    demo = FoldEnsemble.load(model_dir)
    demo.info["synthetic"] = True
    fasta, planted = input_fasta({"LSTM": demo}, None, tmp_path / "c", seed=5)
    assert fasta == tmp_path / "c" / "synthetic_transcript.fa" and list(planted) == ["synthetic_transcript_5"]
    sequence = "".join(fasta.read_text().splitlines()[1:])
    assert all(sequence[s:s + 4] == "UGUA" for s in planted["synthetic_transcript_5"]), CONSENSUS


def test_explain_adds_an_attribution_track_around_each_site(model_dir, tmp_path):
    from rbp.apply import explain_sites
    from rbp.scan import Site

    predictor = FoldEnsemble.load(model_dir)
    transcript, _ = make_transcript(seed=2, length=400, sites=2)
    sites = [Site(start=100, end=130, peak=0.9, summit=115, windows=10), Site(start=390, end=400, peak=0.8,
                                                                            summit=398, windows=3)]
    track = explain_sites(predictor, transcript.sequence, sites)
    explained = np.flatnonzero(~np.isnan(track))
    # the window of the training length centred on each summit, the last one flush with the end
    assert explained.tolist() == list(range(115 - 40, 115 - 40 + 81)) + list(range(400 - 81, 400))
    assert np.isnan(explain_sites(predictor, transcript.sequence, [])).all()

    fasta = tmp_path / "tx.fa"
    write_transcript(fasta, seed=2, length=600, sites=2)
    result = apply_model(model_dir, fasta, tmp_path / "out", stride=5, threshold=0.0, progress=False, explain=True)
    assert result.summary["explained"] and len(list((tmp_path / "out" / "figures").glob("*.png"))) == 1


def _untrained(name: str, seed: int, window: int = 41) -> FoldEnsemble:
    """A 2-fold ensemble of freshly initialised models of family `name` (tiny sizes), scores spread out."""
    from rbp.cnn import CNNFamily, CNNParams
    from rbp.dnabert import DNABERTFamily, DNABERTParams
    from rbp.ensemble import EnsembleFamily, EnsembleParams
    from rbp.kmer_lr import KmerLRFamily, KmerLRParams, SpectrumLogistic
    from rbp.lstm import LSTMFamily, LSTMParams

    torch.manual_seed(seed)
    if name == "ensemble":
        members = {"lstm": _untrained("lstm", seed + 1, window), "cnn": _untrained("cnn", seed + 2, window)}
        family = EnsembleFamily(EnsembleParams(), 3, members)
        return FoldEnsemble(family, None, [family.combine(1), family.combine(2)], [1, 2], window, 0.5)
    family = {"cnn": lambda: CNNFamily(CNNParams(channels=[6], kernel_size=[7], dense_size=4), 3),
              "lstm": lambda: LSTMFamily(LSTMParams(embedding_dim=6, hidden_size=5, dense_size=4), 3),
              "kmer_lr": lambda: KmerLRFamily(KmerLRParams(k_min=2, k_max=3), 3),
              "dnabert": lambda: DNABERTFamily(DNABERTParams(init="scratch", size="small"), 3)}[name]()
    models = [SpectrumLogistic(16 + 64) if name == "kmer_lr" else family.build() for _ in range(2)]
    for model in models:  # larger weights in the last layer: probabilities spread over (0, 1)
        last = [p for p in model.parameters() if p.dim() == 2][-1]
        with torch.no_grad():
            last.mul_({"kmer_lr": 50, "dnabert": 30}.get(name, 8))
    return FoldEnsemble(family, None, [m.eval() for m in models], [1, 2], window, 0.5)


@pytest.mark.parametrize("name", ["cnn", "lstm", "kmer_lr", "dnabert", "ensemble"])
def test_batched_scores_equal_one_window_at_a_time(name, monkeypatch):
    """Sequences shorter than, as long as and longer than the window, with N, scored together in
    batches (and a long one's windows in chunks or one pass): each window's probability is the one it
    gets scored alone, to 1e-6."""
    import rbp.fold_ensemble
    from rbp.scan import window_starts

    monkeypatch.setattr(rbp.fold_ensemble, "CHUNK", 37)  # batches end inside sequences' windows
    predictor = _untrained(name, seed=5)
    predictor.batch_size = 16
    rng = np.random.default_rng(0)
    sequences = ["".join(rng.choice(list("ACGT"), size)) for size in rng.choice([9, 30, 41, 50, 120, 300], 24)]
    sequences[3] = sequences[3][:5] + "NN" + sequences[3][7:]
    stride = 5
    batched = list(predictor.scans(sequences, stride))
    assert len(batched) == len(sequences)
    with remembered_scores():  # scored through what is remembered (twice: the second time looked up)
        for _ in range(2):
            for (starts, scores), (same_starts, same) in zip(batched, predictor.scans(sequences, stride), strict=True):
                np.testing.assert_array_equal(starts, same_starts)
                np.testing.assert_allclose(same, scores, atol=1e-6, rtol=0)
    every = []
    for sequence, (starts, scores) in zip(sequences, batched, strict=True):
        np.testing.assert_array_equal(starts, window_starts(len(sequence), 41, stride))
        alone = [predictor.probabilities([sequence[s:s + 41]])[0] for s in starts]
        np.testing.assert_allclose(scores, alone, atol=1e-6, rtol=0)
        every.extend(alone)
    # the scores differ enough between windows to tell a mix-up (an untrained DNABERT barely tells them apart)
    assert np.std(every) > (2e-4 if name == "dnabert" else 1e-2)
    best = predictor.score(sequences)
    np.testing.assert_allclose(best, [scores.max() for _, scores in predictor.scans(sequences, 1)], atol=1e-6)


def test_several_models_score_one_fasta_side_by_side(tmp_path):
    """`rbp predict` with a model per protein: each model's own results in a folder of its own, a
    column per model in one table, and a track per model along each long sequence."""
    from rbp.apply import apply_model, apply_models, model_labels

    models = {"qki-cnn": _untrained("cnn", 1), "tia1-lstm": _untrained("lstm", 2)}
    models["qki-cnn"].info["dataset"], models["tia1-lstm"].info["dataset"] = "QKI", "TIA1"
    assert model_labels(models) == {"qki-cnn": "QKI", "tia1-lstm": "TIA1"}
    rng = np.random.default_rng(0)
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">{name}\n{''.join(rng.choice(list('ACGU'), n))}\n"
                             for name, n in [("s2", 41), ("s0", 30), ("s3", 400), ("s1", 250)]))
    result = apply_models(list(models.values()), fasta, tmp_path / "out", figures=2, progress=False,
                          load=lambda model, device: (model, "memory"))
    scores = pd.read_csv(tmp_path / "out" / "scores.tsv", sep="\t")
    assert scores.columns.tolist()[:4] == ["sequence_id", "length", "QKI", "QKI_call"]
    assert {"TIA1", "TIA1_call", "TIA1_sites"} <= set(scores.columns) and scores.sequence_id.tolist() == [
        "s2", "s0", "s3", "s1"]  # in the file's order
    alone = apply_model(models["tia1-lstm"], fasta, tmp_path / "alone", figures=0, progress=False)
    np.testing.assert_allclose(scores.TIA1, alone.scores.probability)  # the same scores as on its own
    assert (tmp_path / "out" / "TIA1" / "windows.tsv").is_file() and (tmp_path / "out" / "QKI" / "sites.bed").is_file()
    assert sorted(p.name for p in (tmp_path / "out" / "figures").iterdir()) == ["s1.png", "s3.png"]
    sites = pd.read_csv(tmp_path / "out" / "sites.tsv", sep="\t")
    assert set(sites.model) <= {"QKI", "TIA1"}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert list(summary["models"]) == ["QKI", "TIA1"] and "2 models" in str(result)
    assert not list(tmp_path.glob(".out.partial-*"))
    with pytest.raises(RbpError, match="already exists"):
        apply_models(list(models.values()), fasta, tmp_path / "out", load=lambda model, device: (model, "memory"))


def test_with_an_ensemble_among_several_models_its_members_score_each_window_once(tmp_path):
    """`rbp predict --model <data set>` brings the ensemble and its members: they are not run again for it,
    nor for the figures, and the ensemble scores as it does alone."""
    from rbp.apply import apply_model, apply_models
    from rbp.ensemble import EnsembleFamily, EnsembleParams

    members = {"lstm": _untrained("lstm", 1), "kmer_lr": _untrained("kmer_lr", 2)}
    family = EnsembleFamily(EnsembleParams(), 3, members)
    ensemble = FoldEnsemble(family, None, [family.combine(1), family.combine(2)], [1, 2], 41, 0.5)
    for name, predictor in zip("ABC", [*members.values(), ensemble], strict=True):
        predictor.info["dataset"] = name  # the column it gets
    rng = np.random.default_rng(1)
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">s{i}\n{''.join(rng.choice(list('ACGU'), n))}\n" for i, n in enumerate([41, 30, 300])))
    runs = []
    for model in members["lstm"].models:
        model.register_forward_hook(lambda module, args, kwargs, out: runs.append(len(out)), with_kwargs=True)
    apply_model(members["lstm"], fasta, tmp_path / "lstm", figures=0, progress=False)
    alone, runs[:] = sum(runs), []
    expected = apply_model(ensemble, fasta, tmp_path / "ensemble", figures=0, progress=False).scores
    runs.clear()
    result = apply_models([members["lstm"], members["kmer_lr"], ensemble], fasta, tmp_path / "out", figures=1,
                          progress=False, load=lambda model, device: (model, "memory"))
    assert sum(runs) == alone  # the LSTM's windows, once: not again for the ensemble, nor for the figure
    np.testing.assert_allclose(result.scores["C"], expected.probability, atol=1e-6)


def test_k_is_checked_against_every_size_a_kmer_regression_counts():
    model = _untrained("kmer_lr", 0)  # 2- and 3-mers
    assert model.with_k(2) is model and model.with_k(3) is model and model.with_k(None) is model
    with pytest.raises(RbpError, match="k = 4 was given, but this model was trained on 2- to 3-mers; leave k out"):
        model.with_k(4)
    with pytest.raises(RbpError, match="k = 4 was given, but this model was trained on single nucleotides"):
        _untrained("cnn", 0).with_k(4)


def test_sequences_with_n_follow_the_models_training_policy_and_are_counted(model_dir, tmp_path, capsys):
    """The model was trained with `ambiguous: skip`: predict skips such sequences, says how many and
    lists them; --ambiguous keep scores them and says so; error refuses the file by line."""
    fasta = tmp_path / "in.fa"
    fasta.write_text(">clean\n" + "ACGU" * 20 + "A\n>one_n\n" + "ACGN" * 20 + "A\n>all_n\n" + "N" * 81 + "\n")
    assert FoldEnsemble.load(model_dir).params.ambiguous == "skip"
    assert main(["predict", "--model", str(model_dir), "--fasta", str(fasta), "--out", str(tmp_path / "a")]) == 0
    said = capsys.readouterr().out
    assert "2 sequences holding N or another ambiguity code were skipped, as the model was trained" in said
    assert pd.read_csv(tmp_path / "a" / "scores.tsv", sep="\t").sequence_id.tolist() == ["clean"]
    assert (tmp_path / "a" / "skipped_ambiguous.txt").read_text() == "one_n\nall_n\n"
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["skipped_ambiguous"] == 2
    assert main(["predict", "--model", str(model_dir), "--fasta", str(fasta), "--out", str(tmp_path / "b"),
                 "--ambiguous", "keep"]) == 0
    assert "2 sequences hold N or another ambiguity code: scored with those positions unknown" in \
        capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "b" / "scores.tsv", sep="\t")) == 3
    assert main(["predict", "--model", str(model_dir), "--fasta", str(fasta), "--out", str(tmp_path / "c"),
                 "--ambiguous", "error"]) == 2
    assert "in.fa, line 3: record 'one_n' holds ambiguous bases (N)" in capsys.readouterr().err
    only_n = tmp_path / "n.fa"
    only_n.write_text(">all_n\n" + "N" * 81 + "\n")
    assert main(["predict", "--model", str(model_dir), "--fasta", str(only_n), "--out", str(tmp_path / "d")]) == 2
    assert "every sequence holds N or another ambiguity code, and ambiguous is skip" in capsys.readouterr().err
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


def test_what_a_killed_predict_left_is_cleaned_and_a_failed_write_is_one_message(model_dir, tmp_path, monkeypatch,
                                                                                    capsys):
    import subprocess

    fasta = tmp_path / "in.fa"
    fasta.write_text(">a\n" + "ACGU" * 20 + "A\n")
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = tmp_path / f".earlier.partial-{dead.pid}"  # what `kill -9` of a run into tmp_path/earlier left
    (left / "figures").mkdir(parents=True)
    alive = tmp_path / f".running.partial-{os.getppid()}"  # a live process's: kept
    alive.mkdir()
    apply_model(model_dir, fasta, tmp_path / "out", progress=False)
    assert not left.exists() and (tmp_path / "out" / "scores.tsv").is_file()
    assert alive.is_dir()
    alive.rmdir()

    import rbp.apply

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / ".x" / "windows.tsv"))

    monkeypatch.setattr(rbp.apply, "_write", full)
    assert main(["predict", "--model", str(model_dir), "--fasta", str(fasta), "--out", str(tmp_path / "full")]) == 2
    err = capsys.readouterr().err
    assert "full: the results could not be written: No space left on device" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.fa", "out"]


def test_an_output_folder_that_cannot_be_written_is_refused_first(tmp_path):
    from rbp.config import check_writable

    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(RbpError, match=r"output_dir: .*file/runs cannot be written \(Not a directory\)"):
        check_writable(blocked / "runs", "output_dir")
    check_writable(tmp_path / "new" / "deeper", "output_dir")
    assert not (tmp_path / "new").exists()  # the check leaves nothing behind
    from rbp.cli import main as cli

    assert cli(["run", "-p", f"output_dir={blocked}/runs", "-p", "notebooks=[01_preprocess]"]) == 2
