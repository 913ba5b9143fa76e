"""MLflow: one store under the project root, one experiment per data set, runs with house tags.

This is the only module (with rbp.pipeline) that imports MLflow; the core runs without it.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import tempfile
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path

import mlflow
from filelock import FileLock
from mlflow.tracking import MlflowClient

from rbp.config import project_root
from rbp.errors import RbpError


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` if the user set one (a tracking server), else the project's sqlite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or project_store()


def project_store() -> str:
    """The project's own store: `mlruns/mlflow.db` under the project root."""
    return f"sqlite:///{project_root() / 'mlruns' / 'mlflow.db'}"


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]).resolve() if uri.startswith("sqlite:///") else None


def artifact_root(uri: str | None = None) -> str | None:
    """Artifacts of a local sqlite store live beside it in `artifacts/`; a server decides its own."""
    db = _sqlite_path(uri or tracking_uri())
    return (db.parent / "artifacts").as_uri() if db else None


# MLflow 3 marks what an experiment is for; ours train models. (Its UI picks the model-training view
# from the URL, `?workflowType=machine_learning`, which the CLI prints.)
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
NOTE = "mlflow.note.content"  # a run's or experiment's description in the UI


def use_experiment(name: str) -> str:
    """Point this process at the store and make `name` the active experiment; returns its id.

    Called first in every process and notebook kernel that logs, so that nested runs land in the
    experiment of their parent (not in the working directory's default store).
    """
    uri = tracking_uri()
    db = _sqlite_path(uri)
    lock = nullcontext()
    if db:
        # Runs started side by side on a new store would each create its tables (and the same
        # experiment): one process at a time does that, the others then find them.
        db.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(db.parent / ".mlflow.db.lock")
    mlflow.set_tracking_uri(uri)
    with lock:
        client = MlflowClient()
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            root = artifact_root(uri)
            experiment_id = client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None,
                                                     tags={EXPERIMENT_KIND: MODEL_TRAINING})
        else:
            experiment_id = experiment.experiment_id
            if EXPERIMENT_KIND not in experiment.tags:  # made before the kind was set
                client.set_experiment_tag(experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=project_root(),
                             capture_output=True, text=True, timeout=10)
        commit = out.stdout.strip() if out.returncode == 0 else ""
        if commit:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                   cwd=project_root(), capture_output=True, text=True, timeout=10)
            return commit + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def _stat(pid: int) -> list[str]:
    """Linux's /proc/<pid>/stat fields after the command name (state first), or [] elsewhere."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _process_start(pid: int) -> str:
    """When process `pid` started (Linux: clock ticks since boot), or "" where that cannot be read.
    With the pid it tells a process apart from a later one that got the same pid."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""


def process_tags() -> dict:
    """Where a run runs: host, process id and its start, so a later start can tell it was killed."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": str(pid), "process_start": _process_start(pid)}


def _alive(tags: dict) -> bool:
    try:
        pid = int(tags["pid"])
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (KeyError, ValueError, PermissionError, OSError):
        return True  # no pid recorded, or a process of another user: leave the run alone
    fields = _stat(pid)
    if fields and fields[0] in ("Z", "X"):  # exited, not yet reaped
        return False
    start = tags.get("process_start")
    return not start or len(fields) <= 19 or fields[19] == start


def close_stale_runs(echo=print) -> list[str]:
    """Mark KILLED every run left RUNNING by a process of this host that no longer exists (a job
    killed with SIGKILL, or by the out-of-memory killer, cannot end its own runs). Returns their names."""
    client, host, closed = MlflowClient(), socket.gethostname(), []
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return closed
    for run in client.search_runs(experiments, "attributes.status = 'RUNNING'", max_results=5000):
        tags = run.data.tags
        if tags.get("host") == host and not _alive(tags):
            client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run.info.run_name)
    if closed:
        echo(f"marked KILLED {len(closed)} run(s) whose process had died without ending them: "
             + ", ".join(sorted(closed)))
    return closed


def house_tags(dataset: str, data_sha256: str | None = None, **extra) -> dict:
    """The tags every run carries: dataset, data_sha256, git_commit, where it runs, and the rest."""
    tags = {"dataset": dataset, "git_commit": git_commit(), **process_tags(), **extra}
    if data_sha256:
        tags["data_sha256"] = data_sha256
    return {k: str(v) for k, v in tags.items() if v is not None}


@contextmanager
def run(name: str, parent_run_id: str | None = None, run_id: str | None = None, tags: dict | None = None):
    """Start (or, with `run_id`, resume) a run, nested under `parent_run_id` when given.

    The run ends FINISHED, or FAILED if the block raises.
    """
    if run_id:
        active = mlflow.start_run(run_id=run_id, tags=tags)
    else:
        active = mlflow.start_run(run_name=name, parent_run_id=parent_run_id, tags=tags)
    try:
        yield active
    except KeyboardInterrupt:
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")


def close_descendants(run_id: str, status: str = "FAILED") -> list[str]:
    """End every run still RUNNING below `run_id` (a notebook kernel that died cannot end its own)."""
    client = MlflowClient()
    experiment_id = client.get_run(run_id).info.experiment_id
    closed, parents = [], [run_id]
    while parents:
        parent = parents.pop()
        for child in client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent}'"):
            parents.append(child.info.run_id)
            if child.info.status == "RUNNING":
                client.set_terminated(child.info.run_id, status)
                closed.append(child.info.run_name)
    return closed


def log_dataset(folds, name: str, run_id: str | None = None) -> None:
    """The folds' sequences as a dataset input of run `run_id` (default: the active run): the UI's
    Dataset column shows the name and the start of the data sha256 as its digest (MLflow keeps 36
    characters at most); the source names the FASTA files."""
    import mlflow.data
    from mlflow.tracking.fluent import _create_dataset_input

    manifest = folds.manifest
    sources = " + ".join(item["path"] for item in manifest.get("inputs", {}).values()) or str(folds.dir)
    with warnings.catch_warnings():  # MLflow's guesses about the source kind and integer columns: noise here
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(folds.sequences[["id", "sequence", "label"]], source=sources,
                                          targets="label", name=name, digest=manifest["data_sha256"][:12])
        MlflowClient().log_inputs(run_id or mlflow.active_run().info.run_id,
                                  datasets=[_create_dataset_input(dataset, "training", None)])


def log_frame(frame, artifact_file: str) -> None:
    """A DataFrame as a CSV artifact."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        frame.to_csv(path, index=False)
        mlflow.log_artifact(str(path), str(Path(artifact_file).parent) if "/" in artifact_file else None)


