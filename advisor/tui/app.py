"""The tunebench wizard app and its factory.

    tunebench tui [--db DIR]
    python -c "from advisor.tui.app import make_app; make_app('/tmp/db').run()"

``make_app(db_dir, advise_fn=advisor.ranking.advise, hardware=None, ...)`` wires the results
store (a DB folder), the advisor (any ``Profile -> list[Recommendation]``) and the detected
hardware (``advisor.tui.hardware.detect()`` unless given) into the app, so tests hand it a
temporary DB and fixed hardware and snapshots never depend on the machine.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from advisor.ranking import advise
from advisor.tui.hardware import Detected, catalog_key, detect
from advisor.tui.plan import Inputs


def default_run_name() -> str:
    return f"tui-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"


class TuneBenchApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "tunebench"
    BINDINGS = [Binding("ctrl+r", "results", "Results"), Binding("ctrl+q", "quit", "Quit", priority=True)]

    def __init__(self, db_dir: Path, advise_fn: Callable, detected: Detected, runs_dir: Path, reports_dir: Path,
                 run_name: Callable[[], str] = default_run_name, child_env: dict | None = None):
        super().__init__()
        self.db_dir, self.advise_fn, self.detected = Path(db_dir), advise_fn, detected
        self.runs_dir, self.reports_dir, self.run_name = Path(runs_dir), Path(reports_dir), run_name
        self.child_env = child_env or {}
        self.inputs = Inputs()
        self.recommendations: list[dict] = []
        self.active = None  # the running TrainProcess, if any
        self.inputs_from_hardware()

    def inputs_from_hardware(self) -> None:
        d, i = self.detected, self.inputs
        key = catalog_key(d.gpus[0].name) if d.gpus else None
        if key:
            i.set_gpu(key)
            i.num_gpus, i.memory_gib = len(d.gpus), round(d.gpus[0].memory_gib, 1)
        else:  # no GPU, or one the catalog lacks: plan for the CPU until the user picks a GPU
            i.set_gpu("cpu", d.host_memory_gib)
            if d.gpus:
                i.memory_gib = round(d.gpus[0].memory_gib, 1)

    def on_mount(self) -> None:
        from advisor.tui.screens.hardware import HardwareScreen

        self.push_screen(HardwareScreen())

    def action_results(self) -> None:
        from advisor.tui.screens.results import ResultsScreen

        if not isinstance(self.screen, ResultsScreen):
            self.push_screen(ResultsScreen())

    def on_unmount(self) -> None:
        # Quitting mid-run must not leave a training process group behind.
        if self.active is not None and self.active.poll() is None:
            self.active.cancel(grace_s=10)


def make_app(db_dir: Path | str | None = None, advise_fn: Callable = advise, hardware: Detected | None = None,
             runs_dir: Path | str | None = None, reports_dir: Path | str | None = None,
             run_name: Callable[[], str] = default_run_name, child_env: dict | None = None) -> TuneBenchApp:
    """The wizard over the results DB ``db_dir`` (default ``TUNEBENCH_HOME/db``)."""
    from bench.home import default_db, home

    db = Path(db_dir).expanduser() if db_dir else default_db()
    return TuneBenchApp(db, advise_fn, hardware if hardware is not None else detect(),
                        Path(runs_dir) if runs_dir else home() / "runs",
                        Path(reports_dir) if reports_dir else home() / "reports" / "tui", run_name, child_env)
