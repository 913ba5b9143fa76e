"""The driver end to end: papermill runs the notebooks, MLflow holds the runs and artifacts."""

import json
import logging
import shutil
import subprocess
import sys

import mlflow
import nbformat
import pytest
from mlflow.tracking import MlflowClient

import rbp.schedule
from rbp.cli import main
from rbp.errors import RbpError
from rbp.metrics import TEST_METRICS
from rbp.params import load_params
from rbp.pipeline import PipelineError, check_inputs, run_pipeline, skip_reason
from rbp.synthetic import make_transcript, transcript_variants, write_transcript
from tests.conftest import ROOT

SMOKE = ROOT / "params" / "smoke.yaml"


def _artifacts(run_id, path=None):
    client = MlflowClient()
    out = []
    for item in client.list_artifacts(run_id, path):
        out += _artifacts(run_id, item.path) if item.is_dir else [item.path]
    return sorted(out)


def _check_models_and_predict(result, pipeline, runs, echoed):
    """Each CV run registered its model, the verdict names them, and 06_predict scanned predict.fasta."""
    client = MlflowClient()
    assert {v.name: int(v.version) for v in client.search_model_versions("name LIKE 'small-%'")} == {
        f"small-{m}": 1 for m in ("dnabert", "lstm", "cnn", "kmer_lr", "ensemble")}
    note = pipeline.data.tags["mlflow.note.content"]
    assert "Registered models: DNABERT (pretrained) `models:/small-dnabert/1`, LSTM `models:/small-lstm/1`" in note
    assert "Ensemble `models:/small-ensemble/1`" in note
    predict_run = runs[runs["tags.mlflow.runName"] == "predict"].iloc[0]
    assert predict_run["tags.mlflow.parentRunId"] == result.run_id and predict_run.status == "FINISHED"
    assert predict_run["params.model.lstm"] == "models:/small-lstm/1"
    assert predict_run["metrics.lstm.sequences"] == 1 and predict_run["metrics.lstm.windows"] > 2000
    assert "metrics.lstm.planted_found" not in runs.columns
    logged = _artifacts(predict_run.run_id)
    assert {"predictions/lstm/sites.bed", "predictions/dnabert-pretrained/scores.tsv"} <= set(logged)
    assert (result.run_dir / "predict" / "lstm" / "figures" / "synthetic_transcript_2.png").is_file()
    assert any("LSTM: 1 sequences" in line for line in echoed)
    assert not any("planted" in line for line in echoed)  # the FASTA was the user's: nothing planted is known


def _check_variants(result, runs, echoed):
    """09_variants scored variants.file with every model the run registered, logged under the pipeline run."""
    import pandas as pd

    run = runs[runs["tags.mlflow.runName"] == "variants"].iloc[0]
    assert run["tags.mlflow.parentRunId"] == result.run_id and run.status == "FINISHED"
    assert run["tags.model_family"] == "variants" and run["metrics.variants"] == 26
    table = pd.read_csv(result.run_dir / "variants" / "variants.tsv", sep="\t")
    assert sorted(table.model.unique()) == [f"small {m}" for m in ("CNN", "DNABERT (pretrained)", "Ensemble", "LSTM",
                                                                   "k-mer LR")]  # one data set: by family and init
    assert len(table) == 5 * 26 and "variants/variants.tsv" in _artifacts(run.run_id)
    assert any(line.startswith("  26 variants scored by 5 models") for line in echoed)


def _check_interpret(result, runs, echoed):
    """07_interpret explained each model's confident positives and logged what it found under its CV run."""
    import pandas as pd

    summary = pd.read_csv(result.run_dir / "interpret_summary.csv")
    assert sorted(summary.model) == ["CNN", "DNABERT (pretrained)", "Ensemble", "LSTM", "k-mer LR"]
    assert (summary.sequences > 0).all()
    assert (summary.method == "in-silico mutagenesis").all()
    for name in ("lstm_cv", "dnabert_cv"):
        cv_run = runs[runs["tags.mlflow.runName"] == name].iloc[0]
        logged = _artifacts(cv_run.run_id)
        assert {"interpret/motifs.json", "interpret/attributions.csv", "interpret/attribution_logos.png",
                "interpret/motif_logos.png", "interpret/known_motif_matches.csv"} <= set(logged)
        assert "interpret_motifs" in MlflowClient().get_run(cv_run.run_id).data.metrics
    assert "interpret/summary.csv" in _artifacts(result.run_id)
    assert any(line.startswith("  LSTM: top motif") for line in echoed)


