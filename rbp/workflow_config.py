"""What a workflow config means: its data sets (listed, or every subfolder of a collection) and each
one's steps. The Snakefile imports this module at every snakemake start, dry runs included, so it
imports neither MLflow nor papermill nor the data code (the jobs, `rbp.workflow`, do)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from rbp.errors import RbpError
from rbp.families import NOTEBOOK_FAMILY

if TYPE_CHECKING:
    from rbp.params import Params


def natural_key(name: str) -> list:
    """A sort key reading the runs of digits in `name` as numbers: 2_A, 10_B, not 10_B, 2_A."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def collection_datasets(spec: dict, source: str = "workflow config") -> dict[str, dict]:
    """The data sets of a collection: every subfolder of `spec["dir"]` (environment variables
    expanded: `$RBP_RBP31_DIR`) that holds each file `spec["set"]` names (`labelled`, `test_set`,
    `positives`, `negatives`) becomes a data set named after it, run with `spec["params"]` and
    `spec["set"]` plus its own `data_dir`. Nothing about the sets is known beforehand: a user's own
    collection of proteins works the same way. Returns name -> {params, set}, sorted by name, numbers
    by value (2_A before 10_B), which is the order of the leaderboard's rows."""
    if not isinstance(spec, dict) or "dir" not in spec:
        raise RbpError(f"{source}: collection must be a mapping with dir (a folder of data sets), params and set")
    unknown = sorted(set(spec) - {"dir", "params", "set", "only"})
    if unknown:
        raise RbpError(f"{source}: collection has an unknown key {unknown[0]}; allowed: dir, params, set, only")
    raw = str(spec["dir"])
    folder = Path(os.path.expandvars(os.path.expanduser(raw)))
    if "$" in str(folder):
        raise RbpError(f"{source}: collection.dir {raw}: an environment variable in it is not set")
    if not folder.is_dir():
        raise RbpError(f"{source}: collection.dir {folder} is not a folder")
    overrides = dict(spec.get("set") or {})
    files = [overrides.get(key, default) for key, default in (("labelled", None), ("test_set", None))]
    if not overrides.get("labelled"):
        files += [overrides.get("positives", "positives.fa"), overrides.get("negatives", "negatives.fa")]
    files = [name for name in files if name]
    only = set(spec.get("only") or [])
    found = {}
    subfolders = (path for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))
    for sub in sorted(subfolders, key=lambda path: natural_key(path.name)):
        if only and sub.name not in only:
            continue
        if all((sub / name).is_file() for name in files):
            found[sub.name] = {"params": spec.get("params", "params/default.yaml"),
                               "set": {**overrides, "data_dir": str(sub.resolve())}}
    if only - set(found):
        raise RbpError(f"{source}: collection.only names {', '.join(sorted(only - set(found)))}, not a data set of "
                       f"{folder} (each needs {', '.join(files)})")
    if not found:
        raise RbpError(f"{source}: no subfolder of {folder} holds {', '.join(files)}: no data set to run")
    return found


def model_notebooks(params: Params) -> dict[str, str]:
    """family -> notebook of the model notebooks the params list, in their order."""
    return {NOTEBOOK_FAMILY[name]: name for name in params.notebooks if name in NOTEBOOK_FAMILY}


def workflow_steps(params: Params) -> list[str]:
    """The notebooks a workflow runs of the params' list: the folds, the models, the comparison and
    the interpretation. (A length sweep and predictions are `rbp run`'s.)"""
    return [name for name in params.notebooks
            if name in ("01_preprocess", "04_compare", "07_interpret") or name in NOTEBOOK_FAMILY]
