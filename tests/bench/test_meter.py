"""bench/metrics.py Meter: the background CPU share says when a run was measured beside other work.

A process spinning next to the metered block shows up as background (one core of this machine's
cores for the window); the metered process's own work, however heavy, does not.
"""
import subprocess
import sys
import time

import psutil
import pytest

from bench.metrics import Meter


def _spin_here(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.mark.parametrize("neighbour,low,high", [(False, 0.0, 0.25), (True, 0.6 / psutil.cpu_count(), 1.0)])
def test_background_share_counts_other_processes_only(neighbour, low, high):
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if neighbour else None
    try:
        time.sleep(0.3 if neighbour else 0)  # the neighbour is running before the window opens
        with Meter() as m:
            _spin_here(1.5)
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
    assert low <= m.background_share() <= high


def test_background_share_is_none_before_the_meter_closes():
    assert Meter().background_share() is None
