"""The pipeline driver: check params and data, open the pipeline run, execute the notebooks.

Each notebook is executed with papermill (kernel `python3`, working directory the project root)
into `outputs/<run-name>/`, and logged to the pipeline run, also when it fails. The executed compare
notebook is exported to an HTML report here (a notebook cannot export itself while papermill runs it).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

# jsonschema (under nbformat, under papermill) imports rfc3987_syntax where it is installed (JupyterLab
# brings it), and that builds an Earley parser for IRIs as it is imported: 1.8 s of every driver's and
# workflow job's start. No notebook schema checks an IRI format, so the driver goes without it.
sys.modules.setdefault("rfc3987_syntax", None)
import papermill  # noqa: E402
from papermill.exceptions import PapermillExecutionError

from rbp import progress, schedule, tracking
from rbp.config import check_writable, project_root, resolve
from rbp.data import DataError, apply_window, assign_folds, load_dataset
from rbp.errors import RbpError
from rbp.families import FAMILIES, NOTEBOOK_FAMILY, make_family
from rbp.fasta import read_fasta
from rbp.interpret import describe_summary
from rbp.kernels import THREAD_VARIABLES, KernelAhead
from rbp.params import Params, from_dict, load_params
from rbp.reporting import VERDICT_FILE
from rbp.tracking.lifecycle import PipelineRun
from rbp.tracking.resume import logged_params, steps_done
from rbp.train import resolve_device


class PipelineError(RbpError):
    """A notebook of the pipeline failed; the message names it, its cell and the error."""


def check_inputs(params: Params):
    """Read the data, make the folds in memory and check a DNABERT checkpoint, so that bad input
    stops the run before anything is written."""
    resolve_device(params.device)  # cuda asked for on a machine without it
    check_writable(resolve(params.output_dir), "output_dir")
    with tempfile.TemporaryDirectory() as tmp:
        data = load_dataset(params, tmp)
    for length in [params.length, *params.sweep.lengths]:
        try:
            table = apply_window(data.table, length, params.short_sequences)
            assign_folds(table, params)
        except DataError as exc:
            raise DataError(f"{exc}" + (f" (with a window of {length} nt)" if length else "")) from None
    for name in params.notebooks:
        if name in NOTEBOOK_FAMILY:  # a family checks its settings (DNABERT: reads and loads its checkpoint)
            make_family(NOTEBOOK_FAMILY[name], params)
    if "06_predict" in params.notebooks and params.predict.fasta:  # read now, not after hours of training
        read_fasta(resolve(params.predict.fasta), ambiguous="keep")
    if "09_variants" in params.notebooks and params.variants.file:  # refused now, by line, not after training
        from rbp.variants import read_variants

        read_variants(resolve(params.variants.file), resolve(params.variants.fasta))
    return data


def skip_reason(name: str, params: Params) -> str | None:
    """Why a listed step has nothing to do on these params, or None."""
    if name == "06_predict" and not params.synthetic and not params.predict.fasta:
        return ("no predict.fasta to scan (the built-in synthetic transcript says nothing about models of real "
                f"data): set -p predict.fasta=FILE, or apply the registered models later with "
                f"`rbp predict --model {params.dataset_name} --fasta FILE`")
    if name == "09_variants" and not params.synthetic and not params.variants.file:
        return ("no variants.file to score (the synthetic known-answer variants say nothing about models of real "
                "data): set -p variants.fasta=FILE -p variants.file=FILE, or score variants later with "
                f"`rbp variants --model {params.dataset_name} --fasta FILE --variants FILE`")
    return None


def notebook_path(name: str) -> Path:
    return project_root() / "notebooks" / f"{name}.ipynb"


def notebook_parameters(name: str, params: Params, **run_values) -> dict:
    """The values a notebook's `parameters` cell declares, taken from the params and the run."""
    path = notebook_path(name)
    if not path.is_file():
        raise PipelineError(f"notebooks: {name} has no notebook at {path}")
    declared = papermill.inspect_notebook(str(path))
    values = {**params.to_dict(), **run_values}
    return {key: values[key] for key in declared if key in values}


def _failure(name: str, exc: PapermillExecutionError, output: Path) -> PipelineError:
    # An error without a message (or one IPython could not format) still names its last line.
    lines = str(exc.evalue).strip().splitlines() or [
        re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in (exc.traceback or [])[-1:]]
    return PipelineError(
        f"notebook {name} failed in cell [{exc.exec_count}]: {exc.ename}: "
        f"{lines[0] if lines else ''} (executed notebook: {output})"
    )


