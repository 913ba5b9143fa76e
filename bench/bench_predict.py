"""Scanning throughput of `rbp predict`: windows and nucleotides per second, per family and stride.

Each family's model is an untrained ensemble of `--folds` fold models (weights do not change the
speed) with the sizes of a params file, scanning a random transcript of `--length` nt with windows of
81 nt. The scan path is `rbp.apply.scan_sequence`, exactly what `rbp predict` runs per sequence.
A reference row times the CV loop's evaluation path (`rbp.train.predict` at batch 256 over encoded
81-nt sequences, one model). Needs only the core of rbp. Prints a Markdown table; --json writes it.

    python bench/bench_predict.py [--length 20000] [--folds 5] [--strides 1 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from common import report, sync

from rbp.apply import scan_sequence
from rbp.families import make_family
from rbp.fold_ensemble import FoldEnsemble
from rbp.params import load_params
from rbp.train import predict, resolve_device, seed_everything

ROOT = Path(__file__).resolve().parent.parent
WINDOW = 81
RECIPES = [("lstm", "default"), ("lstm", "paper"), ("dnabert", "default")]


def _transcript(length: int, seed: int = 0) -> str:
    return "".join(np.random.default_rng(seed).choice(list("ACGT"), size=length))


def _predictor(family_name: str, params_name: str, folds: int, device: torch.device) -> FoldEnsemble:
    # the family's part of a recipe; DNABERT at the CPU size (scratch weights: speed is the same)
    overrides = ["dnabert.size=small"] if family_name == "dnabert" else ["notebooks=[01_preprocess, 03_lstm_cv]"]
    params = load_params(ROOT / "params" / f"{params_name}.yaml", overrides)
    family = make_family(family_name, params)
    seed_everything(0)
    models = [family.build().eval() for _ in range(folds)]
    return FoldEnsemble(family, params, models, list(range(1, folds + 1)), WINDOW, 0.5).to(device)


def scan_rate(predictor: FoldEnsemble, sequence: str, stride: int, device: torch.device) -> dict:
    scan_sequence(predictor, "warm-up", sequence[:min(2000, len(sequence) // 2)], stride, 0.5)
    sync(device)
    start = time.perf_counter()
    scan = scan_sequence(predictor, "bench", sequence, stride, 0.5)
    sync(device)
    seconds = time.perf_counter() - start
    return {"windows": len(scan.starts), "seconds": round(seconds, 2),
            "windows_per_s": round(len(scan.starts) / seconds), "nt_per_s": round(len(sequence) / seconds)}


def evaluation_rate(predictor: FoldEnsemble, n: int, device: torch.device) -> float:
    """The CV loop's evaluation path for one model: encoded windows, batch 256."""
    sequence = _transcript(n + WINDOW)
    inputs = predictor.family.encode([sequence[i:i + WINDOW] for i in range(n)])
    model = predictor.models[0]
    predict(model, {k: v[:256] for k, v in inputs.items()}, 256, device)
    sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        predict(model, inputs, 256, device)
    sync(device)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=20_000)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--strides", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    device = resolve_device(args.device)
    sequence = _transcript(args.length)
    rows = []
    for family_name, params_name in RECIPES:
        predictor = _predictor(family_name, params_name, args.folds, device)
        single = evaluation_rate(predictor, 4096, device)
        rows.append({"model": f"{family_name} ({params_name}), 1 model", "path": "CV evaluation, batch 256",
                     "stride": "-", "windows": 4096, "seconds": round(4096 / single, 2),
                     "windows_per_s": round(single), "nt_per_s": "-"})
        for stride in args.strides:
            rate = scan_rate(predictor, sequence, stride, device)
            rows.append({"model": f"{family_name} ({params_name}), {args.folds} folds", "path": "rbp predict scan",
                         "stride": stride, **rate})
    report(f"Scanning a {args.length}-nt transcript with {WINDOW}-nt windows ({device})",
           {"model": "model", "path": "path", "stride": "stride", "windows": "windows", "seconds": "s",
            "windows_per_s": "windows/s", "nt_per_s": "nt/s"}, rows, args.json)


if __name__ == "__main__":
    main()
