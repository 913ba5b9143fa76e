"""The committed notebooks are templates: no outputs, kernel python3, parameters that match params."""

import ast

import nbformat
import pytest

from rbp.params import Params
from tests.conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
RUN_VALUES = {"parent_run_id", "run_dir", "folds_dir", "fold"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_a_clean_template(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameter_defaults_are_the_default_params(path):
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    defaults = Params().to_dict()
    for node in ast.parse(cell.source).body:
        name = node.targets[0].id
        value = ast.literal_eval(node.value)
        if name in defaults:
            assert value == defaults[name], f"{path.name}: {name} = {value!r}, params say {defaults[name]!r}"
        else:
            assert name in RUN_VALUES or name.startswith(("compare_", "sweep_", "interpret_", "leaderboard_")), \
                f"{path.name}: stray {name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_sees_every_parameter(path):
    """papermill must parse each line of the parameters cell, or the driver cannot set it."""
    import papermill

    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    names = {node.targets[0].id for node in ast.parse(cell.source).body}
    assert set(papermill.inspect_notebook(str(path))) == names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameter_names_are_rebound_only_to_objects(path):
    """`collect(globals())` takes a parameter's name for the parameter while it holds a plain value: a
    cell may rebind it to an object it makes (`folds = Folds(...)`), never to a plain value (a loop
    variable, an import, a constant) that a re-run of the notebook would take for the parameter."""
    nb = nbformat.read(path, as_version=4)
    keys = set(Params().to_dict())
    for cell in nb.cells:
        if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
            continue
        tree = ast.parse(cell.source)
        made = {id(target) for node in ast.walk(tree) if isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Call) for target in node.targets}
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and id(node) not in made:
                names = [node.id]
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [(a.asname or a.name).split(".")[0] for a in node.names]
            assert not keys.intersection(names), f"{path.name} rebinds {keys.intersection(names)}"