# The kernel's own log lines (e.g. that it listens on TCP on this machine) are not the user's business;
# what fails in a cell still reaches the driver through papermill.
KERNEL_NAME, KERNEL_ARGUMENTS = "python3", ["--IPKernelApp.log_level=CRITICAL"]
KERNELS_AHEAD = 2  # notebooks whose kernels load while the one before them runs (each holds its imports' memory)
# Once its last cell has run, a notebook's kernel has nothing left to write: every run was ended, every
# file closed and every output received inside its cells. Stopped at once, it is spared Python's
# teardown of torch, MLflow and the rest: 0.1 s after the last cell instead of 2.4 to 3.1 s.
KERNEL_SHUTDOWN = "immediate"


def _progress_file(stem: str) -> Path:
    """Where step `stem`'s notebook writes its progress: a name known before the run's folder is (its
    kernel is started first), this process's own (a workflow's jobs side by side are processes)."""
    return Path(tempfile.gettempdir()) / f"rbp-{os.getpid()}-{stem}.progress.jsonl"


def start_kernel(name: str, stem: str, params: Params, polite: bool = True,
                 threads: int | None = None) -> KernelAhead | None:
    """A kernel for notebook `name` (step `stem`, the name of its executed notebook), started now: while
    another notebook runs it loads what the notebook imports, and what the models it builds or loads
    import (see `rbp.kernels`): a model notebook's own family's, the ensemble's and any other notebook's
    every family of the run.
    `polite`: it loads at the lowest priority (another notebook runs meanwhile); `threads`: the CPU
    threads it computes on (None: every core). None when there is no such notebook, or when the kernel
    does not start: the notebook then starts its own when its turn comes, and that one says what is wrong."""
    if not notebook_path(name).is_file():
        return None
    run = [NOTEBOOK_FAMILY[notebook] for notebook in params.notebooks if notebook in NOTEBOOK_FAMILY]
    own = NOTEBOOK_FAMILY.get(name)
    also = {}
    for family in [own] if own not in (None, "ensemble") else run:
        for where in FAMILIES[family].preload:
            module, attribute = where.split(":")
            also.setdefault(module, []).append(attribute)
    env = {**os.environ, progress.ENV: str(_progress_file(stem)),
           **({name: str(threads) for name in THREAD_VARIABLES} if threads else {})}
    try:
        return KernelAhead(notebook_path(name), KERNEL_NAME, project_root(), KERNEL_ARGUMENTS, env,
                           list(also.items()), polite)
    except Exception:  # noqa: BLE001 - a speed-up only; the notebook's own start reports the problem
        return None


@contextmanager
def _progress(output: Path, echo, environ: bool = True):
    """While a notebook runs, its CV loop writes progress to a file that is echoed here. `environ`: the
    file is named in this process's environment, for a kernel papermill starts (one started ahead has
    it in its own)."""
    path = _progress_file(output.stem)
    path.unlink(missing_ok=True)  # a killed run's lines are not this run's: never replayed
    previous = os.environ.get(progress.ENV)
    if environ:
        os.environ[progress.ENV] = str(path)
    try:
        with progress.Follower(path, echo, output.stem):
            yield
    finally:
        if environ:
            if previous is None:
                os.environ.pop(progress.ENV, None)
            else:
                os.environ[progress.ENV] = previous
        path.unlink(missing_ok=True)


def _papermill(name: str, output: Path, values: dict, echo, kernel: KernelAhead | None = None) -> None:
    """papermill on one notebook, in `kernel` when one was started ahead for it (its caller stops it), else
    in a new one; a kernel that died before it answered is started once more (jobs side by side can pick the same free
    port for their kernels, and the second one then fails to bind it)."""
    for attempt in (1, 2):
        if kernel and attempt == 2:
            kernel.renew()
        given = {"km": kernel.km} if kernel else {}
        try:
            papermill.execute_notebook(str(notebook_path(name)), str(output), parameters=values,
                                       kernel_name=KERNEL_NAME, cwd=str(project_root()), progress_bar=False,
                                       extra_arguments=KERNEL_ARGUMENTS, shutdown_kernel=KERNEL_SHUTDOWN, **given)
            return
        except RuntimeError as exc:
            if attempt == 2 or "Kernel died before replying to kernel_info" not in str(exc):
                raise
            echo(f"  {output.stem}: its kernel did not start ({exc}); starting it again")


