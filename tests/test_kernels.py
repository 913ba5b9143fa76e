"""Kernels started ahead of their notebook: what they load, and that the notebook cannot tell."""

from __future__ import annotations

import json
import os
import sys
import threading

import nbformat
import papermill
import pytest

from rbp.kernels import KernelAhead, _load, notebook_imports
from rbp.pipeline import KERNEL_ARGUMENTS, KERNEL_NAME
from tests.conftest import ROOT

# The first cell looks around before anything is imported by the notebook itself; the second imports.
LOOK = """
names = dir()
import json, os, sys, time
names = sorted(name for name in names if not name.startswith("_"))
def threads_at_idle_priority():  # the warm-up thread itself may still be on its way out: it is let go
    found = set()
    for tid in os.listdir("/proc/self/task") if sys.platform == "linux" else []:
        try:
            fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        if fields[38] == str(getattr(os, "SCHED_IDLE", -1)):
            found.add(tid)
    return found
idle = threads_at_idle_priority()
time.sleep(0.5)
idle = sorted(idle & threads_at_idle_priority())
print(json.dumps({"names": names, "loaded": [m for m in ("rbp.kmers", "rbp.synthetic", "sklearn.metrics")
                                              if m in sys.modules],
                  "env": "RBP_WARM_UP" in os.environ, "idle_threads": idle, "progress": os.environ.get("P"),
                  "session": os.getsid(0), "group": os.getpgid(0), "pid": os.getpid()}))
"""


def _notebook(path, *more):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(LOOK), nbformat.v4.new_markdown_cell("import markdown_is_not_code"),
                nbformat.v4.new_code_cell("%matplotlib inline\nx = 1"),  # IPython, not Python: passed over
                nbformat.v4.new_code_cell("from rbp import kmers\nfrom rbp.synthetic import CONSENSUS\nimport json"),
                *map(nbformat.v4.new_code_cell, more)]
    nbformat.write(nb, path)
    return path


def test_a_notebooks_imports_are_read_from_its_code_cells(tmp_path):
    path = _notebook(tmp_path / "n.ipynb", "from . import sibling  # relative: not loaded ahead")
    assert notebook_imports(path) == [
        ("json", []), ("os", []), ("sys", []), ("time", []), ("rbp", ["kmers"]), ("rbp.synthetic", ["CONSENSUS"]),
        ("json", [])]
    assert ("rbp", ["plots", "progress", "tracking"]) in notebook_imports(ROOT / "notebooks" / "03_cnn_cv.ipynb")
    (tmp_path / "garbled.ipynb").write_text("{not json")  # running it will say what is wrong; nothing to load
    assert notebook_imports(tmp_path / "garbled.ipynb") == notebook_imports(tmp_path / "missing.ipynb") == []


@pytest.mark.slow
@pytest.mark.usefixtures("mlflow_store")  # the pipeline's store exists before any kernel opens it
def test_a_kernel_started_ahead_runs_the_notebook_as_a_new_one_would(tmp_path):
    """It has loaded the notebook's modules (and `also`) before the first cell, defines no name, leaves no
    thread at the lowest priority, keeps the environment it was given, counts cells from 1, and is gone
    once closed."""
    notebook = _notebook(tmp_path / "n.ipynb")
    kernel = KernelAhead(notebook, KERNEL_NAME, ROOT, KERNEL_ARGUMENTS, {**os.environ, "P": "here"},
                         also=[("sklearn", ["metrics"])])
    try:
        papermill.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), kernel_name=KERNEL_NAME,
                                   progress_bar=False, km=kernel.km, cwd=str(tmp_path))
    finally:
        kernel.close()
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert [output.name for output in out.cells[0].outputs] == ["stdout"]  # nothing else printed meanwhile
    seen = json.loads(out.cells[0].outputs[0].text)
    assert seen["loaded"] == ["rbp.kmers", "rbp.synthetic", "sklearn.metrics"]
    assert seen["names"] == ["In", "Out", "exit", "get_ipython", "open", "quit"]
    assert not seen["env"] and seen["progress"] == "here"
    if sys.platform == "linux":
        assert seen["idle_threads"] == []
    # in this process's session (one scheduling group with it), in a process group of its own (signalled
    # alone, and out of reach of the terminal's Ctrl-C)
    assert seen["session"] == os.getsid(0) and seen["group"] == seen["pid"] != os.getpgid(0)
    assert [cell.execution_count for cell in out.cells if cell.cell_type == "code"] == [1, 2, 3]
    assert not kernel.km.has_kernel and all(not client.channels_running for client in kernel.km.clients)


@pytest.mark.slow
def test_a_kernel_killed_from_another_thread_ends_its_notebook_at_once(tmp_path):
    """What stops the steps beside one that failed: the notebook ends with a dead kernel, not its last cell."""
    from nbclient.exceptions import DeadKernelError

    notebook = tmp_path / "n.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(600)")]
    nbformat.write(nb, notebook)
    kernel = KernelAhead(notebook, KERNEL_NAME, ROOT, KERNEL_ARGUMENTS, dict(os.environ), polite=False)
    ended = []

    def run():
        try:
            papermill.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), kernel_name=KERNEL_NAME,
                                       progress_bar=False, km=kernel.km, cwd=str(tmp_path), log_output=False)
        except BaseException as exc:  # noqa: BLE001 - what it ended with is the test's answer
            ended.append(exc)
        finally:
            kernel.close()

    thread = threading.Thread(target=run)
    thread.start()
    for _ in range(600):  # until the cell runs (papermill saves the notebook as each cell starts)
        out = tmp_path / "out.ipynb"
        if out.exists() and '"status": "running"' in out.read_text():
            break
        thread.join(0.1)
    kernel.kill()
    thread.join(60)
    assert not thread.is_alive() and len(ended) == 1 and isinstance(ended[0], DeadKernelError)
    assert not kernel.km.has_kernel
    kernel.kill()  # gone: nothing


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="the lowest priority is Linux's SCHED_IDLE")
@pytest.mark.usefixtures("mlflow_store")
def test_a_kernel_loads_at_the_lowest_priority_only_while_another_notebook_runs():
    """The pipeline's first kernel has no notebook to give way to: it loads at full speed."""
    policies = {}

    def load(polite):
        _load([("json", [])], polite)
        policies[polite] = os.sched_getscheduler(0)

    for polite in (True, False):
        thread = threading.Thread(target=load, args=(polite,))
        thread.start()
        thread.join()
    assert policies == {True: os.SCHED_IDLE, False: os.sched_getscheduler(0)}


def test_a_kernel_that_cannot_start_ahead_leaves_the_notebook_to_start_its_own(monkeypatch):
    import rbp.pipeline
    from rbp.params import load_params

    def broken(*args, **kwargs):
        raise RuntimeError("no free port")

    monkeypatch.setattr(rbp.pipeline, "KernelAhead", broken)
    params = load_params(ROOT / "params" / "default.yaml")
    assert rbp.pipeline.start_kernel("03_cnn_cv", "03_cnn_cv", params) is None
    assert rbp.pipeline.start_kernel("no_such_notebook", "x", params) is None
