"""Which of a pipeline's notebooks may run side by side, and running them so.

A model notebook needs the folds (`01_preprocess`), not another model's results: the models of a run
train side by side. Every other notebook waits for every notebook listed before it: the ensemble
averages the models, and compare, predict, interpret and the rest read them. (Those readers would need
nothing of each other either, but side by side on a core each they took as long as one after another on
both, and TF-MoDISco's motifs depend on the threads it has.) A notebook never starts before one listed
ahead of it that it needs; among those ready to start, the one listed first starts first.

`run` executes steps in threads, each of which waits on its own notebook's kernel (a process): the
threads only wait, the kernels do the work.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Sequence

from rbp.families import FAMILIES

MODELS = frozenset(info.notebook for name, info in FAMILIES.items() if name != "ensemble")


def needs(notebooks: Sequence[str]) -> list[frozenset[int]]:
    """For each step (a notebook's name, in the order listed), the earlier steps it waits for: a model
    notebook, every earlier one that is not a model notebook; any other, every earlier one."""
    return [frozenset(j for j in range(i) if name not in MODELS or notebooks[j] not in MODELS)
            for i, name in enumerate(notebooks)]


def beside(waits: Sequence[frozenset[int]]) -> set[int]:
    """The steps that may run while another one does: those for which another step neither waits on
    them nor is waited on by them, directly or through others."""
    before: list[set[int]] = []  # every step each one waits for, through others too
    for direct in waits:
        before.append(set(direct).union(*(before[j] for j in direct)))
    return {i for i in range(len(waits)) for j in range(len(waits))
            if i != j and i not in before[j] and j not in before[i]}


def cores() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run(count: int, waits: Sequence[frozenset[int]], jobs: int, step: Callable[[int], None],
        stop: Callable[[], None], grace: float = 60.0) -> None:
    """Call `step(i)` for each of `count` steps, each in a thread of its own once every step of
    `waits[i]` has returned, at most `jobs` at a time, in the order given among those ready.

    The first step to raise, or an exception here (Ctrl-C, `kill`), ends the run: `stop()` is called to
    stop the steps still running, each is given `grace` seconds to return, and that first exception is
    raised. Steps not started by then never start."""
    finished: set[int] = set()
    running: set[int] = set()
    ended: queue.Queue[tuple[int, BaseException | None]] = queue.Queue()

    def thread(i: int) -> None:
        try:
            step(i)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, which raises it
            ended.put((i, exc))
        else:
            ended.put((i, None))

    failure: BaseException | None = None
    try:
        while len(finished) < count:
            for i in range(count):
                if len(running) < jobs and i not in finished and i not in running and waits[i] <= finished:
                    running.add(i)
                    threading.Thread(target=thread, args=(i,), name=f"rbp-step-{i}", daemon=True).start()
            if not running:
                raise ValueError(f"steps {sorted(set(range(count)) - finished)} wait for steps that never run")
            i, failure = ended.get()
            running.discard(i)
            if failure is not None:
                break
            finished.add(i)
    except BaseException as exc:
        failure = exc
    if running:
        stop()
        try:
            while running:
                i, _ = ended.get(timeout=grace)  # what a stopped step raises says only that it was stopped
                running.discard(i)
        except queue.Empty:
            pass
    if failure is not None:
        raise failure
