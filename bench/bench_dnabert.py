"""Training throughput of DNABERT-3 (scratch weights, same cost as pre-trained ones).

Sequences per second of a training step (forward, backward, AdamW step) at batch 32 x 81 tokens,
and the achieved TFLOP/s (6 x parameters x tokens per step / seconds). On CUDA, fp32 with eager
attention and bf16 autocast with PyTorch's SDPA attention are measured side by side; on the CPU,
fp32 with eager and with SDPA attention. Needs only the core of rbp.

    python bench/bench_dnabert.py [--size base small] [--steps 20] [--json out.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from common import report, time_steps

from rbp.dnabert import DNABERTParams, encode, scratch_model
from rbp.optim import make_optimizer
from rbp.train import loss_of, seed_everything

BATCH, LENGTH = 32, 81


def batch_of(device, batch: int = BATCH):
    """`batch` random 81-nt sequences as DNABERT-3 inputs on `device`, and random labels."""
    rng = np.random.default_rng(0)
    seqs = ["".join(row) for row in rng.choice(list("ACGT"), size=(batch, LENGTH))]
    inputs = {k: v.to(device) for k, v in encode(seqs, 3, 100).items()}
    return inputs, torch.randint(0, 2, (batch,), device=device)


def measure(size: str, device: torch.device, precision: str, attention: str, steps: int) -> dict:
    seed_everything(0)
    model = scratch_model(3, size, attn_implementation=attention).to(device).train()
    optimizer = make_optimizer(model, DNABERTParams())
    inputs, labels = batch_of(device)
    tokens = int(inputs["attention_mask"].sum())
    n_params = sum(p.numel() for p in model.parameters())

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = model(**inputs).logits
        loss = loss_of(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    seconds = time_steps(step, device, steps)
    return {"size": size, "device": str(device), "precision": precision, "attention": attention,
            "parameters": n_params, "step_ms": round(1000 * seconds, 1),
            "train_seq_per_s": round(BATCH / seconds, 1),
            "tflops": round(6 * n_params * tokens / seconds / 1e12, 3),
            "epoch_of_4464_s": round(4464 / BATCH * seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", nargs="+", default=["small", "base"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if torch.cuda.is_available():
        device, variants = torch.device("cuda"), [("fp32", "eager"), ("bf16", "sdpa")]
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 in the side-by-side
    else:
        device, variants = torch.device("cpu"), [("fp32", "eager"), ("fp32", "sdpa")]
    rows = [measure(size, device, p, a, args.steps) for size in args.size for p, a in variants]
    report(f"DNABERT-3 training throughput, batch {BATCH} x {LENGTH} nt",
           {"size": "size", "parameters": "parameters", "precision": "precision", "attention": "attention",
            "step_ms": "step (ms)", "train_seq_per_s": "seq/s", "tflops": "TFLOP/s",
            "epoch_of_4464_s": "epoch of 4464 (s)"}, rows, args.json)


if __name__ == "__main__":
    main()
