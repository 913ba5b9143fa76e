"""Time of in-silico mutagenesis: 500 sequences of 81 nt (3 x 81 variants each), one fold model.

Untrained models of the default recipes' sizes (weights do not change the speed), scored through
`rbp.fold_ensemble.FoldEnsemble.probabilities`, exactly what `07_interpret` runs; then TF-MoDISco on the
result (its numba kernels compiled beforehand, as `07_interpret` starts them early). Needs only the
core of rbp. Prints a Markdown table; --json writes it.

    python bench/bench_interpret.py [--sequences 500] [--json out.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import report

from rbp.attribution import ism
from rbp.families import make_family
from rbp.fold_ensemble import FoldEnsemble
from rbp.motif_discovery import discover, warm_up
from rbp.params import load_params
from rbp.train import resolve_device, seed_everything

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=500)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    warm_up()
    device = resolve_device("auto")
    rng = np.random.default_rng(0)
    sequences = ["".join(row) for row in rng.choice(list("ACGT"), size=(args.sequences, 81))]
    params = load_params(ROOT / "params" / "default.yaml")
    rows = []
    for name in ("lstm", "dnabert"):
        family = make_family(name, params)
        seed_everything(0)
        predictor = FoldEnsemble(family, params, [family.build().eval()], [1], 81, 0.5).to(device)
        start = time.perf_counter()
        hypothetical = ism(lambda variants, p=predictor: p.probabilities(variants, 1, logits=True), sequences)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        discover(sequences, hypothetical)
        rows.append({"model": f"{name} (default)", "device": str(device), "sequences": args.sequences,
                     "variants": args.sequences * 81 * 3, "ism_s": round(seconds, 1),
                     "variants_per_s": round(args.sequences * 243 / seconds),
                     "modisco_s": round(time.perf_counter() - start, 1)})
    report("In-silico mutagenesis of 81-nt sequences, one fold model",
           {"model": "model", "device": "device", "sequences": "sequences", "variants": "variants",
            "ism_s": "ISM (s)", "variants_per_s": "variants/s", "modisco_s": "TF-MoDISco (s)"}, rows, args.json)


if __name__ == "__main__":
    main()
