"""The GPU check: everything a lent GPU should measure, in one short call, with the core of rbp only.

1. DNABERT-3 at base size (86 M parameters): a training step in fp32 with eager attention against
   bf16 autocast with SDPA attention, step time and TFLOP/s (`bench_dnabert.measure`);
2. the paper recipe's DNABERT at base size **from scratch** on the data set given with `--data`
   (PUM2): 5 folds made by the core, each fold's epoch chosen on validation, time per fold and test
   metrics (mean ± std over folds);
3. the paper biLSTM on CUDA: a training epoch of 4464 sequences (`bench_lstm.measure`);
4. `rbp predict`'s scan of a 20-kb transcript at stride 1 by 5-fold ensembles (`bench_predict`).

No MLflow, no papermill, no network. Writes `gpu_check.json` and `gpu_check.md` into `--out`.
`--tiny` runs the same steps at toy sizes (small DNABERT, 2 folds of a small synthetic set, one
epoch; 256 LSTM sequences; a 300-nt transcript, 2-fold ensembles) on whatever device there is: the
test that the check works end to end, in seconds.

    bash bench/gpu_check.sh [--tiny] [--data DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from bench_dnabert import measure as dnabert_step  # noqa: E402
from bench_lstm import measure as lstm_epoch  # noqa: E402
from bench_predict import _predictor, _transcript, scan_rate  # noqa: E402
from common import machine, record_part, timed_parts  # noqa: E402

from rbp.cv import cross_validate, summary  # noqa: E402
from rbp.data import Folds, prepare_folds  # noqa: E402
from rbp.families import make_family  # noqa: E402
from rbp.params import load_params  # noqa: E402
from rbp.train import resolve_device  # noqa: E402

ROOT = HERE.parent
HEADLINE = ("test_auc", "test_acc", "test_auprc", "test_f1_macro", "test_mcc")


def cross_validation(data: Path | None, tiny: bool, device: torch.device, work: Path) -> dict:
    """The paper recipe's DNABERT, from scratch: `params/paper.yaml` with `dnabert.init=scratch`."""
    overrides = ["dnabert.init=scratch", "notebooks=[01_preprocess, 02_dnabert_cv]", "device=" + device.type]
    if tiny:
        from rbp.fasta import write_fasta
        from rbp.synthetic import make_synthetic

        data = work / "tiny-data"
        data.mkdir()
        positives, negatives = make_synthetic(seed=3, n_per_class=60)
        write_fasta(data / "positives.fa", positives, rna=True)
        write_fasta(data / "negatives.fa", negatives, rna=True)
        overrides += ["folds=2", "val_fraction=0.2", "dnabert.size=small", "dnabert.max_epochs=1"]
    overrides.append(f"data_dir={data}")
    params = load_params(ROOT / "params" / "paper.yaml", overrides)
    prepare_folds(params, work / "run")
    folds = Folds(work / "run" / "folds")
    family = make_family("dnabert", params)
    start = time.perf_counter()
    with timed_parts(family, device) as spent:
        results = cross_validate(family, folds, params.dnabert, device, params.seed, progress=False)
    seconds = time.perf_counter() - start
    figures = summary(results)
    out = {"dataset": params.dataset_name, "sequences": len(folds.sequences), "folds": len(results),
           "size": params.dnabert.size, "init": "scratch", "amp": params.dnabert.amp and device.type == "cuda",
           "max_epochs": params.dnabert.max_epochs, "seconds_total": round(seconds, 1),
           "seconds_per_fold": [round(r.seconds, 1) for r in results], "best_epochs": [r.best_epoch for r in results],
           "seconds_by_part": {**{part: round(t, 1) for part, t in spent.items()},
                               "the rest": round(seconds - sum(spent.values()), 1)}}
    out.update({f"{stat}_{key}": round(figures[f"{stat}_{key}"], 4) for key in HEADLINE for stat in ("mean", "std")})
    return out


