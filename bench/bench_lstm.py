"""Throughput of the biLSTM: a training epoch and an evaluation pass, in sequences per second.

Runs on PUM2-shaped input (81 nt, the size of one training part: 4464 sequences) for the default
and the paper params, on the CPU and, when torch sees one, on CUDA. Needs only the core of rbp
(no MLflow, no papermill). Prints a Markdown table and writes JSON next to it with --json.

    python bench/bench_lstm.py [--batches 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from rbp.lstm import LSTMFamily
from rbp.params import load_params
from rbp.train import loss_of, make_optimizer, predict, seed_everything

ROOT = Path(__file__).resolve().parent.parent
N_TRAIN, LENGTH = 4464, 81


def _sequences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(row) for row in rng.choice(list("ACGT"), size=(n, LENGTH))]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(params_name: str, device: torch.device, batches: int) -> dict:
    cfg = load_params(ROOT / "params" / f"{params_name}.yaml").lstm
    family = LSTMFamily(cfg, 3)
    seed_everything(0)
    model = family.build().to(device)
    inputs = {k: v.to(device) for k, v in family.encode(_sequences(N_TRAIN)).items()}
    labels = torch.randint(0, 2, (N_TRAIN,), device=device)
    optimizer = make_optimizer(model, cfg)
    model.train()
    steps = min(batches, N_TRAIN // cfg.batch_size)

    def step(i):
        index = slice(i * cfg.batch_size, (i + 1) * cfg.batch_size)
        logits = model(input_ids=inputs["input_ids"][index])  # full precision, as the loop trains it
        loss = loss_of(logits, labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for i in range(3):  # warm-up
        step(i)
    _sync(device)
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    _sync(device)
    train_rate = steps * cfg.batch_size / (time.perf_counter() - start)

    predict(model, inputs, cfg.eval_batch_size, device)  # warm-up
    _sync(device)
    start = time.perf_counter()
    predict(model, inputs, cfg.eval_batch_size, device)
    _sync(device)
    eval_rate = N_TRAIN / (time.perf_counter() - start)
    return {"params": params_name, "device": str(device), "batch_size": cfg.batch_size,
            "train_seq_per_s": round(train_rate, 1), "eval_seq_per_s": round(eval_rate, 1),
            "epoch_seconds": round(N_TRAIN / train_rate, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="training batches timed per setting")
    parser.add_argument("--params", nargs="+", default=["default", "paper"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    machine = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else
               f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    rows = [measure(name, device, args.batches) for device in devices for name in args.params]
    print(f"biLSTM throughput, {date.today()}, {machine}, torch {torch.__version__}\n")
    print("| params | device | batch | training (seq/s) | evaluation (seq/s) | epoch of 4464 (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['params']} | {r['device']} | {r['batch_size']} | {r['train_seq_per_s']} | "
              f"{r['eval_seq_per_s']} | {r['epoch_seconds']} |")
    if args.json:
        args.json.write_text(json.dumps({"date": str(date.today()), "machine": machine, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
