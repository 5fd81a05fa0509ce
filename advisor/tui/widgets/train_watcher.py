"""Polls a training child (or a finished run's folder) and posts its events, log lines and exit.

    tunebench tui      # Progress screen

The source needs ``events.read()``, ``log.read()``, ``poll()``, ``cancelled`` and ``settle()``:
``advisor.tui.process.TrainProcess`` for a live child, ``FinishedRun`` to replay a recorded one.
"""
from __future__ import annotations

from textual.widget import Widget

from advisor.tui.messages import TrainEvent, TrainExited, TrainLog

POLL_S = 0.3


class TrainWatcher(Widget):
    DEFAULT_CSS = "TrainWatcher { display: none; }"

    def __init__(self, source, id: str | None = None):
        super().__init__(id=id)
        self.source = source
        self.run_ids: list[str] = []
        self.stage_ends: list[dict] = []
        self.finished = False

    def on_mount(self) -> None:
        self.poll_now()
        if not self.finished:
            self.timer = self.set_interval(POLL_S, self.poll_now)

    def poll_now(self) -> None:
        if self.finished:
            return
        rc = self.source.poll()  # read the exit first: events written before exit are then all on disk
        for e in self.source.events.read():
            if e.get("event") == "stage_end":
                self.stage_ends.append(e)
                if e.get("run_id"):
                    self.run_ids.append(e["run_id"])
            self.post_message(TrainEvent(e))
        lines = self.source.log.read()
        if lines:
            self.post_message(TrainLog(lines))
        if rc is not None:
            self.finished = True
            if hasattr(self, "timer"):
                self.timer.stop()
            settled = self.source.settle(self.stage_ends)
            if settled:
                self.run_ids.append(settled["run_id"])
            self.post_message(TrainExited(rc, self.source.cancelled, list(self.run_ids)))
