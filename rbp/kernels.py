"""Notebook kernels started ahead of their turn.

The pipeline runs its notebooks one after another, each in a new kernel, and each kernel used to spend
its first 4 to 6 s importing torch, MLflow, seaborn and the rest and opening the tracking store. The
driver now starts the next notebook's kernel while the current notebook runs (`KernelAhead`): that
kernel imports the modules the next notebook imports and opens the store in a thread of the lowest
CPU priority, so the running notebook keeps the cores, and the notebook's first cell waits for the
thread to finish. Nothing is defined in the notebook's namespace: its cells import as they always
did and find the modules loaded.
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
import os
import threading
from pathlib import Path

WARM_UP_ENV = "RBP_WARM_UP"  # the modules to load, as JSON: [[module, [names imported from it]], ...]
WARM_UP_LINE = '__import__("rbp.kernels").kernels.warm_up()'  # leaves no name in the user's namespace
# Libraries that start threads of their own as they load (numpy's and scipy's BLAS, pyarrow's allocator under
# pandas): loaded first by the kernel's main thread, so that their threads keep its priority, not the lowest
# one of the thread that loads the rest (a thread inherits the priority of the thread that starts it).
THREADED = ("numpy", "scipy.linalg", "pandas")


def notebook_imports(path: str | Path) -> list[tuple[str, list[str]]]:
    """The absolute imports of a notebook's code cells, in order: (module, names imported from it); none
    from a notebook that cannot be read (running it says why)."""
    import nbformat

    try:
        cells = nbformat.read(path, as_version=4).cells
    except (OSError, ValueError, AttributeError, KeyError):
        return []
    imports = []
    for cell in cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython magics: not Python, and nothing to load ahead
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imports += [(alias.name, []) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imports.append((node.module, [alias.name for alias in node.names]))
    return imports


def _load(imports: list[tuple[str, list[str]]]) -> None:
    """Import each module (and each imported name that is a submodule), then open the tracking store;
    whatever fails here is left for the notebook's own cell to fail at and report."""
    try:  # this thread only (on Linux a thread has a policy of its own): the main thread keeps its priority
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # elsewhere the whole process would be lowered: left as it is
        pass
    for module, names in imports:
        try:
            loaded = importlib.import_module(module)
            for name in names:
                if not hasattr(loaded, name):
                    importlib.import_module(f"{module}.{name}")
        except Exception:  # noqa: BLE001, S112 - the notebook's own import reports it
            continue
    try:
        from rbp.tracking import open_store

        open_store()
    except Exception:  # noqa: BLE001, S110 - the notebook's first call to the store reports it
        pass


def warm_up() -> None:
    """Run inside a new kernel (`WARM_UP_LINE`): load `RBP_WARM_UP`'s modules in a background thread of
    the lowest priority; the first cell to run waits for it."""
    from IPython import get_ipython

    imports = json.loads(os.environ.pop(WARM_UP_ENV, "[]"))
    for module in THREADED:
        try:
            importlib.import_module(module)
        except ImportError:  # not installed: nothing of it to start
            pass
    thread = threading.Thread(target=_load, args=(imports,), name="rbp-warm-up", daemon=True)
    thread.start()
    shell = get_ipython()

    def wait(*_):
        thread.join()
        shell.events.unregister("pre_run_cell", wait)

    shell.events.register("pre_run_cell", wait)


@functools.cache
def _manager_class() -> type:
    """jupyter_client's kernel manager, remembering the clients it makes so that their channels can be
    closed with the kernel (imported here: a kernel's warm-up needs none of it)."""
    from jupyter_client.manager import AsyncKernelManager

    class Manager(AsyncKernelManager):
        def client(self, **kwargs):
            made = super().client(**kwargs)
            self.clients.append(made)
            return made

    return Manager


class KernelAhead:
    """A kernel started now for the notebook at `notebook`, to be handed to papermill (`km`) when its turn
    comes; it loads what the notebook imports and `also` ((module, names) pairs); `close()` stops it
    afterwards (papermill leaves a kernel it was given running)."""

    def __init__(self, notebook: str | Path, kernel_name: str, cwd: str | Path, extra_arguments: list[str],
                 env: dict[str, str], also: list[tuple[str, list[str]]] = ()):
        from jupyter_core.utils import run_sync

        self.km = _manager_class()(kernel_name=kernel_name)
        self.km.clients = []
        env = {**env, WARM_UP_ENV: json.dumps([*notebook_imports(notebook), *also])}
        arguments = [*extra_arguments, "--HistoryManager.hist_file=:memory:",
                     f"--IPKernelApp.exec_lines={WARM_UP_LINE}"]
        run_sync(self.km.start_kernel)(extra_arguments=arguments, cwd=str(cwd), env=env)

    def close(self) -> None:
        """Stop the kernel (at once: its notebook has ended) and the channels of its clients; again: nothing."""
        from jupyter_core.utils import run_sync

        for made in self.km.clients:
            made.stop_channels()
        if self.km.has_kernel:
            run_sync(self.km.shutdown_kernel)(now=True)
