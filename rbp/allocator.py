"""glibc's allocator kept from giving freed memory back to the system between a model's passes.

A CPU pass of a model allocates its activations and frees them again. glibc hands blocks larger than
its mmap threshold (dynamic, 128 KiB to 32 MiB) straight to and from the system, and gives back memory
freed at the top of its heap beyond its trim threshold; every pass then touches fresh pages, and each
first touch is a page fault. `tune` raises both thresholds for this process (`mallopt`) and, through
the environment (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`, read by glibc as a process
starts), for every process it starts: the notebooks' kernels and the workflow's jobs. The small
DNABERT scanning 4,920 windows with each of its 5 fold models in a new process took 5.3-5.5 s with them
against 7.6-9.1 s without (docs/benchmarks.md). A process keeps up to `TRIM` bytes of freed memory for its
next pass. Settings the user gave in the environment win; other C libraries (macOS, musl) are left
as they are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

MMAP = 32 << 20  # blocks up to this size come from the heap (glibc's largest mmap threshold)
TRIM = 256 << 20  # freed memory kept at the heap's top before it is given back
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": MMAP, "MALLOC_TRIM_THRESHOLD_": TRIM}


def tune() -> bool:
    """Raise glibc's thresholds here and for the processes started from here; whether glibc took them
    (False off glibc, and where the user set their own)."""
    if not sys.platform.startswith("linux"):
        return False
    own = {name: os.environ.setdefault(name, str(value)) for name, value in ENVIRONMENT.items()}
    if any(value != str(ENVIRONMENT[name]) for name, value in own.items()):
        return False  # the user's settings: glibc read them as this process started
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM))
