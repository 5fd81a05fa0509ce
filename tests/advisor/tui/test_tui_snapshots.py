"""SVG snapshots of every wizard screen at 80x24 and 120x40 (pytest-textual-snapshot).

    .venv/bin/python -m pytest -q tests/advisor/tui/test_tui_snapshots.py
    .venv/bin/python -m pytest -q tests/advisor/tui/test_tui_snapshots.py --snapshot-update   # after a UI change

Deterministic by construction: fixed hardware (no NVML), a DB with fixed records and timestamps
at a fixed path, a fixed run name, and the Progress screen replaying a recorded real run.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from tui_records import NO_GPU, RECORDED_RUN, seed_db, seed_launched

from advisor.tui.app import make_app

ROOT = Path("/tmp/tunebench-tui-snapshots")  # fixed: paths appear on the Launch and Results screens
SIZES = {"80x24": (80, 24), "120x40": (120, 40)}


@pytest.fixture(scope="module")
def snap_root():
    shutil.rmtree(ROOT, ignore_errors=True)
    seed_db(ROOT / "db")
    # A fixed, empty home too: the Launch screen names the models folder and which models are local.
    mp = pytest.MonkeyPatch()
    mp.setenv("TUNEBENCH_HOME", str(ROOT / "home"))
    yield ROOT
    mp.undo()
    shutil.rmtree(ROOT, ignore_errors=True)


def new_app():
    return make_app(ROOT / "db", hardware=NO_GPU, runs_dir=ROOT / "runs", reports_dir=ROOT / "reports",
                    run_name=lambda: "tui-snap")


async def settle(pilot):
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def progress_replay(pilot):
    from advisor.tui.process import FinishedRun
    from advisor.tui.screens.progress import ProgressScreen

    screen = ProgressScreen(FinishedRun(RECORDED_RUN), title="sft:lora on tiny-llama / smoke", live=False)
    await pilot.app.push_screen(screen)
    await pilot.pause()
    while screen.exited is None:
        await pilot.pause(0.05)
    await pilot.pause()


def keys_then_settle(*keys):
    async def run(pilot):
        await pilot.pause()
        for k in keys:
            await pilot.press(k)
            await settle(pilot)
        # A worker's result arrives as a message and tables size their columns on a later refresh:
        # a fixed pause caught the header before that in a fresh-clone CI (Recommendations, three times,
        # the last with two equal renders 0.1 s apart): repaint the whole screen, then wait for stillness.
        await settle(pilot)
        pilot.app.screen.refresh(layout=True)
        await still(pilot)
    return run


async def still(pilot, timeout: float = 10.0, quiet: int = 3) -> None:
    """Pause until ``quiet`` + 1 renders 0.15 s apart are the same (or ``timeout`` passes)."""
    last, same, t0 = None, 0, time.monotonic()
    while time.monotonic() - t0 < timeout:
        await pilot.pause(0.15)
        shot = pilot.app.export_screenshot()
        same = same + 1 if shot == last else 0
        if same >= quiet:
            return
        last = shot


SCREENS = {
    "hardware": keys_then_settle(),
    "budget": keys_then_settle("ctrl+n"),
    "task": keys_then_settle("ctrl+n", "ctrl+n"),
    "recommendations": keys_then_settle("ctrl+n", "ctrl+n", "ctrl+n"),
    "launch": keys_then_settle("ctrl+n", "ctrl+n", "ctrl+n", "enter"),
    "progress": progress_replay,
    "results": keys_then_settle("ctrl+r"),
    "compare": keys_then_settle("ctrl+r", "space", "down", "space", "c"),
    "report": keys_then_settle("ctrl+r", "slash", "t", "a", "s", "k", "=", "s", "m", "o", "k", "e", "enter", "r"),
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("screen", SCREENS)
def test_screen_snapshot(snap_root, snap_compare, screen, size):
    assert snap_compare(new_app(), terminal_size=SIZES[size], run_before=SCREENS[screen])


def test_results_show_estimate_next_to_measured(snap_compare):
    """A run the wizard launched: est GiB / est train beside the measured peak GiB / train (1.9 vs 2.4 GiB)."""
    root = ROOT.with_name(ROOT.name + "-launched")  # fixed: the DB path shows in the status line
    shutil.rmtree(root, ignore_errors=True)
    db = seed_launched(root)
    app = make_app(db, hardware=NO_GPU, runs_dir=root / "runs", reports_dir=root / "reports", run_name=lambda: "x")
    try:
        assert snap_compare(app, terminal_size=(150, 12), run_before=keys_then_settle("ctrl+r"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
