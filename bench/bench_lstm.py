"""Throughput of the biLSTM: a training epoch and an evaluation pass, in sequences per second.

Runs on PUM2-shaped input (81 nt, the size of one training part: 4464 sequences) for the default,
the paper and the tuned params, on the CPU and, when torch sees one, on CUDA. Needs only the core of rbp
(no MLflow, no papermill). Prints a Markdown table and writes JSON next to it with --json.

    python bench/bench_lstm.py [--batches 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from common import report, sync

from rbp.kmers import mask_kmers
from rbp.lstm import LSTMFamily
from rbp.optim import make_optimizer
from rbp.params import load_params
from rbp.train import loss_of, predict, seed_everything

ROOT = Path(__file__).resolve().parent.parent
N_TRAIN, LENGTH = 4464, 81


def _sequences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(row) for row in rng.choice(list("ACGT"), size=(n, LENGTH))]


def measure(params_name: str, device: torch.device, batches: int, n: int = N_TRAIN) -> dict:
    """Training and evaluation rates over `n` sequences (an epoch is always given for 4464)."""
    # the LSTM's part of a recipe (a DNABERT part may need a checkpoint it does not use)
    cfg = load_params(ROOT / "params" / f"{params_name}.yaml", ["notebooks=[01_preprocess, 03_lstm_cv]"]).lstm
    family = LSTMFamily(cfg, 3)
    seed_everything(0)
    model = family.build().to(device)
    inputs = {k: v.to(device) for k, v in family.encode(_sequences(n)).items()}
    labels = torch.randint(0, 2, (n,), device=device)
    optimizer = make_optimizer(model, cfg)
    model.train()
    steps = min(batches, n // cfg.batch_size - 3)
    masks = torch.Generator(device=device).manual_seed(0)

    def step(i):
        index = slice(i * cfg.batch_size, (i + 1) * cfg.batch_size)
        ids = inputs["input_ids"][index]
        if cfg.mask_fraction:  # as the loop does it
            ids = mask_kmers(ids, cfg.mask_fraction, masks)
        logits = model(input_ids=ids)  # full precision, as the loop trains it
        loss = loss_of(logits, labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for i in range(3):  # warm-up
        step(i)
    sync(device)
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    sync(device)
    train_rate = steps * cfg.batch_size / (time.perf_counter() - start)

    predict(model, inputs, cfg.eval_batch_size, device)  # warm-up
    sync(device)
    start = time.perf_counter()
    predict(model, inputs, cfg.eval_batch_size, device)
    sync(device)
    eval_rate = n / (time.perf_counter() - start)
    return {"params": params_name, "device": str(device), "batch_size": cfg.batch_size,
            "train_seq_per_s": round(train_rate, 1), "eval_seq_per_s": round(eval_rate, 1),
            "epoch_seconds": round(N_TRAIN / train_rate, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="training batches timed per setting")
    parser.add_argument("--params", nargs="+", default=["default", "paper", "lstm_tuned"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = [measure(name, device, args.batches) for device in devices for name in args.params]
    report("biLSTM throughput", {"params": "params", "device": "device", "batch_size": "batch",
                                 "train_seq_per_s": "training (seq/s)", "eval_seq_per_s": "evaluation (seq/s)",
                                 "epoch_seconds": "epoch of 4464 (s)"}, rows, args.json)


if __name__ == "__main__":
    main()
