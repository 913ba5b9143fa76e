"""Training throughput of each CPU family: an epoch on `--n` sequences of `--length` nt, and what bounds it.

For every family of `params/default.yaml` (DNABERT at its CPU size, from scratch): the time to
encode (tokenise) the sequences once, one training epoch through the loop (`rbp.train`: batches drawn
in a seeded order, optimiser, schedule), the same number of steps on batches prepared beforehand (the
model's forward, backward and optimiser step alone), and the forward pass alone (no gradients). The
loop's own cost is the epoch minus the prepared steps; the model's is the rest. The k-mer LR is fitted,
not trained: its row is the k-mer counting and one fit per strength of its grid.

An epoch is timed over `--steps` batches and scaled to the whole set (the rate is steady after a
few warm-up steps). Needs only the core of rbp. Prints a Markdown table; --json writes it.

    python bench/bench_training.py [--n 30000] [--length 101] [--steps 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from common import report

from rbp.families import make_family
from rbp.params import load_params
from rbp.train import _epoch, _setup, loss_of, predict, seed_everything

ROOT = Path(__file__).resolve().parent.parent


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def neural(name: str, params, sequences: list[str], labels: torch.Tensor, steps: int) -> dict:
    family = make_family(name, params)
    cfg = getattr(params, name)
    encode_s = _timed(lambda: family.encode(sequences))
    inputs = family.encode(sequences)
    seed_everything(0)
    model = family.build()
    n_batches = math.ceil(len(sequences) / cfg.batch_size)
    subset = steps * cfg.batch_size  # the loop over `steps` batches
    part = {key: value[:subset] for key, value in inputs.items()}
    state = _setup(model, cfg, subset, torch.device("cpu"), 0)
    _epoch(model, {k: v[:3 * cfg.batch_size] for k, v in part.items()}, labels[:3 * cfg.batch_size], cfg,
           torch.device("cpu"), state, False, "{}")  # warm-up
    loop_s = _timed(lambda: _epoch(model, part, labels[:subset], cfg, torch.device("cpu"), state, False, "{}"))
    batches = [({k: v[i * cfg.batch_size:(i + 1) * cfg.batch_size].clone() for k, v in part.items()},
                labels[i * cfg.batch_size:(i + 1) * cfg.batch_size].clone()) for i in range(steps)]

    def prepared():
        model.train()
        for batch, target in batches:
            out = model(**batch)
            loss = loss_of(out.logits if hasattr(out, "logits") else out, target)
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()

    model_s = _timed(prepared)
    with torch.inference_mode():
        forward_s = _timed(lambda: predict(model, part, cfg.eval_batch_size, torch.device("cpu")))
    scale = n_batches / steps
    return {"family": name, "batch": cfg.batch_size, "encode_s": round(encode_s, 2),
            "epoch_s": round(loop_s * scale, 1), "model_s": round(model_s * scale, 1),
            "loop_share": f"{max(loop_s - model_s, 0) / loop_s:.0%}",
            "train_seq_per_s": round(subset / loop_s), "eval_seq_per_s": round(subset / forward_s)}


def kmer_lr(params, sequences: list[str], labels: torch.Tensor) -> dict:
    family = make_family("kmer_lr", params)
    encode_s = _timed(lambda: family.encode(sequences))
    inputs = family.encode(sequences)
    cut = int(0.9 * len(sequences))
    train = {k: v[:cut] for k, v in inputs.items()}
    dev = {k: v[cut:] for k, v in inputs.items()}
    fit_s = _timed(lambda: family.fit(1, train, labels[:cut], dev, labels[cut:], torch.device("cpu"), 0))
    return {"family": "kmer_lr", "batch": "-", "encode_s": round(encode_s, 2), "epoch_s": round(fit_s, 1),
            "model_s": "-", "loop_share": "-", "train_seq_per_s": round(cut / fit_s), "eval_seq_per_s": "-"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30_000)
    parser.add_argument("--length", type=int, default=101)
    parser.add_argument("--steps", type=int, default=60, help="training batches timed per family")
    parser.add_argument("--families", nargs="+", default=["cnn", "lstm", "dnabert", "kmer_lr"])
    parser.add_argument("--params", default="default")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    params = load_params(ROOT / "params" / f"{args.params}.yaml", ["dnabert.size=small"])
    rng = np.random.default_rng(0)
    sequences = ["".join(s) for s in rng.choice(list("ACGT"), (args.n, args.length))]
    labels = torch.from_numpy(rng.integers(0, 2, args.n))
    rows = [kmer_lr(params, sequences, labels) if name == "kmer_lr" else
            neural(name, params, sequences, labels, args.steps) for name in args.families]
    report(f"Training throughput on {args.n:,} random {args.length}-nt sequences (params/{args.params}.yaml; "
           "DNABERT small, from scratch; epochs scaled from the timed batches)",
           {"family": "family", "batch": "batch", "encode_s": "encode all (s)", "epoch_s": "epoch (s)",
            "model_s": "of it: the model's steps (s)", "loop_share": "the loop's share",
            "train_seq_per_s": "training seq/s", "eval_seq_per_s": "evaluation seq/s"}, rows, args.json)


if __name__ == "__main__":
    main()