def _finite(figures: dict) -> dict:
    return {key: value for key, value in figures.items() if not math.isnan(value)}


class CVLogger:
    """Logs a cross-validation to MLflow: a CV run, and under it a child run per fold.

    Use as the callbacks of `rbp.cv.cross_validate` inside `with CVLogger(...) as logger:`, passing
    it `only=logger.pending, kept=logger.kept`. Fold runs get per-epoch `train_loss`, `val_loss`,
    `val_auc` (step = epoch), the test metrics, `predictions.csv` and, with `log_checkpoints`, the
    best model under `checkpoint/`. The CV run gets `mean_*`/`std_*`, `fold_metrics.csv` and the
    pooled `oof_predictions.csv`.

    Under a pipeline run, a CV run of the same name that is not FINISHED (killed, failed, or opened
    for fold jobs) is reopened: its finished folds are kept (`kept`) and only the others are trained
    (`pending`). With `fold`, this is a fold job: it trains that fold alone into the pipeline's CV run
    and leaves the CV run open; the run of the same notebook without `fold` gathers the folds later.
    """

    def __init__(self, family, folds, cfg, params, parent_run_id: str | None = None,
                 log_checkpoints: bool = True, device: str = "cpu", register: bool = True, fold: int | None = None):
        from rbp.resume import cv_run_name

        self.family, self.folds, self.cfg = family, folds, cfg
        if fold is not None and (parent_run_id is None or fold not in folds.fold_numbers):
            raise RbpError(f"fold: {fold} is not a fold of these folds ({', '.join(map(str, folds.fold_numbers))})"
                           if parent_run_id else "fold: a fold job trains into a pipeline run's CV run; give "
                           "parent_run_id (the workflow does)")
        self.fold = fold
        self.log_checkpoints = log_checkpoints or fold is not None  # the gather step rebuilds models from them
        length = folds.length
        self.run_name = cv_run_name(family.name, length)
        self.parent_run_id = parent_run_id
        manifest = folds.manifest
        self.tags = house_tags(
            params.dataset_name, manifest["data_sha256"], model_family=family.name,
            folds_sha256=manifest["folds_sha256"], synthetic=str(manifest.get("synthetic", False)).lower(),
            device=device, length=str(length) if length else "full", selection=cfg.selection, **family.tags())
        self.params = {**{f"{family.name}.{k}": v for k, v in vars(cfg).items()},
                       "k": folds.k, "folds": manifest.get("folds"), "seed": params.seed,
                       "length": length, "short_sequences": params.short_sequences,
                       "dataset": params.dataset_name}
        self.dataset_name = params.dataset_name
        self.run_params = params
        self.register = register
        self.model_uri, self.model_version = None, None
        self.results, self.kept, self.pending = [], [], list(folds.fold_numbers)
        self.cv_run_id = self._fold_run_id = None
        self._context = None

    def open(self) -> str:
        """The pipeline's CV run of this model, created open (RUNNING) for fold jobs if there is none;
        returns its id. Without a process's tags: no later start takes it for a run left by a dead one."""
        from mlflow.entities import Param

        from rbp.resume import find_cv_run

        with FileLock(Path(self.folds.dir) / f".{self.run_name}.lock"):  # fold jobs started side by side
            found = find_cv_run(self.parent_run_id, self.run_name)
            if found is not None and found.info.status != "FINISHED":
                return found.info.run_id
            client = MlflowClient()
            parent = client.get_run(self.parent_run_id)
            tags = {key: value for key, value in self.tags.items() if key not in process_tags()}
            created = client.create_run(parent.info.experiment_id, run_name=self.run_name,
                                        tags={**tags, "mlflow.parentRunId": self.parent_run_id})
            run_id = created.info.run_id
            client.log_batch(run_id, params=[Param(key, str(value)) for key, value in self.params.items()])
            log_dataset(self.folds, self.dataset_name, run_id)
            return run_id

    def __enter__(self):
        from rbp.resume import KEPT_FOLDS, RESUMED, find_cv_run, finished_folds, times_resumed

        found = find_cv_run(self.parent_run_id, self.run_name) if self.parent_run_id else None
        if found is not None and found.info.status == "FINISHED" and self.fold is None:
            found = None  # a finished CV run is a result: running the notebook again makes a new one
        if found is not None and found.data.tags.get("folds_sha256") != self.tags["folds_sha256"]:
            raise RbpError(f"CV run {self.run_name} ({found.info.run_id}) of pipeline run {self.parent_run_id} was "
                           "made on other folds: it cannot be resumed on these")
        if self.fold is not None:  # a fold job: the CV run stays open for the other folds and the gather step
            self.cv_run_id = found.info.run_id if found else self.open()
        else:
            tags = self.tags if found is None else {**process_tags(), RESUMED: str(times_resumed(found) + 1)}
            self._context = run(self.run_name, parent_run_id=self.parent_run_id,
                                run_id=found.info.run_id if found else None, tags=tags)
            self.cv_run_id = self._context.__enter__().info.run_id
            if found is None:
                mlflow.log_params(self.params)
                log_dataset(self.folds, self.dataset_name)
        wanted = self.folds.fold_numbers if self.fold is None else [self.fold]
        if found is not None:  # a fold job loads its own fold only, if it is done
            self.kept = list(finished_folds(found, self.family, wanted).values())
            if self.kept and self.fold is None:
                mlflow.set_tag(KEPT_FOLDS, ",".join(str(r.fold) for r in self.kept))
        done = {result.fold for result in self.kept}
        self.pending = [fold for fold in wanted if fold not in done]
        self.results = list(self.kept)
        return self

    def __exit__(self, *exc):
        broken = "KILLED" if exc[0] and issubclass(exc[0], KeyboardInterrupt) else "FAILED"
        while mlflow.active_run() and mlflow.active_run().info.run_id != self.cv_run_id:
            mlflow.end_run(broken if exc[0] else "FINISHED")  # a fold that broke off, like its parents
        if self._context is None:  # a fold job leaves the CV run open
            return False
        if exc[0] is None and self.results:
            self._log_summary()
        return self._context.__exit__(*exc)

    @property
    def run_id(self) -> str:
        return self.cv_run_id

    def log_figure(self, figure, artifact_file: str) -> None:
        """A figure of the whole CV on the CV run; a fold job's goes to its fold run."""
        target = self.cv_run_id if self.fold is None else self._fold_run_id
        if target:
            MlflowClient().log_figure(target, figure, artifact_file)

    def fold_started(self, fold: int) -> None:
        active = mlflow.start_run(run_name=f"fold-{fold}", parent_run_id=self.cv_run_id, nested=True,
                                  tags={**self.tags, "fold": str(fold)})
        self._fold_run_id = active.info.run_id
        mlflow.log_params(self.params)

    def epoch_ended(self, fold: int, log) -> None:
        figures = {"train_loss": log.train_loss, "val_loss": log.val_loss, "val_auc": log.val_auc,
                   "lr": log.lr, "epoch_seconds": log.seconds}
        mlflow.log_metrics(_finite(figures), step=log.epoch)  # no validation figures without a validation split

    def fold_ended(self, result) -> None:
        mlflow.log_metrics(_finite({**result.metrics, "best_epoch": result.best_epoch,
                                    "best_val_auc": result.training.best_val_auc, "fold_seconds": result.seconds,
                                    **{f"selected_{k}": v for k, v in result.training.selected.items()}}))
        if result.warning:
            mlflow.set_tags({"diverged": "true", NOTE: result.warning})
        log_frame(result.predictions, "predictions.csv")
        if result.val_predictions is not None:
            log_frame(result.val_predictions, "val_predictions.csv")
        if self.log_checkpoints:
            with tempfile.TemporaryDirectory() as tmp:
                self.family.save(result.model, tmp)
                mlflow.log_artifacts(tmp, "checkpoint")
        mlflow.end_run("FINISHED")
        self.results.append(result)
        self.results.sort(key=lambda r: r.fold)

    def _log_summary(self) -> None:
        from rbp.cv import fold_table, pooled_predictions, summary

        figures = summary(self.results)
        mlflow.log_metrics(_finite(figures) if self.cfg.selection == "final" else figures)
        log_frame(fold_table(self.results), "fold_metrics.csv")
        log_frame(pooled_predictions(self.results), "oof_predictions.csv")
        self._log_model(figures)

    def _log_model(self, figures: dict) -> None:
        """The folds' models as one deployable MLflow model, registered as `<dataset>-<family>`."""
        from rbp import serving
        from rbp.predictor import from_cross_validation

        info = {"dataset": self.dataset_name, "synthetic": self.tags["synthetic"] == "true",
                "init": self.family.tags().get("init", ""), "cv_run_id": self.run_id,
                "pipeline_run_id": self.parent_run_id, "data_sha256": self.tags.get("data_sha256"),
                "cv": {k: v for k, v in figures.items() if k.startswith(("mean_", "std_"))}}
        predictor = from_cross_validation(self.family, self.run_params, self.folds, self.results, info)
        self.model_uri, self.model_version = serving.log_model(predictor, self.dataset_name, self.register)
        mlflow.log_metric("decision_threshold", predictor.threshold)
        tags = {"model_uri": self.model_uri}
        if self.model_version is not None:
            tags["registered_model"] = f"{serving.registered_name(self.dataset_name, self.family.name)}/" \
                                       f"{self.model_version}"
        mlflow.set_tags(tags)


