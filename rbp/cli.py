"""`rbp` on the command line: `rbp run` drives the pipeline, `rbp predict` applies a trained model,
`rbp ui` opens the MLflow UI."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from rbp.errors import RbpError


def _run(args) -> int:
    from rbp.pipeline import run_pipeline
    from rbp.tracking import tracking_uri

    result = run_pipeline(args.params, args.set)
    print(f"finished: {result.run_name}\n  outputs: {result.run_dir}\n  tracking: {tracking_uri()}"
          f"\n  browse: make ui, then http://127.0.0.1:5000/#/experiments/{result.experiment_id}/runs?{UI_VIEW}")
    return 0


def _predict(args) -> int:
    from rbp.predict import predict

    result = predict(args.model, args.fasta, args.out, stride=args.stride, threshold=args.threshold,
                     motif=args.motif, k=args.k, figures=args.figures, device=args.device, explain=args.explain)
    print(result)
    return 0


def _ui(args) -> int:
    from rbp.tracking import artifact_root, tracking_uri

    uri = tracking_uri()
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


def _runs(args) -> int:
    from rbp.tracking import close_stale_runs, tracking_uri

    if not args.clean_stale:
        print("nothing asked: give --clean-stale", file=sys.stderr)
        return 2
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    if not close_stale_runs():
        print(f"no run left RUNNING by a dead process of this host in {tracking_uri()}")
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
    parser = argparse.ArgumentParser(prog="rbp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the pipeline of a params file")
    run.add_argument("--params", default="params/default.yaml",
                     help="params YAML (default: params/default.yaml)")
    run.add_argument("-p", "--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override one parameter, e.g. -p data_dir=data/pum2 -p lstm.lr=1e-3")
    run.set_defaults(func=_run)
    predict = sub.add_parser(
        "predict", help="score sequences and scan transcripts with a trained model",
        description="Score each sequence of a FASTA file; sequences longer than the model's window are scanned "
                    "(per-window scores, a per-nucleotide profile, called sites as BED).")
    predict.add_argument("--model", required=True,
                         help="models:/<name>/<version>, models:/<name>@<alias>, runs:/<cv run id>/model, a "
                              "registered model name (its latest version), a data set name (its latest "
                              "registered model) or a local model folder")
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
    predict.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    predict.set_defaults(func=_predict)
    runs = sub.add_parser("runs", help="look after the runs in the project's store")
    runs.add_argument("--clean-stale", action="store_true",
                      help="mark KILLED the runs left RUNNING by processes of this host that died")
    runs.set_defaults(func=_runs)
    ui = sub.add_parser("ui", help="the MLflow UI over the project's store")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(func=_ui)
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
