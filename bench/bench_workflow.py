"""Throughput of the Snakemake workflow: the same two-data-set workflow at --cores 1 and --cores 2.

Two data sets (the built-in synthetic set at smoke size, and a second synthetic set around another
element, RBFOX's UGCAUGU) x two models (the CNN and the k-mer LR of params/smoke.yaml, 2 folds), with
the compare step and the leaderboard: 17 jobs, each a notebook run by papermill, one thread each. All
jobs log to one `rbp server` over a fresh temporary store; each core count gets data sets of its own
names, so nothing is reused between the two. Prints a Markdown table; --json writes it.

    python bench/bench_workflow.py [--cores 1 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import report, start_server

from rbp.synthetic import write_planted

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "params" / "smoke.yaml"
NOTEBOOKS = ["01_preprocess", "03_cnn_cv", "03_kmer_lr_cv", "04_compare"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_planted(folder / "rbfox", n_per_class=150)
        server, uri = start_server(folder)
        try:
            for cores in args.cores:
                out = folder / f"cores{cores}"
                common = {"notebooks": NOTEBOOKS, "output_dir": str(out / "outputs")}
                config = {"out": str(out / "targets"), "threads": 1, "datasets": {
                    f"smoke-c{cores}": {"params": str(SMOKE), "set": common},
                    f"rbfox-synthetic-c{cores}": {"params": str(SMOKE),
                                                  "set": {**common, "data_dir": str(folder / "rbfox")}}}}
                out.mkdir()
                (out / "config.yaml").write_text(yaml.safe_dump(config))
                start = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), "--configfile",
                                       str(out / "config.yaml")], cwd=ROOT, capture_output=True, text=True,
                                      env={**os.environ, "MLFLOW_TRACKING_URI": uri})
                seconds = time.perf_counter() - start
                if done.returncode:
                    raise SystemExit(done.stderr[-3000:])
                jobs = done.stderr.count("Finished jobid") - 1  # less the final `all`, which runs nothing
                rows.append({"cores": cores, "jobs": jobs, "seconds": f"{seconds:.0f}"})
        finally:
            server.terminate()
            server.wait(60)
    base = float(rows[0]["seconds"])
    for row in rows:
        row["speedup"] = f"{base / float(row['seconds']):.2f}"
    report("Workflow: 2 synthetic data sets x (CNN, k-mer LR), 2 folds, smoke size; one thread per job",
           {"cores": "--cores", "jobs": "jobs", "seconds": "wall time (s)", "speedup": "speed-up"}, rows, args.json)


if __name__ == "__main__":
    main()