def log_preprocess(params, manifest: dict, folds_dir: str | Path, figures: dict, parent_run_id: str | None,
                   run_name: str, ceiling_auc: float | None = None) -> str:
    """The `preprocess` run (under the pipeline run when there is one): data params, counts, the
    manifest, the fold table and the figures. A synthetic set's ceiling (the ROC AUC of its planted
    truth) goes to the pipeline run too, where the comparison reads it. Returns its run id."""
    from rbp.params import DATA_KEYS
    from rbp.train import resolve_device

    tags = house_tags(params.dataset_name, manifest["data_sha256"], model_family="data",
                      synthetic=str(params.synthetic).lower(), folds_sha256=manifest["folds_sha256"],
                      device=str(resolve_device(params.device)))
    sizes = manifest["fold_sizes"]
    with run("preprocess" if parent_run_id else run_name, parent_run_id=parent_run_id, tags=tags) as active:
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
                MlflowClient().log_metric(parent_run_id, "ceiling_auc", ceiling_auc)
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
    import json

    import numpy as np
    import pandas as pd
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    motifs = [{"name": m.name, "consensus": m.consensus, "seqlets": m.seqlets, "sequences": m.sequences,
               "share": m.share, "ppm_ACGU": np.round(m.ppm, 4).tolist(), "cwm_ACGU": np.round(m.cwm, 5).tolist(),
               "seqlets_hold": m.pattern_consensus, "pattern_ppm_ACGU": np.round(m.sequence_ppm, 4).tolist(),
               "starts": m.starts, "reverse": m.reverse} for m in interpretation.motifs]
    client.log_text(run_id, json.dumps({"model": interpretation.label, "method": interpretation.method,
                                        "motifs": motifs}, indent=1) + "\n", "interpret/motifs.json")
    client.log_text(run_id, interpretation.matches.to_csv(index=False), "interpret/known_motif_matches.csv")
    scores = pd.DataFrame(np.round(interpretation.scores, 5), columns=[f"p{i}" for i in
                                                                        range(interpretation.scores.shape[1])])
    client.log_text(run_id, pd.concat([interpretation.table, scores], axis=1).to_csv(index=False),
                    "interpret/attributions.csv")
    for name, figure in figures.items():
        client.log_figure(run_id, figure, f"interpret/{name}.png")
    summary = interpretation.summary()
    metrics = {"interpret_motifs": summary["motifs"], "interpret_top_motif_share": summary["top_motif_share"],
               "interpret_best_similarity": summary["best_similarity"]}
    for key, value in metrics.items():
        if value == value:  # not NaN
            client.log_metric(run_id, key, float(value))
