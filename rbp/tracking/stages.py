"""What each stage leaves in MLflow: the data and folds (`preprocess`), the comparison, the length
sweep, the interpretation, the predictions (`predict`), variant effects (`variants`) and the
leaderboard. The stages themselves
compute plain results (data frames, dataclasses, figures); these functions log them."""

from __future__ import annotations

import hashlib
import json
import tempfile
import warnings
from pathlib import Path

import mlflow
import mlflow.data
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking.fluent import _create_dataset_input

from rbp import compare, reporting
from rbp.config import new_run_name, slug
from rbp.leaderboard import EXPERIMENT, as_list, leaderboard_metrics
from rbp.records import CVRun
from rbp.tracking.lifecycle import active_run, house_tags
from rbp.tracking.store import NOTE, client, use_experiment


def log_dataset(folds, name: str, run_id: str | None = None) -> None:
    """The folds' sequences as a dataset input of run `run_id` (default: the active run): the UI's
    Dataset column shows the name and the start of the data sha256 as its digest (MLflow keeps 36
    characters at most); the source names the FASTA files. A fixed test set is a second input, of
    context `test`, whose digest starts its own file's sha256."""
    manifest = folds.manifest
    inputs = manifest.get("inputs", {})
    sequences = folds.sequences[["id", "sequence", "label"]]
    parts = [(sequences, " + ".join(item["path"] for item in inputs.values()) or str(folds.dir), name,
              manifest["data_sha256"], "training")]
    if manifest.get("protocol") == "fixed_test":
        test_ids = set(folds.assignment.id[folds.assignment.split == "test"])
        is_test = sequences.id.isin(test_ids)
        parts = [(sequences[~is_test], " + ".join(item["path"] for key, item in inputs.items() if key != "test_set"),
                  name, manifest["data_sha256"], "training"),
                 (sequences[is_test], inputs["test_set"]["path"], f"{name}-test", manifest["test_sha256"], "test")]
    with warnings.catch_warnings():  # MLflow's guesses about the source kind and integer columns: noise here
        warnings.simplefilter("ignore", UserWarning)
        datasets = [_create_dataset_input(mlflow.data.from_pandas(frame, source=source, targets="label", name=label,
                                                                  digest=digest[:12]), context, None)
                    for frame, source, label, digest, context in parts]
        _log_inputs(run_id or mlflow.active_run().info.run_id, datasets)


def _log_inputs(run_id: str, datasets: list) -> None:
    """Runs logging the same data set at the same moment (the models of a pipeline run side by side, a
    workflow's fold jobs) race to add it to the store, which looks for it and then inserts it: the one
    that loses fails on the store's unique key, and finds it there the second time."""
    for attempt in (1, 2):
        try:
            client().log_inputs(run_id, datasets=datasets)
            return
        except MlflowException:
            if attempt == 2:
                raise


