"""What the benchmarks share: the machine's name, device synchronisation, the Markdown table."""

from __future__ import annotations

import json
import platform
from datetime import date
from pathlib import Path

import torch


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def report(title: str, columns: dict[str, str], rows: list[dict], json_path: Path | None = None) -> None:
    """Print `rows` as a Markdown table (`columns`: row key -> header) under a dated title."""
    print(f"{title}, {date.today()}, {machine()}, torch {torch.__version__}\n")
    print("| " + " | ".join(columns.values()) + " |")
    print("|" + " --- |" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[key]) for key in columns) + " |")
    if json_path:
        json_path.write_text(json.dumps({"date": str(date.today()), "machine": machine(), "rows": rows}, indent=2))