def execute_notebook(name: str, output: Path, values: dict, run_id: str | None, echo,
                     kernel: KernelAhead | None = None) -> float:
    """Run one notebook with papermill (in `kernel`, when one was started ahead for it) and log it to run
    `run_id` (when given), also when it fails; returns the seconds it took."""
    start = time.perf_counter()
    echo(f"  {output.stem}: running")
    try:
        with _progress(output, echo, environ=kernel is None):
            _papermill(name, output, values, echo, kernel)
    except Exception as exc:  # a failing cell, or a kernel that died (out of memory, killed)
        if output.exists() and run_id:
            tracking.log_notebook(run_id, output)
        echo(f"  {output.stem}: failed after {time.perf_counter() - start:.0f} s")
        if isinstance(exc, PapermillExecutionError):
            raise _failure(output.stem, exc, output) from None
        raise PipelineError(f"notebook {output.stem} stopped: {type(exc).__name__}: {exc} "
                            f"(executed notebook: {output})") from None
    if run_id:
        tracking.log_notebook(run_id, output)
    seconds = time.perf_counter() - start
    echo(f"  {output.stem}: done in {seconds:.0f} s -> {output}")
    if name == "04_compare":
        report = log_report(output, run_id)
        echo(f"  report: {report}")
        _announce_verdict(output.parent / VERDICT_FILE, report, run_id, echo)
    if name == "07_interpret" and (output.parent / "interpret_summary.csv").is_file():
        for row in pd.read_csv(output.parent / "interpret_summary.csv").to_dict("records"):
            echo(textwrap.fill(describe_summary(row), 100, initial_indent="  ", subsequent_indent="    "))
    summary = output.parent / {"06_predict": "predict", "09_variants": "variants"}.get(name, "-") / "summary.txt"
    if summary.is_file():
        for line in summary.read_text().splitlines():
            echo(textwrap.fill(line, 100, initial_indent="  ", subsequent_indent="    "))
    return seconds


def _announce_verdict(path: Path, report: Path, run_id: str, echo) -> None:
    """The compare step's verdict: printed, and written as the pipeline run's description."""
    if not path.is_file():
        return
    verdict = json.loads(path.read_text())
    table = pd.DataFrame(verdict["table"]).set_index("model")
    registered = _registered_models(run_id)
    models = ("Registered models: " + ", ".join(f"{label} `{uri}`" for label, uri in registered.items())
              + " (apply with `rbp predict --model URI --fasta FILE`)." if registered else "")
    echo("\n" + table.to_string() + "\n\n" + textwrap.fill(verdict["sentence"], 100) + "\n"
         + (textwrap.fill(models.replace("`", ""), 100) + "\n" if models else ""))
    note = (f"**Verdict.** {verdict['sentence']}\n\n{table.to_markdown()}\n\n{models}\n\n"
            f"Report: `{report}` (also under `reports/` in this run's artifacts).")
    headline = re.split(r"[.:]", verdict["sentence"], maxsplit=1)[0]
    scores = ", ".join(f"{model} {row['ROC AUC']}" for model, row in table.iterrows())
    tracking.describe_verdict(run_id, note, f"{headline}; test ROC AUC {scores}.\n\n{verdict['sentence']}")


def _registered_models(run_id: str) -> dict[str, str]:
    try:
        return tracking.pipeline_models(run_id)
    except RbpError:
        return {}