def markdown(report: dict) -> str:
    """The report as Markdown; a part that failed is named with its error instead of its table."""
    lines = [f"GPU check, {report['date']}, {report['machine']}, torch {report['torch']}, "
             f"transformers {report['transformers']}, Python {report['python']}"
             + (" (**--tiny**: toy sizes, not a measurement)" if report["tiny"] else "")]
    if "dnabert_step" in report:
        lines += ["", "| DNABERT-3 size | precision | attention | step (ms) | seq/s | TFLOP/s |",
                  "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['size']} | {r['precision']} | {r['attention']} | {r['step_ms']} | {r['train_seq_per_s']} | "
                  f"{r['tflops']} |" for r in report["dnabert_step"]]
    if "cross_validation" in report:
        cv = report["cross_validation"]
        lines += ["", f"DNABERT ({cv['init']}, size {cv['size']}) on `{cv['dataset']}`, {cv['folds']} folds, up to "
                  f"{cv['max_epochs']} epochs, bf16 autocast {'on' if cv['amp'] else 'off'}: {cv['seconds_total']} s "
                  f"in all; per fold {', '.join(map(str, cv['seconds_per_fold']))} s; epochs chosen on validation "
                  f"{cv['best_epochs']}. Its seconds by part: "
                  + ", ".join(f"{part} {t}" for part, t in cv["seconds_by_part"].items()) + ".",
                  "", "| metric | mean ± std over folds |", "| --- | --- |"]
        lines += [f"| {key} | {cv[f'mean_{key}']:.4f} ± {cv[f'std_{key}']:.4f} |" for key in HEADLINE]
    if "lstm" in report:
        lstm = report["lstm"]
        lines += ["", f"biLSTM ({lstm['params']} recipe) on {lstm['device']}: training {lstm['train_seq_per_s']} "
                  f"seq/s (an epoch of 4464 in {lstm['epoch_seconds']} s), evaluation {lstm['eval_seq_per_s']} seq/s."]
    if "scan" in report:
        lines += ["", "| scan (rbp predict, stride 1) | transcript (nt) | windows/s | nt/s |",
                  "| --- | --- | --- | --- |"]
        lines += [f"| {r['model']} | {r['length']} | {r['windows_per_s']} | {r['nt_per_s']} |" for r in report["scan"]]
    for name, error in report["failed"].items():
        lines += ["", f"**{name} failed:** `{error}`"]
    lines += ["", f"Wall time of the whole check: {report['seconds']} s."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="toy sizes on any device: checks the check works")
    parser.add_argument("--data", type=Path, help="a folder with positives.fa and negatives.fa (PUM2)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if not args.tiny and not args.data:
        parser.error("--data DIR is needed (the PUM2 folder), unless --tiny")
    if not args.tiny and not torch.cuda.is_available():
        parser.error("torch sees no CUDA device: this check is for a GPU (use --tiny to try it on a CPU)")
    start = time.perf_counter()
    device = resolve_device("auto")
    args.out.mkdir(parents=True, exist_ok=True)
    if device.type == "cuda":
        variants = [("fp32", "eager"), ("bf16", "sdpa")]
    else:
        variants = [("fp32", "eager"), ("fp32", "sdpa")]
    size, steps = ("small", 2) if args.tiny else ("base", 20)
    import transformers

    report = {"date": str(date.today()), "machine": machine(), "torch": torch.__version__,
              "transformers": transformers.__version__, "python": platform.python_version(), "tiny": args.tiny,
              "failed": {}}

    def save(report):
        report["seconds"] = round(time.perf_counter() - start, 1)
        (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=float) + "\n")

    def stage(name, measure):  # each part saved as it finishes; a failing one named, the next still runs
        record_part(report, name, measure, save)

    def dnabert_steps():
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 in the side-by-side
        try:
            return [dnabert_step(size, device, p, a, steps) for p, a in variants]
        finally:
            torch.backends.cuda.matmul.allow_tf32 = True

    def cv():
        with tempfile.TemporaryDirectory() as work:
            return cross_validation(args.data, args.tiny, device, Path(work))

    transcript = _transcript(300 if args.tiny else 20_000)
    folds = 2 if args.tiny else 5
    stage("dnabert_step", dnabert_steps)
    stage("cross_validation", cv)
    stage("lstm", lambda: lstm_epoch("paper", device, 2, n=256) if args.tiny else lstm_epoch("paper", device, 40))
    stage("scan", lambda: [{"model": f"{family} ({recipe}), {folds} folds", "length": len(transcript), "stride": 1,
                            **scan_rate(_predictor(family, recipe, folds, device), transcript, 1, device)}
                           for family, recipe in (("lstm", "default"), ("lstm", "paper"), ("dnabert", "default"))])
    report["mlflow_or_papermill_imported"] = sorted({"mlflow", "papermill"} & set(sys.modules))
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    (args.out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    if report["failed"]:
        sys.exit(f"gpu check: {len(report['failed'])} part(s) failed: {', '.join(report['failed'])}")


if __name__ == "__main__":
    main()