def log_frame(frame, artifact_file: str) -> None:
    """A DataFrame as a CSV artifact."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        frame.to_csv(path, index=False)
        mlflow.log_artifact(str(path), str(Path(artifact_file).parent) if "/" in artifact_file else None)


def log_preprocess(params, manifest: dict, folds_dir: str | Path, figures: dict, parent_run_id: str | None,
                   run_name: str, ceiling_auc: float | None = None) -> str:
    """The `preprocess` run (under the pipeline run when there is one): data params, counts, the
    manifest, the fold table and the figures. A synthetic set's ceiling (the ROC AUC of its planted
    truth) goes to the pipeline run too, where the comparison reads it. Returns its run id."""
    from rbp.params import DATA_KEYS
    from rbp.train import resolve_device  # torch: imported when a stage logs, not with the package

    tags = house_tags(params.dataset_name, manifest["data_sha256"], model_family="data",
                      synthetic=str(params.synthetic).lower(), folds_sha256=manifest["folds_sha256"],
                      device=str(resolve_device(params.device)))
    sizes = manifest["fold_sizes"]
    with active_run("preprocess" if parent_run_id else run_name, parent_run_id=parent_run_id, tags=tags) as active:
        mlflow.log_params({**{key: getattr(params, key) for key in DATA_KEYS}, "dataset": params.dataset_name})
        mlflow.log_metrics({
            "n_sequences": manifest["counts"]["total"],
            "n_positives": manifest["counts"]["positives"],
            "n_negatives": manifest["counts"]["negatives"],
            "n_skipped_ambiguous": sum(i["skipped_ambiguous"] for i in manifest["inputs"].values()),
            "n_dropped_short": manifest.get("n_dropped_short", 0),
            "n_folds": len(sizes),
            "test_fold_min": min(f["test"] for f in sizes),
            "test_fold_max": max(f["test"] for f in sizes),
        })
        if ceiling_auc is not None:
            mlflow.log_metric("ceiling_auc", ceiling_auc)
            if parent_run_id:
                client().log_metric(parent_run_id, "ceiling_auc", ceiling_auc)
        mlflow.log_dict(manifest, "folds/manifest.json")
        mlflow.log_artifact(str(Path(folds_dir) / "folds.tsv"), "folds")
        for name, figure in figures.items():
            mlflow.log_figure(figure, f"figures/{name}.png")
    return active.info.run_id


def log_interpretation(run_id: str, interpretation, figures: dict) -> None:
    """An `rbp.interpret.Interpretation` under `interpret/` of its CV run `run_id`: the motifs
    (JSON: consensus, probability and contribution matrices, support, positions), the known-motif
    matches, the explained sequences with their per-nucleotide scores, the figures; and its headline
    figures as metrics. Works on a FINISHED run as on a RUNNING one."""
    store = client()
    motifs = [{"name": m.name, "consensus": m.consensus, "seqlets": m.seqlets, "sequences": m.sequences,
               "share": m.share, "ppm_ACGU": np.round(m.ppm, 4).tolist(), "cwm_ACGU": np.round(m.cwm, 5).tolist(),
               "seqlets_hold": m.pattern_consensus, "pattern_ppm_ACGU": np.round(m.sequence_ppm, 4).tolist(),
               "starts": m.starts, "reverse": m.reverse} for m in interpretation.motifs]
    store.log_text(run_id, json.dumps({"model": interpretation.label, "method": interpretation.method,
                                        "motifs": motifs}, indent=1) + "\n", "interpret/motifs.json")
    store.log_text(run_id, interpretation.matches.to_csv(index=False), "interpret/known_motif_matches.csv")
    scores = pd.DataFrame(np.round(interpretation.scores, 5), columns=[f"p{i}" for i in
                                                                        range(interpretation.scores.shape[1])])
    store.log_text(run_id, pd.concat([interpretation.table, scores], axis=1).to_csv(index=False),
                    "interpret/attributions.csv")
    for name, figure in figures.items():
        store.log_figure(run_id, figure, f"interpret/{name}.png")
    summary = interpretation.summary()
    metrics = {"interpret_motifs": summary["motifs"], "interpret_top_motif_share": summary["top_motif_share"],
               "interpret_best_similarity": summary["best_similarity"]}
    for key, value in metrics.items():
        if value == value:  # not NaN
            store.log_metric(run_id, key, float(value))


def log_predict_run(results: dict, fasta: str | Path, dataset: str, parent_run_id: str | None = None,
                    extra_metrics: dict | None = None) -> str:
    """A `predict` run: the FASTA as its dataset input (sha256 digest), the settings, the counts per
    model, and each model's output folder as artifacts. `results`: label -> `PredictResult`."""
    digest = hashlib.sha256(Path(fasta).read_bytes()).hexdigest()
    first = next(iter(results.values()))
    with active_run("predict", parent_run_id=parent_run_id,
             tags=house_tags(dataset, model_family="predict", input_sha256=digest)) as active:
        mlflow.log_params({"fasta": str(fasta), "stride": first.summary["stride"],
                           "motif": first.summary["motif"],
                           **{f"model.{slug(label)}": r.summary["model"] for label, r in results.items()}})
        for label, result in results.items():
            s, key = result.summary, slug(label)
            mlflow.log_metrics({f"{key}.sequences": s["sequences"], f"{key}.windows": s["windows"],
                                f"{key}.sites": s["sites"], f"{key}.threshold": s["threshold"],
                                f"{key}.seconds": s["seconds"]})
            mlflow.log_artifacts(str(result.out), f"predictions/{key}")
        if extra_metrics:
            mlflow.log_metrics(extra_metrics)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            mlflow.log_input(mlflow.data.from_pandas(first.scores[["sequence_id", "length"]], source=str(fasta),
                                                     name=Path(fasta).name, digest=digest[:12]), context="inference")
    return active.info.run_id


