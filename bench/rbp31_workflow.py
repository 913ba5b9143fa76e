"""The whole RBP-31 benchmark (or any collection of labelled sets) as one workflow run, timed per job.

Starts `rbp server` over a store in --out (kept: run the same command again to resume what a stop left),
runs `snakemake --cores N` on workflow/rbp31.yaml's collection (every subfolder of --dir holding
train.fa.gz and test.fa.gz, params/rbp31.yaml), and sums Snakemake's benchmark files (one per job: its
wall time, peak memory) into Markdown tables: the whole run, each kind of job, each set.

    python bench/rbp31_workflow.py --dir $RBP_RBP31_DIR [--cores 2] [--only 24_PARCLIP_QKI_hg19 ...]
        [--out bench/.data/rbp31-workflow] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import yaml
from common import ROOT, report, start_server


def job_kind(name: str) -> str:
    """A benchmark file's job: open, compare, <model> fold, <model> gather."""
    fold = re.fullmatch(r"([a-z_]+)-fold-\d+", name)
    if fold:
        return f"{fold.group(1)} (training and test scoring)"
    gather = re.fullmatch(r"([a-z_]+)-gather", name)
    if gather:
        return f"{gather.group(1)} (summary run, registered model)"
    return {"open": "open (preprocess)", "compare": "compare and interpret, close"}.get(name, name)


def read_time(path: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one Snakemake benchmark file."""
    with path.open() as handle:
        row = next(csv.DictReader(handle, delimiter="\t"))
    rss = row.get("max_rss", "NA")
    return float(row["s"]), float(rss) if rss not in ("NA", "-") else float("nan")


def read_times(folder: Path) -> dict[str, dict[str, tuple[float, float]]]:
    """set -> job -> (seconds, peak RSS in MiB) from Snakemake's benchmark files under `folder`."""
    times: dict[str, dict[str, tuple[float, float]]] = defaultdict(dict)
    for path in sorted(folder.glob("*/*.tsv")):
        times[path.parent.name][path.stem] = read_time(path)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=os.environ.get("RBP_RBP31_DIR"), help="the folder of data sets")
    parser.add_argument("--params", default="params/rbp31.yaml")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--only", nargs="+", help="these sets of the folder, by name")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / ".data" / "rbp31-workflow")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not args.dir:
        raise SystemExit("--dir (or RBP_RBP31_DIR): the folder of data sets")
    out = args.out.resolve()
    (out / "store").mkdir(parents=True, exist_ok=True)
    collection = {"dir": args.dir, "params": args.params, "set": {"labelled": "train.fa.gz", "test_set": "test.fa.gz"}}
    if args.only:
        collection["only"] = args.only
    config = {"collection": collection, "threads": 1, "out": str(out / "targets")}
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    # stopped with a signal (kill, a scheduler's end of time): close the server too; the next call resumes
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    server, uri = start_server(out / "store")
    try:
        start = time.perf_counter()
        with (out / "snakemake.log").open("a") as log:
            done = subprocess.run(
                [sys.executable, "-m", "snakemake", "--cores", str(args.cores), "--keep-going",
                 "--configfile", str(out / "config.yaml")], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "MLFLOW_TRACKING_URI": uri})
        wall = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(60)
    times = read_times(out / "targets" / "benchmarks")
    sets = sorted(times)
    kinds: dict[str, list[float]] = defaultdict(list)
    for name in sets:
        for job, (seconds, _) in times[name].items():
            kinds[job_kind(job)].append(seconds)
    job_seconds = sum(sum(values) for values in kinds.values())
    board = out / "targets" / "benchmarks" / "leaderboard.tsv"
    leaderboard = read_time(board)[0] if board.is_file() else 0.0
    print(f"snakemake exit {done.returncode}; wall time of this call {wall:.0f} s; the jobs' own time "
          f"{job_seconds + leaderboard:.0f} s on {args.cores} cores, of it the leaderboard {leaderboard:.0f} s\n")
    report(f"RBP-31 workflow per kind of job, {len(sets)} sets, --cores {args.cores}, one thread per job",
           {"kind": "job", "jobs": "jobs", "total": "total (s)", "median": "median per set (s)",
            "max": "longest (s)"},
           [{"kind": kind, "jobs": len(values), "total": f"{sum(values):.0f}",
             "median": f"{statistics.median(values):.0f}", "max": f"{max(values):.0f}"}
            for kind, values in sorted(kinds.items(), key=lambda item: -sum(item[1]))], args.json)
    print()
    columns = sorted({job for name in sets for job in times[name]})
    rows = [{"set": name, **{job: f"{times[name][job][0]:.0f}" if job in times[name] else "" for job in columns},
             "sum": f"{sum(seconds for seconds, _ in times[name].values()):.0f}",
             "rss": f"{max(rss for _, rss in times[name].values()):.0f}"} for name in sets]
    report("Per set: each job's wall time (s), their sum, and the largest job's peak memory (MiB)",
           {"set": "set", **{job: job for job in columns}, "sum": "sum (s)", "rss": "peak RSS (MiB)"}, rows)
    if done.returncode:
        raise SystemExit(f"snakemake failed: see {out / 'snakemake.log'}")


if __name__ == "__main__":
    main()
