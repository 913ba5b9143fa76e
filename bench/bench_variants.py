"""Variant effects: time and memory of `rbp variants`, and a known answer on PUM2.

Speed (`--speed`): an untrained fold ensemble of `params/default.yaml`'s sizes (weights do not change
the speed), windows of `--length` nt, `--variants` single-nucleotide variants at distinct random
positions of random 2,000-nt sequences (no two share a window: the costliest case), scored end to end
by `score_variants` (files read, every effect and percentile, the table and summary written, no
figures). Prints seconds, variants/s, windows scored per variant and the peak resident memory.

PUM2 (`--pum2 DIR`, the folder of positives.fa and negatives.fa): the default CNN trained on folds
2-5's training part (validation split for early stopping), then, on fold 1's held-out positives that
hold UGUAHAUA, each base of the UGUA changed to C. Prints how many of those variants lower the
score, per position of the core and in all.

    python bench/bench_variants.py --speed --family cnn --variants 10000
    python bench/bench_variants.py --pum2 ../shared/data/pum2
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from common import machine

ROOT = Path(__file__).resolve().parent.parent


def speed(family_name: str, n: int, folds: int, length: int) -> None:
    from bench_batch import ensemble_of

    from rbp.fasta import Record, write_fasta
    from rbp.params import load_params
    from rbp.variants import score_variants

    params = load_params(ROOT / "params" / "default.yaml")
    predictor = ensemble_of(family_name, params, folds)
    predictor.window = length
    rng = np.random.default_rng(0)
    per_sequence = 10
    sequences = ["".join(rng.choice(list("ACGT"), 2000)) for _ in range(-(-n // per_sequence))]
    rows = ["sequence_id\tposition\tref\talt"]
    for i, sequence in enumerate(sequences):
        for position in (np.arange(per_sequence) * 2 * length + length)[: n - i * per_sequence]:
            ref = sequence[position - 1]
            rows.append(f"s{i}\t{position}\t{ref}\t{'C' if ref != 'C' else 'G'}")
    with tempfile.TemporaryDirectory() as tmp:
        write_fasta(Path(tmp) / "ref.fa", [Record(f"s{i}", s) for i, s in enumerate(sequences)])
        (Path(tmp) / "v.tsv").write_text("\n".join(rows) + "\n")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        result = score_variants([predictor], Path(tmp) / "ref.fa", Path(tmp) / "v.tsv", Path(tmp) / "out", figures=0,
                                progress=False)
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    windows = 2 * length + 3 * length + 1  # both alleles' covering windows, every change of the best window
    print(f"{family_name}, {folds} folds, windows of {length} nt, {machine()}: {len(result.table)} variants in "
          f"{seconds:.1f} s ({len(result.table) / seconds:.1f} variants/s, {windows} windows each: "
          f"{len(result.table) * windows / seconds:,.0f} windows/s); peak resident memory {peak:,.0f} MB "
          f"({before:,.0f} MB before scoring)")


def pum2(directory: Path) -> None:
    import torch

    from rbp.cv import run_fold
    from rbp.data import Folds, prepare_folds
    from rbp.families import make_family
    from rbp.fold_ensemble import FoldEnsemble
    from rbp.motifs import motif_regex
    from rbp.params import load_params
    from rbp.variants import Variant, effects

    params = load_params(ROOT / "params" / "default.yaml", {"data_dir": str(directory), "dataset": "pum2"})
    with tempfile.TemporaryDirectory() as tmp:
        prepare_folds(params, Path(tmp) / "run")
        folds = Folds(Path(tmp) / "run" / "folds")
        family = make_family("cnn", params)
        start = time.perf_counter()
        result = run_fold(family, folds, 1, params.cnn, torch.device("cpu"), params.seed, progress=False)
        trained = time.perf_counter() - start
        held_out = result.predictions
        table = folds.sequences.set_index("id").loc[held_out.id]
    from rbp.fold_ensemble import choose_threshold

    threshold = choose_threshold(result.val_predictions.label, result.val_predictions.probability)
    predictor = FoldEnsemble(family, params, [result.model], [1], int(np.median(table.sequence.str.len())), threshold)
    pattern = motif_regex("UGUAHAUA")
    variants, loci = [], []
    for sid, row in table[table.label == 1].iterrows():
        match = pattern.search(row.sequence)
        if match is None:
            continue
        for offset in range(4):
            at = match.start() + offset
            ref = row.sequence[at]
            variants.append(Variant(sid, at + 1, ref, "C" if ref != "C" else "G", f"{sid}:{offset}", 0))
            loci.append((row.sequence, at, 0))
    start = time.perf_counter()
    scored = effects(predictor, variants, loci).assign(core=[int(v.name.rsplit(":", 1)[1]) for v in variants])
    seconds = time.perf_counter() - start
    print(f"PUM2, the default CNN trained on folds 2-5 ({trained:.0f} s, fold 1 test ROC AUC "
          f"{result.metrics['test_auc']:.4f}), fold 1's held-out positives holding UGUAHAUA: "
          f"{len(variants) // 4} sites, {len(variants)} variants scored in {seconds:.1f} s ({machine()})\n")
    print("| UGUA base changed | variants | score lowered | median change in probability | median log-odds | "
          "sites lost at the threshold |")
    print("| --- | --- | --- | --- | --- | --- |")
    for core, part in [*scored.groupby("core"), ("all", scored)]:
        label = f"{'UGUA'[core]} (position {core + 1})" if core != "all" else "all four"
        print(f"| {label} | {len(part)} | {(part.delta < 0).sum()} ({(part.delta < 0).mean():.0%}) | "
              f"{part.delta.median():+.3f} | {part.delta_logodds.median():+.2f} | {(part.site == 'lost').sum()} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--family", default="cnn")
    parser.add_argument("--variants", type=int, default=10000)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--length", type=int, default=101)
    parser.add_argument("--pum2", type=Path)
    args = parser.parse_args()
    if args.speed:
        speed(args.family, args.variants, args.folds, args.length)
    if args.pum2:
        pum2(args.pum2)


if __name__ == "__main__":
    main()
