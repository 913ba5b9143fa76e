"""MLflow's one door: every MLflow call of rbp is in this package, and nowhere else.

- `store`: where runs are kept (the project's sqlite store or a server), one experiment per data set;
- `lifecycle`: house tags, runs started and ended, stale runs, opening a pipeline run;
- `cv_logger`: a cross-validation logged as it runs (a CV run, a child run per fold, the model);
- `stages`: what each stage leaves (preprocess, comparison, sweep, interpretation, predict, leaderboard);
- `reading`: runs read back as plain `rbp.records` (CV runs, fold metrics, predictions, histories);
- `flavour` and `registry`: the fold ensemble as a pyfunc model, registered, resolved and loaded;
- `resume`: what a killed run already finished (steps, folds).

The core (data, models, training, metrics) and the stages (compare, interpret, predict, leaderboard,
plots) never import MLflow; notebooks and the pipeline driver log through the names below.
"""

from rbp.tracking.cv_logger import CVLogger
from rbp.tracking.lifecycle import (
    PipelineRun,
    active_run,
    close_descendants,
    close_stale_runs,
    house_tags,
    mark_step_done,
    open_pipeline_run,
    process_tags,
    reopen_pipeline_run,
    resumed_tags,
)
from rbp.tracking.reading import (
    chosen_motifs,
    cv_run_figures,
    find_cv_runs,
    find_pipeline_run,
    find_pipeline_runs,
    find_run,
    latest_pipeline_run,
    leaderboard_rows,
    load_results,
    run_metrics,
)
from rbp.tracking.registry import (
    dataset_models,
    ensemble_members,
    expand_models,
    leaderboard_models,
    load_model,
    pipeline_models,
)
from rbp.tracking.stages import (
    describe_verdict,
    log_comparison,
    log_dataset,
    log_frame,
    log_interpretation,
    log_interpretation_summary,
    log_leaderboard,
    log_notebook,
    log_predict_run,
    log_preprocess,
    log_report,
    log_sweep,
    log_variants_run,
)
from rbp.tracking.store import (
    NOTE,
    artifact_root,
    client,
    connect,
    open_store,
    project_store,
    tracking_uri,
    use_experiment,
)

__all__ = [
    "chosen_motifs", "NOTE", "CVLogger", "PipelineRun", "active_run", "artifact_root", "client", "close_descendants",
    "close_stale_runs", "connect", "cv_run_figures", "dataset_models", "describe_verdict", "ensemble_members",
    "expand_models", "find_cv_runs", "find_pipeline_run", "find_pipeline_runs", "find_run", "house_tags",
    "latest_pipeline_run", "leaderboard_models", "leaderboard_rows", "load_model", "load_results", "log_comparison",
    "log_dataset", "log_frame", "log_interpretation", "log_interpretation_summary", "log_leaderboard",
    "log_notebook", "log_predict_run", "log_preprocess", "log_report", "log_sweep", "log_variants_run",
    "mark_step_done", "open_pipeline_run", "open_store", "pipeline_models", "process_tags", "project_store",
    "reopen_pipeline_run", "resumed_tags",
    "run_metrics", "tracking_uri", "use_experiment",
]
