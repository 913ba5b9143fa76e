"""Logging a cross-validation as it runs: a CV run, and under it a child run per fold.

A fold job (the workflow's, `fold: N`) trains one fold into the pipeline's CV run and leaves it open;
the same notebook without a fold gathers the folds, keeping those that finished (`rbp.tracking.resume`).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import mlflow
from filelock import FileLock
from mlflow.entities import Param

from rbp.errors import RbpError
from rbp.tracking import flavour, resume
from rbp.tracking.lifecycle import active_run, house_tags, process_tags, resumed_tags
from rbp.tracking.stages import log_dataset, log_frame
from rbp.tracking.store import NOTE, client


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
        self.family, self.folds, self.cfg = family, folds, cfg
        if fold is not None and (parent_run_id is None or fold not in folds.fold_numbers):
            raise RbpError(f"fold: {fold} is not a fold of these folds ({', '.join(map(str, folds.fold_numbers))})"
                           if parent_run_id else "fold: a fold job trains into a pipeline run's CV run; give "
                           "parent_run_id (the workflow does)")
        self.fold = fold
        self.log_checkpoints = log_checkpoints or fold is not None  # the gather step rebuilds models from them
        length = folds.length
        self.run_name = resume.cv_run_name(family.name, length)
        self.parent_run_id = parent_run_id
        manifest = folds.manifest
        self.tags = house_tags(
            params.dataset_name, manifest["data_sha256"], model_family=family.name,
            folds_sha256=manifest["folds_sha256"], synthetic=str(manifest.get("synthetic", False)).lower(),
            device=device, length=str(length) if length else "full", selection=cfg.selection,
            protocol=manifest.get("protocol") or ("split" if manifest.get("folds") == 0 else "cv"),
            **({"test_sha256": manifest["test_sha256"]} if manifest.get("test_sha256") else {}), **family.tags())
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
        with FileLock(Path(self.folds.dir) / f".{self.run_name}.lock"):  # fold jobs started side by side
            found = resume.find_cv_run(self.parent_run_id, self.run_name)
            if found is not None and found.info.status != "FINISHED":
                return found.info.run_id
            store = client()
            parent = store.get_run(self.parent_run_id)
            tags = {key: value for key, value in self.tags.items() if key not in process_tags()}
            created = store.create_run(parent.info.experiment_id, run_name=self.run_name,
                                        tags={**tags, "mlflow.parentRunId": self.parent_run_id})
            run_id = created.info.run_id
            store.log_batch(run_id, params=[Param(key, str(value)) for key, value in self.params.items()])
            log_dataset(self.folds, self.dataset_name, run_id)
            return run_id

    def __enter__(self):
        found = resume.find_cv_run(self.parent_run_id, self.run_name) if self.parent_run_id else None
        if found is not None and found.info.status == "FINISHED" and self.fold is None:
            found = None  # a finished CV run is a result: running the notebook again makes a new one
        if found is not None and found.data.tags.get("folds_sha256") != self.tags["folds_sha256"]:
            raise RbpError(f"CV run {self.run_name} ({found.info.run_id}) of pipeline run {self.parent_run_id} was "
                           "made on other folds: it cannot be resumed on these")
        if self.fold is not None:  # a fold job: the CV run stays open for the other folds and the gather step
            self.cv_run_id = found.info.run_id if found else self.open()
        else:
            tags = self.tags if found is None else resumed_tags(found)
            self._context = active_run(self.run_name, parent_run_id=self.parent_run_id,
                                run_id=found.info.run_id if found else None, tags=tags)
            self.cv_run_id = self._context.__enter__().info.run_id
            if found is None:
                mlflow.log_params(self.params)
                log_dataset(self.folds, self.dataset_name)
        wanted = self.folds.fold_numbers if self.fold is None else [self.fold]
        if found is not None:  # a fold job loads its own fold only, if it is done
            self.kept = list(resume.finished_folds(found, self.family, wanted).values())
            if self.kept and self.fold is None:
                mlflow.set_tag(resume.KEPT_FOLDS, ",".join(str(r.fold) for r in self.kept))
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
            client().log_figure(target, figure, artifact_file)

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
                                    "decision_threshold": result.threshold,
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
        if self.tags["protocol"] == "fixed_test":  # one model scored once: its test figures as they are
            mlflow.log_metrics({key: value for key, value in self.results[0].metrics.items()
                                if math.isfinite(value)})
        log_frame(fold_table(self.results), "fold_metrics.csv")
        pooled = pooled_predictions(self.results)
        log_frame(pooled, "oof_predictions.csv")
        mlflow.log_metric("test_chance_auprc", float(pooled.drop_duplicates("id").label.mean()))  # a guess's AUPRC
        self._log_model(figures)

    def _log_model(self, figures: dict) -> None:
        """The folds' models as one deployable MLflow model, registered as `<dataset>-<family>`."""
        from rbp.fold_ensemble import from_cross_validation

        info = {"dataset": self.dataset_name, "synthetic": self.tags["synthetic"] == "true",
                "init": self.family.tags().get("init", ""), "cv_run_id": self.run_id,
                "pipeline_run_id": self.parent_run_id, "data_sha256": self.tags.get("data_sha256"),
                "cv": {k: v for k, v in figures.items() if k.startswith(("mean_", "std_"))}}
        predictor = from_cross_validation(self.family, self.run_params, self.folds, self.results, info)
        self.model_uri, self.model_version = flavour.log_model(predictor, self.dataset_name, self.register)
        mlflow.log_metric("decision_threshold", predictor.threshold)
        tags = {"model_uri": self.model_uri}
        if self.model_version is not None:
            tags["registered_model"] = f"{flavour.registered_name(self.dataset_name, self.family.name)}/" \
                                       f"{self.model_version}"
        mlflow.set_tags(tags)


