"""The built-in demo has a known answer, and the main job's recipes get close to it."""

import pytest
import torch

from rbp.cv import run_fold
from rbp.data import Folds, prepare_folds
from rbp.families import make_family
from rbp.fasta import write_fasta
from rbp.params import load_params
from rbp.synthetic import ceiling_auc, make_synthetic
from tests.conftest import ROOT

N_PER_CLASS = 1500  # about half the demo's size: a fold of each model in well under a minute


@pytest.fixture(scope="module")
def reduced_demo(tmp_path_factory):
    directory = tmp_path_factory.mktemp("demo")
    positives, negatives = make_synthetic(seed=42, n_per_class=N_PER_CLASS)
    write_fasta(directory / "positives.fa", positives, rna=True)
    write_fasta(directory / "negatives.fa", negatives, rna=True)
    params = load_params(ROOT / "params" / "default.yaml", {"data_dir": str(directory), "dataset": "demo"})
    prepare_folds(params, directory / "run")
    folds = Folds(directory / "run" / "folds")
    return params, folds, ceiling_auc(folds.sequences)


# How far below the ceiling a model may land on the reduced set (at full size, `make run`, see
# docs/benchmarks.md).
ALLOWED_GAP = {"dnabert": 0.05, "lstm": 0.05}


@pytest.mark.slow
@pytest.mark.parametrize("family_name", ["lstm", "dnabert"])
def test_the_default_recipes_come_close_to_the_ceiling(reduced_demo, family_name):
    params, folds, ceiling = reduced_demo
    family = make_family(family_name, params)
    result = run_fold(family, folds, 1, getattr(params, family_name), torch.device("cpu"), params.seed,
                      progress=False)
    assert 0.85 < ceiling < 0.95
    gap = ceiling - result.metrics["test_auc"]
    assert -0.02 <= gap <= ALLOWED_GAP[family_name], (family_name, ceiling, result.metrics["test_auc"])