def export_html(notebook_path: str | Path, html_path: str | Path | None = None,
                exclude_input: bool = False) -> Path:
    """An executed notebook as a standalone HTML page (figures embedded); returns its path."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook_path = Path(notebook_path)
    if not notebook_path.is_file():
        raise RbpError(f"{notebook_path}: no notebook to export")
    html_path = Path(html_path) if html_path else notebook_path.with_suffix(".html")
    exporter = HTMLExporter(exclude_input=exclude_input, exclude_input_prompt=exclude_input,
                            exclude_output_prompt=exclude_input)
    body, _ = exporter.from_notebook_node(nbformat.read(notebook_path, as_version=4))
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(body, encoding="utf-8")
    return html_path


def log_report(notebook_path: str | Path, run_id: str, html_path: str | Path | None = None,
               exclude_input: bool = True, artifact_path: str = "reports") -> Path:
    """Export an executed notebook (the compare step) to HTML beside it and log it to run `run_id`."""
    html = export_html(notebook_path, html_path, exclude_input)
    tracking.log_report(run_id, html, artifact_path)
    return html


def run_pipeline(params_file: str | Path | None, overrides: list[str] | dict | None = None,
                 echo=print) -> PipelineRun:
    params = load_params(resolve(params_file) if params_file else None, overrides)
    kernels = Kernels(todo(params), params)
    kernels.start()  # the first steps' kernels load while the data is read and the run is opened
    try:
        data = check_inputs(params)
        if params.synthetic:
            echo("No data_dir given: running on the built-in SYNTHETIC set (a smoke test, not a benchmark).")
        run = tracking.open_pipeline_run(params, data, params_file, echo)
        with tracking.active_run(run_id=run.run_id):
            echo(f"pipeline run {run.run_name} ({run.run_id}) in experiment '{params.dataset_name}'; "
                 f"outputs in {run.run_dir}")
            run_steps(params, run.run_id, run.run_dir, echo, kernels=kernels)
    finally:
        kernels.close()
    return run


def run_values(params: Params, run_id: str, run_dir: Path) -> dict:
    """What every notebook of a pipeline run is told besides the params: the run, its folder, its folds."""
    return {"parent_run_id": run_id, "run_dir": str(run_dir),
            "folds_dir": str(run_dir / "folds") if "01_preprocess" in params.notebooks else None}


def steps(params: Params) -> list[tuple[str, str, dict]]:
    """The pipeline's notebooks in order: (notebook, output name, extra values); a length sweep runs
    each model notebook once per length, on the same folds."""
    planned = []
    for name in params.notebooks:
        lengths = params.sweep.lengths if name in NOTEBOOK_FAMILY and params.sweep.lengths else [None]
        for length in lengths:
            planned.append((name, f"{name}-{length}nt" if length else name, {"length": length} if length else {}))
    return planned


def todo(params: Params, done: set[str] = frozenset(), echo=None) -> list[tuple[str, str, dict]]:
    """The steps to execute, as `steps` gives them, less those with nothing to do on these params and
    those in `done` (a resumed run's finished steps); `echo` is told of each one left out."""
    planned = []
    for name, stem, window in steps(params):
        if reason := skip_reason(name, params):
            if echo:
                echo(textwrap.fill(f"{name}: skipped; {reason}", 100, initial_indent="  ", subsequent_indent="    "))
        elif stem in done:
            if echo:
                echo(f"  {stem}: finished before, kept")
        else:
            planned.append((name, stem, window))
    return planned


def side_by_side(params: Params) -> int:
    """How many notebooks run at once: `params.jobs`; `auto`: 2 on a CPU of 2 cores or more, else 1 (and
    1 on CUDA, where the notebooks would share one GPU)."""
    if params.jobs != "auto":
        return params.jobs
    return 1 if resolve_device(params.device).type == "cuda" or schedule.cores() < 2 else 2


class Kernels:
    """The kernels of the steps `planned` (as `todo` gives them) and how the steps run: which wait for
    which (`rbp.schedule.needs`), how many at once (`side_by_side`), and on how many CPU threads each
    (the cores shared out among those that may run beside another; every core for the others).

    Each kernel starts KERNELS_AHEAD steps before its turn, loading its notebook's imports at the lowest
    priority meanwhile (the first step's at full speed: nothing runs beside it). All of them are in this
    process's session (`rbp.kernels.in_this_session`), where the lowest priority leaves the running
    notebooks their cores. Used from the threads that run the steps."""

    def __init__(self, planned: list[tuple[str, str, dict]], params: Params):
        self.planned, self.params = planned, params
        self.jobs = side_by_side(params)
        self.waits = schedule.needs([name for name, _, _ in planned])
        shared, share = schedule.beside(self.waits) if self.jobs > 1 else set(), max(1, schedule.cores() // self.jobs)
        self.threads = {i: share if i in shared else None for i in range(len(planned))}
        self.started: dict[int, KernelAhead | None] = {}  # started, not taken yet
        self.running: dict[int, KernelAhead] = {}  # taken, not released yet
        self.taken: set[int] = set()
        self.stopped = False
        self._lock = threading.Lock()  # over the kernels' dicts
        self._starting = threading.Lock()  # one thread starts kernels at a time: a step's is there when taken

    def start(self, step: int = 0) -> None:
        """Start the kernels of steps `step` to `step` + KERNELS_AHEAD that are not started yet."""
        with self._starting:
            for j in range(step, min(step + 1 + KERNELS_AHEAD, len(self.planned))):
                if j in self.started or j in self.taken or self.stopped:
                    continue
                name, stem, _ = self.planned[j]
                kernel = start_kernel(name, stem, self.params, polite=j > 0, threads=self.threads[j])
                with self._lock:
                    self.started[j] = kernel

    def take(self, step: int) -> KernelAhead | None:
        """Step `step`'s kernel, the next ones started; None: papermill starts one. `release` stops it."""
        self.start(step)
        with self._lock:
            if self.stopped:
                raise PipelineError(f"{self.planned[step][1]}: not started (the run was stopped)")
            self.taken.add(step)
            kernel = self.started.pop(step, None)
            if kernel:
                self.running[step] = kernel
            return kernel

    def release(self, step: int) -> None:
        """Stop step `step`'s kernel (its notebook has ended); again: nothing."""
        with self._lock:
            kernel = self.running.pop(step, None)
        if kernel:
            kernel.close()

    def stop(self) -> None:
        """Kill the kernels of the running steps (each one's thread then releases it) and start no more."""
        with self._lock:
            self.stopped = True
            running = list(self.running.values())
        for kernel in running:
            kernel.kill()

    def close(self) -> None:
        """Stop every kernel not taken, and start no more; again: nothing."""
        with self._starting, self._lock:
            self.stopped = True
            kernels = [kernel for kernel in self.started.values() if kernel]
            self.started.clear()
        for kernel in kernels:
            kernel.close()


@contextmanager
def _silent_once_stopped(kernels: Kernels):
    """The laments of papermill, asyncio and traitlets about the kernels `kernels.stop` killed (the steps
    beside one that failed) are not the user's news: dropped, and nothing else."""
    import logging

    class Stopped(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not kernels.stopped

    loggers, dropped = [logging.getLogger(name) for name in ("papermill", "asyncio", "traitlets")], Stopped()
    for logger in loggers:
        logger.addFilter(dropped)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(dropped)


def run_steps(params: Params, run_id: str, run_dir: Path, echo, done: set[str] = frozenset(),
              kernels: Kernels | None = None) -> None:
    """Execute the pipeline's notebooks into `run_dir`, leaving out those in `done` (a resumed run's
    finished steps), in `kernels` when the caller started them for the same steps; those that need
    nothing of each other's run side by side (`rbp.schedule`). Each finished step is tagged on the
    pipeline run. If one fails or is stopped, the others running are stopped, and the runs they left
    open are ended FAILED (KILLED on Ctrl-C or `kill`)."""
    values = run_values(params, run_id, run_dir)
    planned = todo(params, done, echo)
    kernels = kernels or Kernels(planned, params)
    lock = threading.Lock()

    def said(line: str) -> None:  # whole lines from the steps' threads; none from those being stopped
        with lock:
            if not kernels.stopped:
                echo(line)

    def step(i: int) -> None:
        name, stem, window = planned[i]
        try:
            kernel = kernels.take(i)
            seconds = execute_notebook(name, run_dir / f"{stem}.ipynb",
                                       notebook_parameters(name, params, **values, **window), run_id, said, kernel)
        finally:
            kernels.release(i)
            # a notebook stopped mid-fold (Ctrl-C, `kill`) may write once more before its kernel stops
            _progress_file(stem).unlink(missing_ok=True)
        tracking.mark_step_done(run_id, stem, seconds)

    try:
        with _silent_once_stopped(kernels):
            schedule.run(len(planned), kernels.waits, kernels.jobs, step, kernels.stop)
    except BaseException as exc:
        tracking.close_descendants(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    finally:
        kernels.close()


def resume_pipeline(name_or_id: str, echo=print) -> PipelineRun:
    """Reopen a pipeline run that was killed or failed and run only what is missing: its finished
    steps are kept, and in a model step its finished folds (see `rbp.tracking.CVLogger`)."""
    tracking.connect()
    previous = tracking.find_pipeline_run(name_or_id, "--resume")
    params = from_dict(logged_params(previous), f"params of pipeline run {previous.info.run_name}")
    data = check_inputs(params)
    if data.data_sha256 != previous.data.tags.get("data_sha256"):
        raise PipelineError(f"--resume: the data of pipeline run {previous.info.run_name} changed since it ran "
                            f"(data_sha256 {previous.data.tags.get('data_sha256', '?')[:12]}, now "
                            f"{data.data_sha256[:12]}): start a new run")
    run = tracking.reopen_pipeline_run(previous, params, echo)
    done = steps_done(tracking.client().get_run(run.run_id))
    if not (run.run_dir / "folds" / "manifest.json").is_file():
        done.discard("01_preprocess")  # the folds' files are gone: made again (the same folds, from the seed)
    todo = [stem for name, stem, _ in steps(params) if stem not in done and not skip_reason(name, params)]
    if not todo:
        echo(f"pipeline run {run.run_name} ({run.run_id}) finished every step: nothing to resume")
        return run
    run.run_dir.mkdir(parents=True, exist_ok=True)
    with tracking.active_run(run_id=run.run_id, tags=tracking.resumed_tags(previous)):
        echo(f"resuming pipeline run {run.run_name} ({run.run_id}) in experiment '{params.dataset_name}': "
             f"{', '.join(todo)} to run; outputs in {run.run_dir}")
        run_steps(params, run.run_id, run.run_dir, echo, done)
    return run
