"""Progress of a cross-validation as it goes, for a terminal that is not the notebook's.

A model notebook run by `rbp run` executes in a kernel whose output the terminal never sees. The
driver names a file in `RBP_PROGRESS_FILE`; the notebook's CV loop appends one JSON line per epoch
and fold to it (`reporter`), and the driver reads the file as it grows (`Follower`) and prints a line
per event, and a "still running" line when nothing happened for a while.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path

from rbp.cv import Callbacks

ENV = "RBP_PROGRESS_FILE"


class ProgressFile(Callbacks):
    """Appends one JSON line per event to `path`: fold started, epoch ended, fold ended."""

    def __init__(self, path: str | Path, model: str, n_folds: int, max_epochs: int):
        self.path, self.model, self.n_folds, self.max_epochs = Path(path), model, n_folds, max_epochs

    def _write(self, **event) -> None:
        event = {"model": self.model, "folds": self.n_folds, "max_epochs": self.max_epochs, **event}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(event) + "\n")

    def fold_started(self, fold: int) -> None:
        self._write(event="fold", fold=fold)

    def epoch_ended(self, fold: int, log) -> None:
        self._write(event="epoch", fold=fold, epoch=log.epoch, val_auc=_number(log.val_auc),
                    train_loss=log.train_loss, seconds=log.seconds)

    def fold_ended(self, result) -> None:
        self._write(event="done", fold=result.fold, best_epoch=result.best_epoch,
                    best_val_auc=_number(result.training.best_val_auc), seconds=result.seconds,
                    warning=result.warning)


def _number(value: float) -> float | None:
    """JSON has no NaN: a figure that does not exist (no validation split) is null."""
    return None if math.isnan(value) else value


def reporter(model: str, n_folds: int, max_epochs: int) -> Callbacks:
    """A ProgressFile when the driver asked for one (RBP_PROGRESS_FILE), else callbacks that do nothing."""
    path = os.environ.get(ENV)
    return ProgressFile(path, model, n_folds, max_epochs) if path else Callbacks()


def describe(event: dict) -> str:
    """One terminal line for an event."""
    where = f"{event['model']} fold {event['fold']}/{event['folds']}"
    if event["event"] == "fold":
        return f"{where}: training"
    if event["event"] == "epoch":
        figure = (f"validation AUC {event['val_auc']:.3f}" if event.get("val_auc") is not None
                  else f"training loss {event['train_loss']:.3f}")
        return f"{where}, epoch {event['epoch']}/{event['max_epochs']}: {figure} ({event['seconds']:.0f} s)"
    if event.get("best_val_auc") is None:
        done = f"{where} done: final epoch {event['best_epoch']} kept (no selection), {event['seconds']:.0f} s"
    else:
        done = (f"{where} done: best epoch {event['best_epoch']}, validation AUC {event['best_val_auc']:.3f}, "
                f"{event['seconds']:.0f} s")
    return done + (f"\n    WARNING: {event['warning']}" if event.get("warning") else "")


class Follower:
    """Reads a progress file as it grows, in a thread, and echoes each event; after `quiet` seconds
    without one it says the step is still running. Use as a context manager around the step."""

    def __init__(self, path: str | Path, echo, label: str, quiet: float = 25.0, poll: float = 1.0):
        self.path, self.echo, self.label, self.quiet, self.poll = Path(path), echo, label, quiet, poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._offset = 0
        self._last_line = ""

    def __enter__(self):
        self._start = self._heard = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._read()  # the events written just before the step ended

    def _read(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        complete, _, _ = data.rpartition(b"\n")  # a line being written is read next time
        if not complete:
            return
        self._offset += len(complete) + 1
        for line in complete.decode("utf-8", errors="replace").splitlines():
            try:
                self._last_line = describe(json.loads(line))
            except (ValueError, KeyError):
                continue
            self.echo(f"    {self._last_line}")
            self._heard = time.monotonic()

    def _follow(self) -> None:
        while not self._stop.wait(self.poll):
            self._read()
            now = time.monotonic()
            if now - self._heard >= self.quiet:
                last = f" (last: {self._last_line})" if self._last_line else ""
                self.echo(f"    {self.label}: still running, {now - self._start:.0f} s{last}")
                self._heard = now
