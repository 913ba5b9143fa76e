"""`rbp` on the command line: `rbp run` drives the pipeline, `rbp predict` applies a trained model,
`rbp variants` scores variant effects, `rbp ui` opens the MLflow UI."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from rbp import allocator
from rbp.errors import RbpError


def _run(args) -> int:
    if args.resume and (args.params or args.set):
        raise RbpError("--resume reruns a pipeline run with the params it was started with: leave out --params "
                       "and -p")
    params_file = args.params or DEFAULT_PARAMS
    if not args.resume:  # a wrong key or value is told at once, before the driver's imports (seconds)
        from rbp.config import resolve
        from rbp.params import load_params

        load_params(resolve(params_file), args.set)
    from rbp.pipeline import resume_pipeline, run_pipeline
    from rbp.tracking import tracking_uri

    result = resume_pipeline(args.resume) if args.resume else run_pipeline(params_file, args.set)
    print(f"finished: {result.run_name}\n  outputs: {result.run_dir}\n  tracking: {tracking_uri()}"
          f"\n  browse: make ui, then http://127.0.0.1:5000/#/experiments/{result.experiment_id}/runs?{UI_VIEW}")
    return 0


DEFAULT_PARAMS = "params/default.yaml"


def _predict(args) -> int:
    from rbp.apply import apply_model, apply_models
    from rbp.tracking import expand_models, load_model

    models = list(dict.fromkeys(expand_models(args.model)))  # a model given twice scores once
    if len(models) > 1:
        if args.explain:
            raise RbpError("--explain: with several models, explain one model at a time")
        result = apply_models(models, args.fasta, args.out, stride=args.stride, threshold=args.threshold,
                              motif=args.motif, k=args.k, figures=args.figures, device=args.device, load=load_model,
                              ambiguous=args.ambiguous)
    else:
        result = apply_model(models[0], args.fasta, args.out, stride=args.stride, threshold=args.threshold,
                             motif=args.motif, k=args.k, figures=args.figures, device=args.device,
                             explain=args.explain, load=load_model, ambiguous=args.ambiguous)
    print(result)
    return 0


def _variants(args) -> int:
    from rbp.tracking import expand_models, load_model
    from rbp.variants import experiment_of, score_variants

    models = expand_models(args.model)  # a model given twice scores once: score_variants keys them by source
    result = score_variants(models, args.fasta, args.variants, args.out, threshold=args.threshold,
                            figures=args.figures, device=args.device, load=load_model)
    print(result)
    if not args.no_log:
        from rbp import tracking

        experiment = experiment_of(result.summary)
        tracking.use_experiment(experiment)
        run_id = tracking.log_variants_run(result, experiment)
        print(f"logged: run {run_id} (variants) in experiment {experiment} of {tracking.tracking_uri()}")
    return 0


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _check_listen(host: str, port: int) -> None:
    """Refuse a port something already listens on (the server would log the error and exit 0), and
    warn that a server bound beyond this machine has no authentication."""
    import socket

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
    except OSError as exc:
        raise RbpError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror or exc}); stop what uses it "
                       "or give another --port") from None
    if host not in LOCAL_HOSTS:
        print(f"warning: --host {host} lets other machines reach this server, and MLflow's server has no "
              "authentication: whoever reaches the port can read, change and delete every run and model. Use "
              "it on a trusted network only, or behind a proxy that authenticates.", file=sys.stderr, flush=True)


def _ui(args) -> int:
    from rbp.tracking import artifact_root, tracking_uri

    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):  # a tracking server serves its own UI
        print(f"MLFLOW_TRACKING_URI is a tracking server, which serves the UI: {uri}/#/experiments?{UI_VIEW}")
        return 0
    _check_listen(args.host, args.port)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
           "--host", args.host, "--port", str(args.port)]
    if artifact_root(uri):
        cmd += ["--default-artifact-root", artifact_root(uri)]
    print(f"MLflow UI on http://{args.host}:{args.port}/#/experiments?{UI_VIEW} over {uri}\n"
          "(it answers about a minute after it starts)", flush=True)
    os.execv(sys.executable, cmd)


# MLflow 3's UI opens in its GenAI view unless told otherwise; the runs of a training pipeline read
# best in its model-training view.
UI_VIEW = "workflowType=machine_learning"


def _server(args) -> int:
    from rbp.tracking import artifact_root, project_store

    store = args.backend_store_uri or project_store()
    artifacts = args.artifacts_destination or artifact_root(store)
    if not artifacts:
        raise RbpError("--artifacts-destination: give where the server keeps artifacts (a folder or an object "
                       "store URI such as s3://bucket/path) for a store that is not the project's sqlite file")
    _check_listen(args.host, args.port)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, "--serve-artifacts",
           "--artifacts-destination", artifacts, "--host", args.host, "--port", str(args.port),
           "--workers", str(args.workers)]
    print(f"MLflow tracking server on http://{args.host}:{args.port} over {store} (artifacts: {artifacts}).\n"
          f"Point jobs at it with:  export MLFLOW_TRACKING_URI=http://{args.host}:{args.port}\n"
          "(it answers about a minute after it starts)", flush=True)
    os.execv(sys.executable, cmd)


def _workflow(args) -> int:
    from rbp import workflow

    if args.action == "open":
        workflow.open_run(args.params, args.set, args.out)
    elif args.action == "step":
        workflow.run_step(args.run, args.notebook, args.out, fold=args.fold, threads=args.threads)
    else:
        workflow.close_run(args.run, args.out)
    return 0


def _leaderboard(args) -> int:
    from rbp.workflow import leaderboard_job

    result = leaderboard_job(args.runs, args.out, args.output_dir)
    print(f"leaderboard run {result['run_name']} ({result['run_id']}): {result['report']}")
    return 0


def _runs(args) -> int:
    from rbp.tracking import close_stale_runs, connect

    if not args.clean_stale:
        print("nothing asked: give --clean-stale", file=sys.stderr)
        return 2
    uri = connect()
    if not close_stale_runs():
        print(f"no run left RUNNING by a dead process of this host in {uri}")
    return 0


def _interrupt(signum, frame):
    """Ctrl-C or `kill`: stop as KeyboardInterrupt. The notebook kernel, in a session of its own, is
    shut down by papermill on the way out; its client's and asyncio's laments about the kernel going
    away are not the user's news, so they are silenced first."""
    import logging

    for name in ("papermill", "asyncio", "traitlets"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    allocator.tune()  # models' passes reuse freed memory, here and in the kernels and jobs started from here
    signal.signal(signal.SIGTERM, _interrupt)  # a `kill` ends the runs as KILLED, like Ctrl-C
    signal.signal(signal.SIGINT, _interrupt)
    try:
        return args.func(args)
    except RbpError as exc:
        print(f"\nrbp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nrbp: interrupted", file=sys.stderr)
        return 130


def parser() -> argparse.ArgumentParser:
    """The command line: one sub-command per task, each with its own options."""
    top = argparse.ArgumentParser(prog="rbp", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    for add in (_add_run, _add_predict, _add_variants, _add_runs, _add_server, _add_workflow, _add_leaderboard,
                _add_ui):
        add(sub)
    return top


def _add_run(sub) -> None:
    run = sub.add_parser("run", help="run the pipeline of a params file")
    run.add_argument("--params", help=f"params YAML (default: {DEFAULT_PARAMS})")
    run.add_argument("-p", "--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override one parameter, e.g. -p data_dir=data/pum2 -p lstm.lr=1e-3")
    run.add_argument("--resume", metavar="RUN",
                     help="reopen a pipeline run (its name or id) that was killed or failed and run only what is "
                          "missing: finished steps and finished folds are kept")
    run.set_defaults(func=_run)


def _add_predict(sub) -> None:
    predict = sub.add_parser(
        "predict", help="score sequences and scan transcripts with a trained model",
        description="Score each sequence of a FASTA file; sequences longer than the model's window are scanned "
                    "(per-window scores, a per-nucleotide profile, called sites as BED).")
    predict.add_argument("--model", required=True, action="append",
                         help="models:/<name>/<version>, models:/<name>@<alias>, runs:/<cv run id>/model, a "
                              "registered model name (its latest version), a data set name (its latest "
                              "registered model), a local model folder, or a leaderboard run (leaderboard-"
                              "YYYYmmdd-HHMMSS: the model chosen in each of its data sets); give --model "
                              "again to score with several models at once (a column and a track per model)")
    predict.add_argument("--fasta", required=True, help="sequences to score (RNA or DNA, may be gzipped)")
    predict.add_argument("--out", help="a new folder for the results (default: outputs/predict-<time>)")
    predict.add_argument("--stride", type=int, default=1, help="nt between scanning windows (default 1)")
    predict.add_argument("--threshold", type=float,
                         help="call at or above this probability (default: the model's, chosen on validation)")
    predict.add_argument("--motif", help="mark this IUPAC motif in the profiles, e.g. UGUAHAUA")
    predict.add_argument("--k", type=int, help="refuse the model unless it was trained on k-mers of this size")
    predict.add_argument("--figures", type=int, default=10,
                         help="profile figures of the best-scoring long sequences (default 10)")
    predict.add_argument("--explain", action="store_true",
                         help="add an attribution track to each profile figure: in-silico mutagenesis of the "
                              "window around each called site's summit")
    predict.add_argument("--ambiguous", choices=["skip", "keep", "error"],
                         help="sequences holding N or another ambiguity code: skip them, keep them (those positions "
                              "unknown) or refuse the file (default: as the model was trained)")
    predict.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    predict.set_defaults(func=_predict)


def _add_variants(sub) -> None:
    variants = sub.add_parser(
        "variants", help="how single-nucleotide variants move binding, for one model or several",
        description="Score each variant against its reference: the best window covering it with either base, "
                    "the change in probability and log-odds, sites gained or lost at the model's threshold, and "
                    "how the change ranks among every single-nucleotide change in the same window (a percentile).")
    variants.add_argument("--model", required=True, action="append",
                          help="a model as `rbp predict --model` takes it; give --model again for several models")
    variants.add_argument("--fasta", required=True,
                          help="the reference sequences: the records the variants name (a VCF's chromosomes)")
    variants.add_argument("--variants", required=True,
                          help="a TSV with the columns sequence_id, position (1-based), ref, alt (name and others "
                               "optional, carried into the results), or a VCF (.vcf, .vcf.gz, .bcf)")
    variants.add_argument("--out", help="a new folder for the results (default: outputs/variants-<time>)")
    variants.add_argument("--threshold", type=float,
                          help="call sites at or above this probability (default: each model's, chosen on validation)")
    variants.add_argument("--figures", type=int, default=5, help="figures of each model's top variants (default 5)")
    variants.add_argument("--no-log", action="store_true", help="do not log a `variants` run in MLflow")
    variants.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    variants.set_defaults(func=_variants)


def _add_runs(sub) -> None:
    runs = sub.add_parser("runs", help="look after the runs in the project's store")
    runs.add_argument("--clean-stale", action="store_true",
                      help="mark KILLED the runs left RUNNING by processes of this host that died")
    runs.set_defaults(func=_runs)


def _add_server(sub) -> None:
    server = sub.add_parser(
        "server", help="an MLflow tracking server over the project's store, for jobs that log side by side",
        description="Starts `mlflow server` over the project's store (mlruns/mlflow.db, artifacts served from "
                    "mlruns/artifacts), bound to 127.0.0.1; jobs log to it with MLFLOW_TRACKING_URI=http://HOST:PORT.")
    server.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: this "
                                                            "machine only)")
    server.add_argument("--port", type=int, default=5000)
    server.add_argument("--workers", type=int, default=4, help="server processes (default 4)")
    server.add_argument("--backend-store-uri", help="another store, e.g. postgresql://... (default: the project's)")
    server.add_argument("--artifacts-destination", help="where artifacts go, e.g. s3://bucket/path (default: "
                                                        "mlruns/artifacts beside the project's store)")
    server.set_defaults(func=_server)


def _add_workflow(sub) -> None:
    workflow = sub.add_parser("workflow", help="the jobs of workflow/Snakefile (see the README: many data sets)")
    actions = workflow.add_subparsers(dest="action", required=True)
    opening = actions.add_parser("open", help="open a data set's pipeline run: folds and a CV run per model")
    opening.add_argument("--params", help=f"params YAML (default: {DEFAULT_PARAMS})")
    opening.add_argument("-p", "--set", action="append", default=[], metavar="KEY=VALUE")
    opening.add_argument("--out", required=True, help="JSON file naming the run (the job's target)")
    step = actions.add_parser("step", help="run one notebook of an open pipeline run (a model: one fold, or "
                                           "without --fold gather its folds)")
    step.add_argument("run", help="the JSON file `rbp workflow open` wrote")
    step.add_argument("--notebook", required=True, help="e.g. 03_lstm_cv or 04_compare")
    step.add_argument("--fold", type=int, help="train this fold only")
    step.add_argument("--threads", type=int, help="CPU threads of this job (OMP_NUM_THREADS of its kernel)")
    step.add_argument("--out", required=True, help="JSON file written when MLflow holds the result")
    closing = actions.add_parser("close", help="end a pipeline run whose steps are finished")
    closing.add_argument("run", help="the JSON file `rbp workflow open` wrote")
    closing.add_argument("--out", required=True)
    workflow.set_defaults(func=_workflow)


def _add_leaderboard(sub) -> None:
    board = sub.add_parser("leaderboard", help="the models of several pipeline runs (one per data set) side by side")
    board.add_argument("runs", nargs="+", help="pipeline runs: names, ids, or the workflow's pipeline.json targets")
    board.add_argument("--out", help="also write the leaderboard run's id and report path to this JSON file")
    board.add_argument("--output-dir", default="outputs", help="where its folder goes (default outputs/)")
    board.set_defaults(func=_leaderboard)


def _add_ui(sub) -> None:
    ui = sub.add_parser("ui", help="the MLflow UI over the project's store")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(func=_ui)


if __name__ == "__main__":
    sys.exit(main())
