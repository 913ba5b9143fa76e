"""Where the project lives (the root that holds params/, notebooks/, mlruns/ and outputs/), and how
its runs and folders are named."""

from __future__ import annotations

import os
import re
from pathlib import Path


def project_root() -> Path:
    """The project root, whatever the working directory of the process or notebook kernel.

    `RBP_ROOT` wins; otherwise the checkout this package was installed from (editable install);
    otherwise the nearest parent of the working directory that holds `params/` and `notebooks/`.
    """
    if os.environ.get("RBP_ROOT"):
        return Path(os.environ["RBP_ROOT"]).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists() and (here / "notebooks").is_dir():
        return here
    cwd = Path.cwd().resolve()
    for candidate in (cwd, *cwd.parents):
        if (candidate / "params").is_dir() and (candidate / "notebooks").is_dir():
            return candidate
    return cwd


def resolve(path: str | Path) -> Path:
    """A path from params: absolute as given, relative ones taken from the project root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else project_root() / path


def new_run_name(dataset: str, step: str | None = None) -> str:
    """`<dataset>-<YYYYmmdd-HHMMSS>[-step]`: a synthetic run says so in its name."""
    from datetime import datetime

    stamp = f"{dataset}-{datetime.now():%Y%m%d-%H%M%S}"
    return f"{stamp}-{step}" if step else stamp


def check_writable(folder: Path, key: str) -> None:
    """Refuse a folder that cannot be written (no permission, a read-only mount, an immutable folder),
    naming `key`, by trying to make a folder in it; what the check made is removed again."""
    import os
    import tempfile

    from rbp.errors import RbpError

    folder = Path(folder)
    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=".rbp-write-check-", dir=folder))
    except OSError as exc:
        raise RbpError(f"{key}: {folder} cannot be written ({exc.strerror or exc}); give a folder you can write "
                       "to") from None
    finally:
        for made in missing:  # deepest first
            try:
                made.rmdir()
            except OSError:
                pass


def claim_run_dir(folder: Path, name: str) -> Path:
    """Create `folder/name`, or `name-2`, `name-3`, ... when a run started in the same second owns
    it; mkdir is atomic, so two pipelines never share an output folder."""
    from rbp.errors import RbpError

    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = folder / (name if n == 1 else f"{name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RbpError(f"output_dir: {folder} holds too many runs named {name}*")


def slug(label: str, separator: str = "-") -> str:
    """A model label as an MLflow key or folder name: `DNABERT (pretrained)` -> `dnabert-pretrained`
    (with `separator="_"`: `dnabert_pretrained`, as metric names have it)."""
    return re.sub(r"[^a-z0-9.]+", separator, label.lower()).strip(separator) or "model"