def log_variants_run(result, dataset: str, parent_run_id: str | None = None) -> str:
    """A `variants` run: the reference FASTA and the variants file as its dataset inputs (sha256
    digests), the models, the counts of gained and lost sites per model, and the results folder
    (`variants.tsv`, `summary.json`, figures) as artifacts. `result`: `rbp.variants.VariantsResult`."""
    s = result.summary
    inputs = s["inputs"]
    with active_run("variants", parent_run_id=parent_run_id,
                    tags=house_tags(dataset, model_family="variants", input_sha256=inputs["variants"]["sha256"],
                                    fasta_sha256=inputs["fasta"]["sha256"])) as active:
        mlflow.log_params({"fasta": inputs["fasta"]["path"], "variants_file": inputs["variants"]["path"],
                           **{f"model.{slug(label)}": uri for label, uri in s["models"].items()}})
        metrics = {"variants": s["variants"], "skipped": s["skipped"], "seconds": s["seconds"]}
        for label, counts in s["sites"].items():
            metrics.update({f"{slug(label)}.{change}": n for change, n in counts.items()})
            metrics[f"{slug(label)}.threshold"] = s["thresholds"][label]
        mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(result.out), "variants")
        table = result.table[["name", "sequence_id", "position", "ref", "alt"]].drop_duplicates("name")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for role, frame in (("variants", table), ("fasta", table[["sequence_id"]].drop_duplicates())):
                mlflow.log_input(mlflow.data.from_pandas(frame, source=inputs[role]["path"],
                                                         name=Path(inputs[role]["path"]).name,
                                                         digest=inputs[role]["sha256"][:12]), context=role)
    return active.info.run_id


def log_comparison(run_id: str, table: pd.DataFrame, comparison: compare.Comparison, figures: dict,
                   cv_runs: list[CVRun] | None = None, verdict: reporting.Verdict | None = None) -> list[str]:
    """Tables (CSV and JSON) and figures (PNG) under `compare/` of run `run_id`, and the verdict's
    headline figures as its metrics; returns the artifact paths.

    Works whether the run is still RUNNING (the pipeline driving this notebook) or FINISHED.
    """
    store, logged = client(), []
    if verdict is not None:
        for key, value in verdict.metrics.items():
            store.log_metric(run_id, key, value)

    def text(content: str, name: str) -> None:
        store.log_text(run_id, content, f"{compare.ARTIFACT_DIR}/{name}")
        logged.append(f"{compare.ARTIFACT_DIR}/{name}")

    text(table.to_csv(index=False), "summary.csv")
    text(comparison.validation.to_csv(index=False), "validation.csv")
    text(comparison.tests.to_csv(index=False), "paired_tests.csv")
    text(comparison.fold_differences.to_csv(index=False), "fold_differences.csv")
    text(comparison.auc_differences.to_csv(index=False), "auc_difference.csv")
    summary = {
        "best": comparison.best,
        "chosen_by": compare.CHOSEN_BY,
        "selection": comparison.selection,
        "compared": "each model against the best" if comparison.best else "every pair",
        "p_adjustment": "Holm, separately for the t-test, Wilcoxon and pooled-AUC p-values; intervals unadjusted",
        "validation": reporting.json_records(comparison.validation),
        "summary": reporting.json_records(table),
        "paired_tests": reporting.json_records(comparison.tests),
        "auc_difference": reporting.json_records(comparison.auc_differences),
        "notes": comparison.notes,
        "cv_runs": {run.label: run.run_id for run in cv_runs or []},
    }
    text(json.dumps(summary, indent=2) + "\n", "summary.json")
    if verdict is not None:
        text(reporting.verdict_json(verdict), reporting.VERDICT_FILE)
    for name, figure in figures.items():
        path = f"{compare.ARTIFACT_DIR}/figures/{name}.png"
        store.log_figure(run_id, figure, path)
        logged.append(path)
    return logged


