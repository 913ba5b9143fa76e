"""What the benchmarks share: the machine's name, device synchronisation, the Markdown table, a tracking
server over a fresh store."""

from __future__ import annotations

import collections
import contextlib
import json
import platform
import socket
import subprocess
import sys
import time
import traceback
import urllib.request
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(step, device: torch.device, steps: int, warmup: int = 3) -> float:
    """Seconds per call of `step` over `steps` calls, after `warmup` calls, the device synchronised."""
    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - start) / steps


@contextlib.contextmanager
def timed_parts(family, device: torch.device):
    """Within the block, the seconds a cross-validation spends in each part of its folds, added up
    into the dict yielded: building models, encoding, training epochs, the validation pass of each
    epoch, the test and validation predictions after training (each timed with the device
    synchronised). The functions are put back on leaving."""
    import rbp.cv
    import rbp.train

    spent = collections.defaultdict(float)
    patched = [(family, "build", "build"), (family, "encode", "encode"), (rbp.train, "_epoch", "train epochs"),
               (rbp.train, "predict", "validation each epoch"), (rbp.cv, "predict", "test and dev after training")]
    originals = [(owner, attribute, getattr(owner, attribute)) for owner, attribute, _ in patched]

    def timed(name, function):
        def wrapper(*args, **kwargs):
            sync(device)
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                sync(device)
                spent[name] += time.perf_counter() - start
        return wrapper

    for (owner, attribute, name), (_, _, function) in zip(patched, originals, strict=True):
        setattr(owner, attribute, timed(name, function))
    try:
        yield spent
    finally:
        for owner, attribute, function in originals:
            if owner is family:
                delattr(owner, attribute)  # back to the class's method
            else:
                setattr(owner, attribute, function)


def record_part(report: dict, name: str, measure, save) -> None:
    """`report[name] = measure()`, or, when it fails, its error in `report["failed"]` (printed with its
    traceback) so that the next part of a one-shot check still runs; then `save(report)`, so that a
    call cut short by its time limit still returns what it measured."""
    try:
        report[name] = measure()
    except Exception as error:  # noqa: BLE001 - reported, and the caller decides what failing means
        report["failed"][name] = f"{type(error).__name__}: {error}"
        traceback.print_exc()
    save(report)


def report(title: str, columns: dict[str, str], rows: list[dict], json_path: Path | None = None) -> None:
    """Print `rows` as a Markdown table (`columns`: row key -> header) under a dated title."""
    print(f"{title}, {date.today()}, {machine()}, torch {torch.__version__}\n")
    print("| " + " | ".join(columns.values()) + " |")
    print("|" + " --- |" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[key]) for key in columns) + " |")
    if json_path:
        json_path.write_text(json.dumps({"date": str(date.today()), "machine": machine(), "rows": rows}, indent=2))


def start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    """`rbp server` over the store in `folder` (created if new) on a free port: (process, its URI)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "rbp", "server", "--port", str(port), "--workers", "2",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "art")],
        stdout=(folder / "server.log").open("w"), stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=5):
                return process, uri
        except OSError:
            time.sleep(2)
    process.kill()
    raise SystemExit(f"the server did not answer: {(folder / 'server.log').read_text()[-2000:]}")
