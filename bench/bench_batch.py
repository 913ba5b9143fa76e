"""Batched prediction: sequences per second that `rbp predict` scores, per family, against the floor
the machine sets.

Each family's model is an untrained ensemble (weights do not change the speed) with the sizes of
`params/default.yaml`, scoring `--n` random sequences of `--length` nt (no longer than the window:
one window each). Rows: one fold model and the `--folds`-fold ensemble through the batched path
(`FoldEnsemble.scans`, what `rbp predict` runs), the same one sequence at a time (the path before
batching), and `rbp predict` end to end (`apply_model`: FASTA read, scored, every output written).

The floor: the multiply-adds one sequence costs a fold model (counted from its layers as they are
evaluated), over the machine's measured rate of multiply-adds (a large fp32 matrix product on the same
threads). The LSTM's first layer reads each k-mer's input projection from a table, so only its recurrent
products count; the CNN's first convolution, read from tables too, is counted as the convolution it
equals (its table sums are additions, bound by memory rather than by the multiply-add rate).
Needs only the core of rbp. Prints Markdown tables; --json writes them.

    python bench/bench_batch.py [--n 20000] [--length 101] [--folds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import report

from rbp.apply import apply_model
from rbp.families import make_family
from rbp.fasta import Record, write_fasta
from rbp.fold_ensemble import FoldEnsemble
from rbp.params import load_params
from rbp.train import seed_everything

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ("cnn", "lstm", "kmer_lr", "dnabert", "ensemble")


def machine_rate(size: int = 2048, repeats: int = 5) -> float:
    """Multiply-adds per second of an fp32 (size x size) matrix product: the machine's ceiling."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return repeats * size**3 / (time.perf_counter() - start)


def macs_per_sequence(name: str, params, length: int) -> float:
    """Multiply-adds of one fold model on one sequence of `length` nt (the layers' arithmetic)."""
    if name == "cnn":
        p, width, total = params.cnn, 4, 0.0
        positions = length
        for channels, kernel, dilation in zip(p.channels, p.kernel_size, p.dilation, strict=True):
            positions -= (kernel - 1) * dilation
            total += positions * channels * width * kernel
            width = channels
        return total + width * p.dense_size + p.dense_size
    if name == "lstm":  # as evaluated: the first layer's input projection is a table row per k-mer
        p, steps, hidden = params.lstm, length - params.k + 1, params.lstm.hidden_size
        recurrent = 2 * steps * 4 * hidden * hidden * p.num_layers
        later_inputs = 2 * steps * 4 * hidden * 2 * hidden * (p.num_layers - 1)
        return recurrent + later_inputs + 2 * hidden * p.dense_size + p.dense_size
    if name == "kmer_lr":
        return sum(4**k for k in range(params.kmer_lr.k_min, params.kmer_lr.k_max + 1))
    if name == "dnabert":
        from rbp.dnabert import DNABERTFamily

        config = DNABERTFamily(params.dnabert, params.k).build().config
        tokens, hidden = length - params.k + 3, config.hidden_size
        per_layer = tokens * (4 * hidden * hidden + 2 * hidden * config.intermediate_size) + 2 * tokens**2 * hidden
        return config.num_hidden_layers * per_layer + hidden * hidden
    return sum(macs_per_sequence(m, params, length) for m in ("lstm", "cnn", "kmer_lr", "dnabert"))


def ensemble_of(name: str, params, folds: int) -> FoldEnsemble:
    seed_everything(0)
    if name == "ensemble":  # the default job's: every other family
        from rbp.ensemble import EnsembleFamily

        members = {m: ensemble_of(m, params, folds) for m in ("dnabert", "lstm", "cnn", "kmer_lr")}
        family = EnsembleFamily(params.ensemble, params.k, members)
        models = [family.combine(fold) for fold in range(1, folds + 1)]
        return FoldEnsemble(family, params, models, list(range(1, folds + 1)), 101, 0.5)
    family = make_family(name, params)
    if name == "kmer_lr":
        from rbp.kmer_lr import SpectrumLogistic

        models = [SpectrumLogistic(int(macs_per_sequence("kmer_lr", params, 0))).eval() for _ in range(folds)]
    else:
        models = [family.build().eval() for _ in range(folds)]
    return FoldEnsemble(family, params, models, list(range(1, folds + 1)), 101, 0.5)


def rate(score, n: int) -> float:
    score(min(n, 512))  # warm-up
    start = time.perf_counter()
    score(n)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--length", type=int, default=101)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--one-at-a-time", type=int, default=500, help="sequences timed one at a time")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    params = load_params(ROOT / "params" / "default.yaml", ["dnabert.size=small"])
    rng = np.random.default_rng(0)
    sequences = ["".join(s) for s in rng.choice(list("ACGT"), (args.n, args.length))]
    ceiling = machine_rate()
    rows = []
    work = Path(tempfile.mkdtemp())
    fasta = work / "in.fa"
    write_fasta(fasta, [Record(f"s{i}", s) for i, s in enumerate(sequences)])
    small = work / "warm.fa"
    write_fasta(small, [Record(f"s{i}", s) for i, s in enumerate(sequences[:200])])
    for name in args.families:
        ensemble = ensemble_of(name, params, args.folds)
        single = FoldEnsemble(ensemble.family, params, ensemble.models[:1], [1], ensemble.window, 0.5)
        macs = macs_per_sequence(name, params, args.length)
        floor = ceiling / macs
        batched = {label: rate(lambda n, p=p: list(p.scans(sequences[:n])), args.n)
                   for label, p in (("1 model", single), (f"{args.folds} folds", ensemble))}
        alone = rate(lambda n, p=ensemble: [p.window_scores(s) for s in sequences[:n]], args.one_at_a_time)
        apply_model(ensemble, small, work / f"warm-{name}", figures=0, progress=False)  # first imports, tables
        start = time.perf_counter()
        apply_model(ensemble, fasta, work / f"out-{name}", figures=0, progress=False)
        end_to_end = args.n / (time.perf_counter() - start)
        for label, value, path in (("1 model", batched["1 model"], "batched"),
                                   (f"{args.folds} folds", batched[f"{args.folds} folds"], "batched"),
                                   (f"{args.folds} folds", alone, "one at a time"),
                                   (f"{args.folds} folds", end_to_end, "rbp predict, end to end")):
            folds = 1 if label == "1 model" else args.folds
            rows.append({"family": name, "model": label, "path": path, "seq_per_s": round(value),
                         "mmac_per_seq": round(macs * folds / 1e6, 3), "floor_seq_per_s": round(floor / folds),
                         "of_floor": f"{value / (floor / folds):.0%}"})
    report(f"Scoring {args.n:,} random {args.length}-nt sequences (one window each), default sizes, untrained; "
           f"the machine's fp32 matrix product: {ceiling / 1e9:.1f} G multiply-adds/s",
           {"family": "family", "model": "model", "path": "path", "seq_per_s": "sequences/s",
            "mmac_per_seq": "M multiply-adds / sequence", "floor_seq_per_s": "floor: sequences/s at the ceiling",
            "of_floor": "of the floor"}, rows, args.json)


if __name__ == "__main__":
    main()