def log_interpretation_summary(run_id: str, summary: pd.DataFrame) -> None:
    """One row per explained model (`Interpretation.summary()`) as `interpret/summary.csv` of the pipeline run."""
    client().log_text(run_id, summary.to_csv(index=False), "interpret/summary.csv")


def log_sweep(run_id: str, table: pd.DataFrame, figure) -> None:
    """The length sweep's table and figure under `sweep/` of its pipeline run."""
    store = client()
    store.log_figure(run_id, figure, "sweep/auc_by_length.png")
    store.log_text(run_id, table.to_csv(index=False), "sweep/sweep_table.csv")


def log_leaderboard(table: pd.DataFrame, figure, pipeline_run_ids: list[str], notebook_path=None,
                    run_name: str | None = None, motifs_figure=None) -> str:
    """A run of the `leaderboard` experiment, named `leaderboard-<YYYYmmdd-HHMMSS>` unless `run_name`
    is given: the data sets and pipeline run ids as params, `leaderboard_metrics` as metrics, the table
    (`leaderboard.csv`), the figure (`figures/leaderboard.png`), what was left out (`left_out.txt`) and
    the notebook when given. Returns its run id."""
    use_experiment(EXPERIMENT)
    datasets = list(dict.fromkeys(table.dataset))
    tags = house_tags(", ".join(datasets), model_family="leaderboard")
    with active_run(run_name or new_run_name(EXPERIMENT), tags=tags) as active:
        mlflow.log_params({"datasets": ", ".join(datasets), "pipeline_run_ids": ", ".join(as_list(pipeline_run_ids))})
        mlflow.log_metrics(leaderboard_metrics(table))
        log_frame(table, "leaderboard.csv")
        mlflow.log_figure(figure, "figures/leaderboard.png")
        if motifs_figure is not None:
            mlflow.log_figure(motifs_figure, "figures/top_motifs.png")
        if table.attrs.get("left_out"):
            mlflow.log_text("\n".join(table.attrs["left_out"]) + "\n", "left_out.txt")
        if notebook_path:
            mlflow.log_artifact(str(notebook_path), "notebooks")
    return active.info.run_id


# --------------------------------------------------------------------------------- the pipeline run
def log_notebook(run_id: str, path: str | Path) -> None:
    """An executed notebook under `notebooks/` of its run (also when it failed: it is the record)."""
    client().log_artifact(run_id, str(path), "notebooks")


def log_report(run_id: str, html: str | Path, artifact_path: str = "reports") -> None:
    """An HTML report of an executed notebook under `reports/` of its run."""
    client().log_artifact(run_id, str(html), artifact_path)


def describe_verdict(run_id: str, note: str, headline: str) -> None:
    """The comparison's verdict as the pipeline run's description (`note`, Markdown), and as the
    description of its experiment, which heads its runs page in the UI: the latest verdict is seen
    first there (`headline`, Markdown, after the run's name)."""
    store = client()
    store.set_tag(run_id, NOTE, note)
    run = store.get_run(run_id)
    store.set_experiment_tag(run.info.experiment_id, NOTE, f"**Latest verdict** ({run.info.run_name}): {headline}")
