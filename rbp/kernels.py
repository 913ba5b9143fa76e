"""Notebook kernels started ahead of their turn.

The pipeline runs each notebook in a new kernel (the models two at a time, the others one after another),
and each kernel used to spend its first 4 to 6 s importing torch, MLflow, seaborn and the rest and
opening the tracking store. The driver now starts a notebook's kernel while the notebooks before it run
(`KernelAhead`): that kernel imports the modules its notebook imports and opens the store in a thread of
the lowest CPU priority, so the running notebooks keep the cores, and the notebook's first cell waits for
the thread to finish.
Nothing is defined in the notebook's namespace: its cells import as they always did and find the
modules loaded. The kernels stay in the driver's session (`in_this_session`), where that priority holds.
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
import os
import signal
import subprocess
import threading
from pathlib import Path

WARM_UP_ENV = "RBP_WARM_UP"  # the modules to load, as JSON: [[module, [names imported from it]], ...]
POLITE_ENV = "RBP_WARM_UP_POLITE"  # "1": load them at the lowest priority (another notebook runs meanwhile)
WARM_UP_LINE = '__import__("rbp.kernels").kernels.warm_up()'  # leaves no name in the user's namespace
# Libraries that start threads of their own as they load (numpy's and scipy's BLAS, pyarrow's allocator under
# pandas): loaded first by the kernel's main thread, so that their threads keep its priority, not the lowest
# one of the thread that loads the rest (a thread inherits the priority of the thread that starts it).
THREADED = ("numpy", "scipy.linalg", "pandas")
# Read by torch, numpy's BLAS and numba as a kernel starts: how many CPU threads it computes on.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


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


def _load(imports: list[tuple[str, list[str]]], polite: bool = True) -> None:
    """Import each module (and each imported name that is a submodule), then open the tracking store;
    whatever fails here is left for the notebook's own cell to fail at and report. `polite`: at the
    lowest priority (SCHED_IDLE), so that a notebook running meanwhile keeps the cores."""
    try:  # this thread only (on Linux a thread has a policy of its own): the main thread keeps its priority
        if polite:
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
    """Run inside a new kernel (`WARM_UP_LINE`): load `RBP_WARM_UP`'s modules in a background thread (of
    the lowest priority unless `RBP_WARM_UP_POLITE` is 0); the first cell to run waits for it."""
    from IPython import get_ipython

    imports = json.loads(os.environ.pop(WARM_UP_ENV, "[]"))
    polite = os.environ.pop(POLITE_ENV, "1") != "0"
    for module in THREADED:
        try:
            importlib.import_module(module)
        except ImportError:  # not installed: nothing of it to start
            pass
    thread = threading.Thread(target=_load, args=(imports, polite), name="rbp-warm-up", daemon=True)
    thread.start()
    shell = get_ipython()

    def wait(*_):
        thread.join()
        shell.events.unregister("pre_run_cell", wait)

    shell.events.register("pre_run_cell", wait)


def in_this_session(cmd: list[str], env: dict[str, str] | None = None, independent: bool = False,
                    **popen) -> subprocess.Popen:
    """A kernel's process started as jupyter_client starts it on POSIX, but in this process's session, in
    a process group of its own (the terminal's Ctrl-C still reaches the driver alone, and the kernel is
    signalled and stopped through its group as before).

    jupyter_client starts every kernel in a new session. Where Linux groups processes by session for
    the scheduler (autogroup, on by default on desktops and servers alike), each session gets an equal
    share of the cores whatever the priority of its threads: a kernel loading ahead in a thread of the
    lowest priority took a full core from the notebook training beside it, and with torch's two
    threads waiting on each other that cost a small DNABERT's first epoch 4 to 6 s. In one session the
    lowest priority means what it says. `independent` (a kernel that outlives this process) is jupyter_client's
    keyword, taken here and not offered: the pipeline's kernels end with it."""
    env = dict(os.environ if env is None else env)
    env["JPY_PARENT_PID"] = str(os.getpid())  # the kernel ends itself when this process is gone
    popen.setdefault("stdin", subprocess.PIPE)
    return subprocess.Popen(cmd, env=env, process_group=0, **popen)


@functools.cache
def _manager_class() -> type:
    """jupyter_client's kernel manager, remembering the clients it makes so that their channels can be
    closed with the kernel, and starting a local kernel in this session (`in_this_session`; imported
    here: a kernel's warm-up needs none of it)."""
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_client.provisioning import LocalProvisioner

    class Manager(AsyncKernelManager):
        def client(self, **kwargs):
            made = super().client(**kwargs)
            self.clients.append(made)
            return made

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
            local = self.provisioner
            if os.name != "posix" or type(local) is not LocalProvisioner:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            local.process = in_this_session(kernel_cmd, **LocalProvisioner._scrub_kwargs(kw))
            local.pid = local.pgid = local.process.pid
            local.cwd = kw.get("cwd", os.getcwd())
            self._reconcile_connection_info(local.connection_info)

    return Manager


class KernelAhead:
    """A kernel started now for the notebook at `notebook`, to be handed to papermill (`km`) when its turn
    comes; it loads what the notebook imports and `also` ((module, names) pairs), at the lowest priority
    when `polite` (another notebook runs meanwhile); `close()` stops it afterwards (papermill leaves a
    kernel it was given running)."""

    def __init__(self, notebook: str | Path, kernel_name: str, cwd: str | Path, extra_arguments: list[str],
                 env: dict[str, str], also: list[tuple[str, list[str]]] = (), polite: bool = True):
        self._start = functools.partial(self._launch, notebook, kernel_name, cwd, extra_arguments, env, also)
        self._start(polite)

    def _launch(self, notebook, kernel_name, cwd, extra_arguments, env, also, polite: bool) -> None:
        from jupyter_core.utils import run_sync

        self.km = _manager_class()(kernel_name=kernel_name)
        self.km.clients = []
        env = {**env, WARM_UP_ENV: json.dumps([*notebook_imports(notebook), *also]), POLITE_ENV: str(int(polite))}
        arguments = [*extra_arguments, "--HistoryManager.hist_file=:memory:",
                     f"--IPKernelApp.exec_lines={WARM_UP_LINE}"]
        run_sync(self.km.start_kernel)(extra_arguments=arguments, cwd=str(cwd), env=env)

    def renew(self) -> None:
        """Stop this kernel and start another like it in its place (loading at full speed)."""
        self.close()
        self._start(False)

    def kill(self) -> None:
        """Kill the kernel's process (and its group) now, from any thread: the notebook running in it
        ends with a dead kernel; `close()` still follows, from the thread that runs the notebook."""
        process = getattr(self.km.provisioner, "process", None) if self.km.has_kernel else None
        if process is None or process.poll() is not None:
            return
        try:
            if os.name == "posix":
                os.killpg(process.pid, signal.SIGKILL)  # in a group of its own (`in_this_session`)
            else:
                process.kill()
        except ProcessLookupError:  # gone meanwhile
            pass

    def close(self) -> None:
        """Stop the kernel (at once: its notebook has ended) and the channels of its clients; again: nothing."""
        from jupyter_core.utils import run_sync

        for made in self.km.clients:
            made.stop_channels()
        self.km.clients.clear()
        if self.km.has_kernel:
            run_sync(self.km.shutdown_kernel)(now=True)