@pytest.mark.slow
@pytest.mark.usefixtures("mlflow_store")
def test_smoke_pipeline_through_the_driver(small_data_dir, tmp_path):
    """The smoke pipeline end to end: preprocess, DNABERT from a DNABERT-layout checkpoint, LSTM."""
    from tests.dnabert_layout import write_dnabert_checkpoint

    checkpoint = write_dnabert_checkpoint(tmp_path / "dnabert-3", k=3, hidden=16, layers=1, heads=2)
    write_transcript(tmp_path / "transcripts.fa", seed=2)
    transcript_variants(*make_transcript(seed=2)).to_csv(tmp_path / "variants.tsv", sep="\t", index=False)
    echoed = []
    notebooks = [*load_params(SMOKE).notebooks, "09_variants"]
    result = run_pipeline(SMOKE, {"data_dir": str(small_data_dir), "dataset": "small", "notebooks": notebooks,
                                  "output_dir": str(tmp_path / "out"),
                                  "dnabert": {"checkpoint": str(checkpoint), "log_checkpoints": True},
                                  "predict": {"fasta": str(tmp_path / "transcripts.fa")},
                                  "variants": {"fasta": str(tmp_path / "transcripts.fa"),
                                               "file": str(tmp_path / "variants.tsv"), "figures": 1}},
                          echo=echoed.append)
    runs = mlflow.search_runs(experiment_names=["small"])
    models = ["dnabert", "lstm", "cnn", "kmer_lr", "ensemble"]
    assert sorted(runs["tags.mlflow.runName"]) == sorted(
        [*[f"{m}_cv" for m in models], *["fold-1", "fold-2"] * len(models), "preprocess", "predict", "variants",
         result.run_name])
    assert (result.run_dir / "07_interpret.ipynb").is_file()
    pipeline = MlflowClient().get_run(result.run_id)
    assert pipeline.info.status == "FINISHED"
    assert pipeline.data.tags["model_family"] == "pipeline" and pipeline.data.tags["device"] == "cpu"
    assert pipeline.data.tags["synthetic"] == "false" and len(pipeline.data.tags["data_sha256"]) == 64
    assert pipeline.data.params["folds"] == "2" and pipeline.data.metrics["n_sequences"] == 120
    logged = _artifacts(result.run_id)
    assert {f"notebooks/{n}.ipynb" for n in ("01_preprocess", "02_dnabert_cv", "03_lstm_cv", "04_compare")} <= set(
        logged)
    # the compare step: its tables and figures on the pipeline run, and the HTML report
    assert {"reports/04_compare.html", "compare/summary.csv", "compare/summary.json",
            "compare/figures/roc_curves.png", "compare/figures/pr_curves.png", "compare/figures/fold_auc.png",
            "compare/figures/val_auc_per_epoch.png"} <= set(logged)
    html = (result.run_dir / "04_compare.html").read_text()
    assert all(label in html for label in ("DNABERT (pretrained)", "LSTM", "CNN", "k-mer LR", "Ensemble", "<img"))
    compared = json.loads(mlflow.artifacts.load_text(f"runs:/{result.run_id}/compare/summary.json"))
    assert compared["best"] and len(compared["paired_tests"]) == 4  # every other model against the best
    ensemble = runs[runs["tags.mlflow.runName"] == "ensemble_cv"].iloc[0]
    assert ensemble["tags.members"] == "dnabert,lstm,cnn,kmer_lr" and ensemble["tags.registered_model"]
    assert "Verdict." in html and "SYNTHETIC DATA" not in html and "reported (original" not in html
    # on 2 cores or more the models train side by side
    if rbp.schedule.cores() >= 2:
        assert echoed.index("  03_lstm_cv: running") < next(
            i for i, line in enumerate(echoed) if line.startswith("  02_dnabert_cv: done in"))
    _check_verdict(result, pipeline, echoed)
    _check_models_and_predict(result, pipeline, runs, echoed)
    _check_interpret(result, runs, echoed)
    _check_variants(result, runs, echoed)

    child = runs[runs["tags.mlflow.runName"] == "preprocess"].iloc[0]
    assert child["tags.mlflow.parentRunId"] == result.run_id
    assert child["tags.mlflow.runName"] == "preprocess" and child.status == "FINISHED"
    assert child["tags.device"] == "cpu" and child["tags.model_family"] == "data"
    assert child["tags.data_sha256"] == pipeline.data.tags["data_sha256"]
    assert child["metrics.n_sequences"] == 120 and child["metrics.n_folds"] == 2
    files = _artifacts(child.run_id)
    assert {"folds/manifest.json", "folds/folds.tsv", "figures/class_balance.png",
            "figures/length_distribution.png", "figures/motif_occurrence.png"} <= set(files)
    manifest = json.loads(mlflow.artifacts.load_text(f"runs:/{child.run_id}/folds/manifest.json"))
    assert manifest["inputs"]["negatives"]["sha256"] and manifest["seed"] == 7

    executed = nbformat.read(result.run_dir / "01_preprocess.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and result.run_id in injected[0].source
    assert (result.run_dir / "folds" / "fold-2" / "test.tsv").exists()
    _check_lstm(result, runs, tmp_path)
    _check_dnabert(result, runs, tmp_path, checkpoint)


def test_on_real_data_the_predict_step_needs_a_fasta(small_data_dir, tmp_path):
    real = load_params(SMOKE, {"data_dir": str(small_data_dir), "dataset": "small"})
    reason = skip_reason("06_predict", real)
    assert "no predict.fasta to scan" in reason and "rbp predict --model small --fasta FILE" in reason
    reason = skip_reason("09_variants", real)
    assert "no variants.file to score" in reason and "rbp variants --model small --fasta FILE --variants FILE" in reason
    assert skip_reason("09_variants", load_params(SMOKE)) is None  # synthetic: its known-answer variants
    with pytest.raises(Exception, match="variants.fasta and variants.file go together"):
        load_params(SMOKE, {"variants": {"file": "v.tsv"}})
    with pytest.raises(Exception, match="notebooks holds 09_variants but neither a model notebook nor variants.model"):
        load_params(SMOKE, {"notebooks": ["01_preprocess", "09_variants"]})
    assert skip_reason("03_lstm_cv", real) is None
    given = load_params(SMOKE, {"data_dir": str(small_data_dir), "predict": {"fasta": str(tmp_path / "t.fa")}})
    assert skip_reason("06_predict", given) is None
    assert skip_reason("06_predict", load_params(SMOKE)) is None  # the built-in synthetic set: its transcript
    bad = tmp_path / "bad.fa"
    bad.write_text(">t\nACGU?A\n")
    with pytest.raises(RbpError, match=r"bad\.fa, line 2"):  # before any training
        check_inputs(load_params(SMOKE, {"predict": {"fasta": str(bad)}}))


@pytest.mark.usefixtures("mlflow_store")
def test_bad_data_stops_before_any_run(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "positives.fa").write_text("not a fasta\n")
    (tmp_path / "data" / "negatives.fa").write_text(">n\nACGT\n")
    with pytest.raises(RbpError, match=r"positives\.fa, line 1: text before the first '>' header"):
        run_pipeline(SMOKE, {"data_dir": str(tmp_path / "data"), "output_dir": str(tmp_path / "out")})
    assert not (tmp_path / "out").exists()
    assert mlflow.search_runs(search_all_experiments=True).empty


@pytest.mark.slow
@pytest.mark.usefixtures("mlflow_store")
def test_failing_notebook_is_logged_and_marks_the_run_failed(tmp_path, monkeypatch, small_data_dir):
    root = tmp_path / "project"
    shutil.copytree(ROOT / "params", root / "params")
    (root / "notebooks").mkdir()
    nb = nbformat.read(ROOT / "notebooks" / "01_preprocess.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("raise ValueError('boom in the notebook')"))
    nbformat.write(nb, root / "notebooks" / "01_preprocess.ipynb")
    monkeypatch.setenv("RBP_ROOT", str(root))
    with pytest.raises(PipelineError, match=r"notebook 01_preprocess failed in cell \[\d+\]: "
                                             r"ValueError: boom in the notebook"):
        run_pipeline("params/smoke.yaml", {"data_dir": str(small_data_dir)}, echo=lambda *a: None)
    run = mlflow.search_runs(experiment_names=["small"], filter_string="tags.model_family = 'pipeline'")
    assert run.status.tolist() == ["FAILED"]
    assert "RUNNING" not in mlflow.search_runs(experiment_names=["small"]).status.tolist()
    assert "notebooks/01_preprocess.ipynb" in _artifacts(run.run_id[0])
    assert list((root / "outputs").glob("*/01_preprocess.ipynb"))


@pytest.mark.usefixtures("mlflow_store")
def test_cli_prints_one_message_for_bad_input(tmp_path, capsys):
    bad = tmp_path / "d"
    bad.mkdir()
    (bad / "positives.fa").write_bytes(b"\x00\x01binary")
    (bad / "negatives.fa").write_text(">n\nACGT\n")
    assert main(["run", "--params", str(SMOKE), "-p", f"data_dir={bad}"]) == 2
    err = capsys.readouterr().err
    assert "rbp: error:" in err and "binary content" in err and "Traceback" not in err


@pytest.mark.slow
def test_the_paper_recipe_needs_its_checkpoint_and_runs_with_one(mlflow_store, small_data_dir, tmp_path, capsys):
    from tests.dnabert_layout import write_dnabert_checkpoint

    paper = ROOT / "params" / "paper.yaml"
    out = tmp_path / "out"
    assert main(["run", "--params", str(paper), "-p", f"data_dir={small_data_dir}", "-p", f"output_dir={out}"]) == 2
    err = capsys.readouterr().err
    assert "dnabert.init is pretrained, but dnabert.checkpoint names no checkpoint" in err
    assert "github.com/jerryji1993/DNABERT" in err and "Traceback" not in err
    assert not out.exists() and mlflow.search_runs(search_all_experiments=True).empty  # nothing ran

    checkpoint = write_dnabert_checkpoint(tmp_path / "3-new-12w-0", k=3, hidden=16, layers=1, heads=2,
                                          weights="legacy")
    smoke = ["folds=2", "val_fraction=0.2", "dnabert.max_epochs=1", "dnabert.batch_size=64",
             "notebooks=[02_dnabert_cv]"]  # the notebook makes its folds itself
    args = ["run", "--params", str(paper), "-p", f"data_dir={small_data_dir}", "-p", f"output_dir={out}",
            "-p", f"dnabert.checkpoint={checkpoint}"]
    assert main([*args, *[part for item in smoke for part in ("-p", item)]]) == 0
    cv = mlflow.search_runs(experiment_names=["small"], filter_string="tags.mlflow.runName = 'dnabert_cv'")
    assert cv.status.tolist() == ["FINISHED"] and cv["tags.init"].tolist() == ["pretrained"]
    assert cv["params.dnabert.lr"].tolist() == ["0.0002"] and cv["tags.selection"].tolist() == ["validation"]


@pytest.mark.slow
def test_cli_refuses_unknown_key_as_a_subprocess(tmp_path):
    out = subprocess.run([sys.executable, "-m", "rbp", "run", "--params", str(SMOKE), "-p", "lstm.lrate=1"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2
    assert "unknown key lstm.lrate; allowed in lstm:" in out.stderr and "Traceback" not in out.stderr


def _check_verdict(result, pipeline, echoed):
    """Progress while the models train; the verdict in the terminal, the run's metrics and its note."""
    text = "\n".join(echoed)
    assert "LSTM fold 1/2, epoch 1/2: validation AUC" in text and "DNABERT (pretrained) fold 2/2 done" in text
    verdict = json.loads((result.run_dir / "verdict.json").read_text())
    assert verdict["sentence"] in text.replace("\n", " ") or verdict["sentence"][:60] in text
    assert [row["model"] for row in verdict["table"]] and "ROC AUC" in verdict["table"][0]
    metrics = pipeline.data.metrics
    for model in ("lstm", "dnabert_pretrained"):
        assert 0 <= metrics[f"{model}.mean_test_auc"] <= 1
    if "difference.test_auc" in metrics:
        assert metrics["difference.ci_low"] <= metrics["difference.test_auc"] <= metrics["difference.ci_high"]
    note = pipeline.data.tags["mlflow.note.content"]
    assert note.startswith("**Verdict.** ") and str(result.run_dir / "04_compare.html") in note
    experiment = MlflowClient().get_experiment(pipeline.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    summary = experiment.tags["mlflow.note.content"]
    assert summary.startswith(f"**Latest verdict** ({result.run_name}): ") and "; test ROC AUC " in summary
    assert "LSTM 0." in summary and "DNABERT (pretrained) 0." in summary


def _check_cv_runs(runs, parent_run_id, family, n_folds, sha):
    """A CV run under the pipeline run, with a child per fold; names, tags, metrics, artifacts."""
    cv = runs[runs["tags.mlflow.runName"] == f"{family}_cv"]
    assert len(cv) == 1
    cv = cv.iloc[0]
    assert cv["tags.mlflow.parentRunId"] == parent_run_id and cv.status == "FINISHED"
    for tag in ("model_family", "dataset", "data_sha256", "folds_sha256", "git_commit", "device", "synthetic"):
        assert cv[f"tags.{tag}"], tag
    assert cv["tags.model_family"] == family and cv["tags.data_sha256"] == sha
    folds = runs[runs["tags.mlflow.parentRunId"] == cv.run_id]
    for key in TEST_METRICS:  # the CV run's figures are the mean and sample std of its folds'
        assert cv[f"metrics.mean_{key}"] == pytest.approx(folds[f"metrics.{key}"].mean())
        assert cv[f"metrics.std_{key}"] == pytest.approx(folds[f"metrics.{key}"].std(ddof=1))
        low = -1 if key == "test_mcc" else 0
        assert folds[f"metrics.{key}"].between(low, 1).all()
    assert {"fold_metrics.csv", "oof_predictions.csv"} <= set(_artifacts(cv.run_id))
    (dataset,) = MlflowClient().get_run(cv.run_id).inputs.dataset_inputs
    assert dataset.dataset.name == "small" and sha.startswith(dataset.dataset.digest)
    assert "positives.fa" in dataset.dataset.source and "negatives.fa" in dataset.dataset.source
    assert cv["metrics.mean_best_val_auc"] == pytest.approx(folds["metrics.best_val_auc"].mean())
    oof = mlflow.artifacts.load_text(f"runs:/{cv.run_id}/oof_predictions.csv").splitlines()
    assert oof[0] == "id,label,probability,fold" and len(oof) == 121  # every sequence once
    folds = folds.sort_values("tags.mlflow.runName")
    assert folds["tags.mlflow.runName"].tolist() == [f"fold-{i}" for i in range(1, n_folds + 1)]
    client = MlflowClient()
    for _, fold in folds.iterrows():
        assert fold["tags.model_family"] == family and fold.status == "FINISHED"
        assert fold["metrics.best_epoch"] >= 1 and 0 <= fold["metrics.test_auc"] <= 1
        history = client.get_metric_history(fold.run_id, "val_auc")
        assert [h.step for h in history] == list(range(1, len(history) + 1))
        assert client.get_metric_history(fold.run_id, "train_loss")
        assert "predictions.csv" in _artifacts(fold.run_id)
    return cv, folds


def _check_lstm(result, runs, tmp_path):
    sha = MlflowClient().get_run(result.run_id).data.tags["data_sha256"]
    cv, folds = _check_cv_runs(runs, result.run_id, "lstm", 2, sha)
    for _, fold in folds.iterrows():
        assert "checkpoint/model.pt" in _artifacts(fold.run_id)
    # the logged checkpoint rebuilds the model and gives the logged predictions again
    import pandas as pd
    import torch

    from rbp.data import Folds
    from rbp.families import make_family
    from rbp.params import load_params

    fold = folds.iloc[0]
    local = mlflow.artifacts.download_artifacts(f"runs:/{fold.run_id}/checkpoint", dst_path=str(tmp_path / "ck"))
    family = make_family("lstm", load_params(SMOKE))
    model = family.load(local)
    logged = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{fold.run_id}/predictions.csv",
                                                             dst_path=str(tmp_path / "pr")))
    test = Folds(result.run_dir / "folds").split(int(fold["tags.fold"]), "test")
    with torch.no_grad():
        again = torch.sigmoid(model(**family.encode(test.sequence))).numpy()
    assert test.id.tolist() == logged.id.astype(str).tolist()
    assert abs(again - logged.probability.to_numpy()).max() < 1e-5
    assert (result.run_dir / "03_lstm_cv.ipynb").exists()


def _check_dnabert(result, runs, tmp_path, checkpoint):
    import pandas as pd
    import torch

    from rbp.data import Folds, sha256_file
    from rbp.dnabert import encode
    from rbp.dnabert_checkpoint import load_checkpoint

    sha = MlflowClient().get_run(result.run_id).data.tags["data_sha256"]
    cv, folds = _check_cv_runs(runs, result.run_id, "dnabert", 2, sha)
    assert cv["tags.init"] == "pretrained"
    assert cv["tags.weights_sha256"] == sha256_file(checkpoint / "pytorch_model.bin")
    assert (folds["tags.init"] == "pretrained").all()
    fold = folds.iloc[1]
    files = _artifacts(fold.run_id)
    assert {"checkpoint/model.safetensors", "checkpoint/config.json", "checkpoint/vocab.txt"} <= set(files)
    # the logged best-epoch model loads back with from_pretrained and gives the logged predictions
    local = mlflow.artifacts.download_artifacts(f"runs:/{fold.run_id}/checkpoint", dst_path=str(tmp_path / "dk"))
    model = load_checkpoint(local, 3).eval()
    logged = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{fold.run_id}/predictions.csv",
                                                             dst_path=str(tmp_path / "dp")))
    test = Folds(result.run_dir / "folds").split(int(fold["tags.fold"]), "test")
    with torch.no_grad():
        again = model(**encode(test.sequence, 3, 100)).logits.softmax(-1)[:, 1].numpy()
    assert abs(again - logged.probability.to_numpy()).max() < 1e-5


@pytest.mark.slow
@pytest.mark.usefixtures("mlflow_store")
def test_length_sweep_through_the_driver(small_data_dir, tmp_path):
    result = run_pipeline(SMOKE, {"data_dir": str(small_data_dir), "dataset": "small",
                                  "output_dir": str(tmp_path / "out"), "sweep": {"lengths": [21, 41]},
                                  "notebooks": ["01_preprocess", "03_kmer_lr_cv", "05_length_sweep"]},
                          echo=lambda *a: None)
    runs = mlflow.search_runs(experiment_names=["small"])
    cv = runs[runs["tags.mlflow.parentRunId"] == result.run_id]
    cv = cv[cv["tags.mlflow.runName"].str.contains("_cv")]
    assert sorted(cv["tags.mlflow.runName"]) == ["kmer_lr_cv-21nt", "kmer_lr_cv-41nt"]
    assert sorted(cv["tags.length"]) == ["21", "41"]
    assert cv["tags.folds_sha256"].nunique() == 1  # every length on the same folds
    logged = _artifacts(result.run_id)
    assert {"sweep/auc_by_length.png", "sweep/sweep_table.csv", "notebooks/03_kmer_lr_cv-21nt.ipynb",
            "notebooks/05_length_sweep.ipynb"} <= set(logged)
    table = (result.run_dir / "length_sweep.csv").read_text().splitlines()
    assert table[0].startswith("model,length,n_folds") and len(table) == 3


@pytest.mark.usefixtures("mlflow_store")
def test_interrupted_pipeline_leaves_no_run_running(small_data_dir, tmp_path, monkeypatch):
    """A kernel killed mid-notebook cannot end its runs: the driver ends them for it, and stops the kernels."""
    import rbp.pipeline

    def killed(name, output, values, run_id, echo, kernel):
        # what a notebook kernel had opened (in its own process) when it was killed
        client = MlflowClient()
        experiment = client.get_run(run_id).info.experiment_id
        cv = client.create_run(experiment, tags={"mlflow.parentRunId": run_id, "mlflow.runName": "lstm_cv"})
        client.create_run(experiment, tags={"mlflow.parentRunId": cv.info.run_id, "mlflow.runName": "fold-1"})
        raise KeyboardInterrupt

    started, start_kernel = [], rbp.pipeline.start_kernel
    monkeypatch.setattr(rbp.pipeline, "start_kernel",
                        lambda *args, **kwargs: started.append(start_kernel(*args, **kwargs)) or started[-1])
    monkeypatch.setattr(rbp.pipeline, "execute_notebook", killed)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(SMOKE, {"data_dir": str(small_data_dir), "output_dir": str(tmp_path / "out")},
                     echo=lambda *a: None)
    runs = mlflow.search_runs(experiment_names=["small"])
    assert sorted(runs.status) == ["KILLED", "KILLED", "KILLED"]
    # the killed notebook's kernel and the next notebooks' kernels, started ahead, are stopped
    assert len(started) == 1 + rbp.pipeline.KERNELS_AHEAD
    assert all(kernel is not None and not kernel.km.has_kernel for kernel in started)


def test_failure_message_without_an_error_value_names_the_last_traceback_line():
    from pathlib import Path

    from papermill.exceptions import PapermillExecutionError

    from rbp.pipeline import _failure

    exc = PapermillExecutionError(5, 6, "src", "CellExecutionError", "",
                                  ["...", "\x1b[0;31mModuleNotFoundError\x1b[0m: No module named 'x'"])
    assert str(_failure("03_lstm_cv", exc, Path("o.ipynb"))) == (
        "notebook 03_lstm_cv failed in cell [6]: CellExecutionError: ModuleNotFoundError: No module named 'x' "
        "(executed notebook: o.ipynb)")


def test_run_folders_are_claimed_once(tmp_path):
    from rbp.config import claim_run_dir

    first, second = claim_run_dir(tmp_path, "pum2-x"), claim_run_dir(tmp_path, "pum2-x")
    assert (first.name, second.name) == ("pum2-x", "pum2-x-2") and second.is_dir()


@pytest.mark.parametrize("name", ["01_preprocess", "02_dnabert_cv", "03_lstm_cv", "04_compare", "05_length_sweep"])
def test_a_notebook_receives_only_the_parameters_it_declares(name):
    import papermill

    from rbp.params import load_params
    from rbp.pipeline import notebook_parameters, notebook_path

    values = notebook_parameters(name, load_params(ROOT / "params" / "default.yaml"), parent_run_id="x",
                                 run_dir="/tmp/r", folds_dir=None, length=41)
    declared = set(papermill.inspect_notebook(str(notebook_path(name))))
    assert values and set(values) <= declared
    assert ("lstm" in values) == (name == "03_lstm_cv") and ("dnabert" in values) == (name == "02_dnabert_cv")


@pytest.mark.usefixtures("mlflow_store")
def test_cuda_on_a_machine_without_it_leaves_nothing_behind(small_data_dir, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RbpError, match="device: cuda was asked for, but torch sees no CUDA device"):
        run_pipeline(SMOKE, {"data_dir": str(small_data_dir), "device": "cuda", "output_dir": str(tmp_path / "out")})
    assert not (tmp_path / "out").exists()
    assert mlflow.search_runs(search_all_experiments=True).empty


def test_a_kernel_that_dies_before_it_answers_is_started_once_more(monkeypatch, tmp_path):
    """Jobs side by side can pick the same free port for their kernels: the one that loses is retried,
    any other failure is not."""
    import rbp.pipeline

    calls = []

    def flaky(notebook, output, **kwargs):
        calls.append(notebook)
        if len(calls) == 1:
            raise RuntimeError("Kernel died before replying to kernel_info")
        nbformat.write(nbformat.v4.new_notebook(), output)

    monkeypatch.setattr(rbp.pipeline.papermill, "execute_notebook", flaky)
    said = []
    rbp.pipeline.execute_notebook("01_preprocess", tmp_path / "01_preprocess.ipynb", {}, None, said.append)
    assert len(calls) == 2 and (tmp_path / "01_preprocess.ipynb").is_file()
    assert any("its kernel did not start" in line for line in said)

    def broken(notebook, output, **kwargs):
        calls.append(notebook)
        raise RuntimeError("something else")

    class Ahead:  # a kernel started ahead: the one that died is replaced by a new one
        def __init__(self):
            self.km = "first"

        def renew(self):
            self.km = "second"

    calls.clear()
    monkeypatch.setattr(rbp.pipeline.papermill, "execute_notebook",
                        lambda notebook, output, km, **kwargs: flaky(km, output))
    rbp.pipeline.execute_notebook("01_preprocess", tmp_path / "ahead.ipynb", {}, None, said.append, Ahead())
    assert calls == ["first", "second"]

    calls.clear()
    monkeypatch.setattr(rbp.pipeline.papermill, "execute_notebook", broken)
    with pytest.raises(PipelineError, match="RuntimeError: something else"):
        rbp.pipeline.execute_notebook("01_preprocess", tmp_path / "again.ipynb", {}, None, said.append)
    assert len(calls) == 1


def test_steps_side_by_side_share_out_the_cores(monkeypatch):
    """The steps that may run beside another get the cores shared out, the others every core; a kernel is
    told its share in the variables torch, numpy's BLAS and numba read as they start."""
    import os

    import rbp.pipeline
    from rbp.kernels import THREAD_VARIABLES
    from rbp.pipeline import Kernels, side_by_side, start_kernel, todo

    monkeypatch.setattr(rbp.schedule, "cores", lambda: 4)
    params = load_params(SMOKE)
    assert params.jobs == "auto" and side_by_side(params) == 2
    kernels = Kernels(todo(params), params)
    assert [stem for _, stem, _ in kernels.planned] == params.notebooks
    assert kernels.threads == {0: None, 1: 2, 2: 2, 3: 2, 4: 2, 5: None, 6: None, 7: None, 8: None}
    one = load_params(SMOKE, ["jobs=1"])
    assert set(Kernels(todo(one), one).threads.values()) == {None}
    monkeypatch.setattr(rbp.schedule, "cores", lambda: 1)
    assert side_by_side(params) == 1 and side_by_side(load_params(SMOKE, ["jobs=3"])) == 3

    given = []
    monkeypatch.setattr(rbp.pipeline, "KernelAhead", lambda *args: given.append(args[4]))
    start_kernel("03_cnn_cv", "03_cnn_cv", params, threads=2)
    start_kernel("03_cnn_cv", "03_cnn_cv", params)
    assert [given[0][name] for name in THREAD_VARIABLES] == ["2"] * 4
    assert [given[1].get(name) for name in THREAD_VARIABLES] == [os.environ.get(name) for name in THREAD_VARIABLES]


@pytest.mark.slow
@pytest.mark.usefixtures("mlflow_store")
def test_a_step_that_fails_stops_the_one_beside_it(tmp_path, monkeypatch, small_data_dir, caplog):
    """The CNN's notebook fails while the LSTM trains beside it: the LSTM's kernel is stopped at once, its
    runs end FAILED with the pipeline run's, both notebooks are logged, and the CNN's error is raised."""
    root = tmp_path / "project"
    shutil.copytree(ROOT / "params", root / "params")
    (root / "notebooks").mkdir()
    for name in ("01_preprocess", "03_lstm_cv"):
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", root / "notebooks")
    nb = nbformat.read(ROOT / "notebooks" / "03_cnn_cv.ipynb", as_version=4)
    nb.cells.insert(3, nbformat.v4.new_code_cell(  # before its own CV: fails once the LSTM has a fold run open
        "import time\nfrom rbp import tracking\n"
        "while not tracking.client().search_runs([tracking.client().get_run(parent_run_id).info.experiment_id],"
        " \"tags.fold = '1'\"):\n    time.sleep(0.5)\n"
        "raise ValueError('boom beside the LSTM')"))
    nbformat.write(nb, root / "notebooks" / "03_cnn_cv.ipynb")
    monkeypatch.setenv("RBP_ROOT", str(root))
    echoed = []
    with pytest.raises(PipelineError, match=r"notebook 03_cnn_cv failed in cell \[\d+\]: ValueError: boom beside"):
        run_pipeline("params/smoke.yaml", {"data_dir": str(small_data_dir), "jobs": 2,
                                           "notebooks": ["01_preprocess", "03_lstm_cv", "03_cnn_cv"],
                                           "lstm": {"max_epochs": 5000, "patience": 5000}}, echo=echoed.append)
    runs = mlflow.search_runs(experiment_names=["small"])
    assert "RUNNING" not in runs.status.tolist()
    states = dict(zip(runs["tags.mlflow.runName"], runs.status, strict=False))
    assert states["preprocess"] == "FINISHED" and states["lstm_cv"] == "FAILED" and states["fold-1"] == "FAILED"
    pipeline = runs[runs["tags.model_family"] == "pipeline"]
    assert pipeline.status.tolist() == ["FAILED"]
    assert {"notebooks/03_lstm_cv.ipynb", "notebooks/03_cnn_cv.ipynb"} <= set(_artifacts(pipeline.run_id.iloc[0]))
    assert "  03_cnn_cv: running" in echoed and not any("03_lstm_cv: done" in line for line in echoed)
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]  # not "Kernel died"
