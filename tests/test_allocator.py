"""rbp.allocator: glibc's thresholds raised here and for the processes started from here."""

import os
import subprocess
import sys

import pytest

from rbp import allocator

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")


def test_tune_raises_the_thresholds_here_and_for_every_process_started_from_here(monkeypatch):
    for name in allocator.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    assert allocator.tune()
    child = subprocess.run([sys.executable, "-c", "import os; print(os.environ['MALLOC_MMAP_THRESHOLD_'], "
                            "os.environ['MALLOC_TRIM_THRESHOLD_'])"], capture_output=True, text=True, check=True)
    assert child.stdout.split() == [str(allocator.MMAP), str(allocator.TRIM)]


def test_the_users_own_settings_win(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert not allocator.tune()
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "1000"
