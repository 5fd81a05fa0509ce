"""Step 6, Progress: live loss, tokens/s, memory and ETA from the child's JSON-lines events.

    tunebench tui

``c`` cancels: SIGTERM to the child's process group (it records the stage as 'cancelled'), then
SIGKILL after a grace period. When the child is gone, ``r`` (or ctrl+n) opens Results with the
new runs highlighted, and ``t`` chats with the last stage it trained (screens/chat.py). The same
screen replays a finished run folder opened from Results.
"""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Log, ProgressBar, Sparkline, Static

from advisor.tui.messages import TrainEvent, TrainExited, TrainLog
from advisor.tui.screens.base import WizardScreen
from advisor.tui.widgets.progress_stats import ProgressStats
from advisor.tui.widgets.train_watcher import TrainWatcher


class ProgressScreen(WizardScreen):
    STEP = "Progress"
    BINDINGS = [Binding("c", "cancel", "Cancel run"), Binding("r", "results", "Results"),
                Binding("t", "chat", "Chat", show=False),  # named in the status line once the run is done
                Binding("ctrl+n", "results", "Next", priority=True), Binding("escape", "back", "Back")]

    def __init__(self, source, title: str = "", live: bool = True, estimate: str = ""):
        super().__init__()
        self.source, self.run_title, self.live, self.estimate = source, title, live, estimate
        self.losses: list[float] = []
        self.exited: TrainExited | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"[b]{self.run_title}[/b]", id="run-title")
        if self.estimate:  # what the launch expected, to read the live figures against
            yield Static(self.estimate, id="run-estimate")
        yield ProgressStats(id="stats")
        yield ProgressBar(total=None, show_eta=False, id="bar")
        yield Static("loss", classes="hint")
        yield Sparkline([], id="loss")
        yield Log(max_lines=500, id="log")
        yield Static("", id="status")
        yield TrainWatcher(self.source, id="watcher")
        yield Footer()

    def on_train_event(self, event: TrainEvent) -> None:
        e = event.event
        self.query_one(ProgressStats).apply(e)
        bar = self.query_one(ProgressBar)
        if e.get("event") == "stage_start":
            bar.update(total=e.get("max_steps"), progress=0)
        elif e.get("event") == "step":
            bar.update(total=e.get("max_steps"), progress=e.get("step") or 0)
            if e.get("loss") is not None:
                self.losses.append(float(e["loss"]))
                self.query_one(Sparkline).data = list(self.losses)

    def on_train_log(self, event: TrainLog) -> None:
        self.query_one(Log).write_lines(event.lines)

    def on_train_exited(self, event: TrainExited) -> None:
        self.exited = event
        if self.app.active is self.source:
            self.app.active = None
        runs = ", ".join(event.run_ids) or "none"
        if self.live:
            how = "cancelled" if event.cancelled else ("finished" if event.returncode == 0 else f"exit {event.returncode}")
            self.query_one(ProgressStats).set_status(how)
            chat = ", t: Chat" if event.run_ids else ""
            self.set_status(f"Run {how}; recorded: {runs}. r: Results{chat}", error=event.returncode not in (0, None)
                            and not event.cancelled)
        else:
            self.set_status(f"Replay of a finished run; records: {runs}. esc: back")

    def action_cancel(self) -> None:
        if self.exited is not None or not self.live or getattr(self, "cancelling", False):
            return
        self.cancelling = True
        self.query_one(ProgressStats).set_status("cancelling (SIGTERM to the process group)…")
        self.run_worker(self.source.cancel, thread=True, group="cancel")

    def action_results(self) -> None:
        if self.exited is None:
            self.set_status("still running: c cancels it; Results opens when it is done", error=True)
            return
        from advisor.tui.screens.results import ResultsScreen

        self.app.push_screen(ResultsScreen(highlight=self.exited.run_ids))

    def action_chat(self) -> None:
        """Chat with the last stage the finished run recorded (the one a stack ends with)."""
        if self.exited is None or not self.exited.run_ids:
            self.set_status("chat opens when the run is done and recorded", error=True)
            return
        import polars as pl

        from advisor.tui.screens.chat import open_chat
        from bench.results import read_runs

        rid = self.exited.run_ids[-1]
        frame = read_runs(self.app.db_dir, on_damaged=lambda p, m: None).filter(pl.col("run_id") == rid)
        if frame.is_empty():
            self.set_status(f"run {rid} is not in {self.app.db_dir}", error=True)
            return
        open_chat(self, frame.row(0, named=True))

    def action_back(self) -> None:
        if self.live and self.exited is None:
            self.set_status("still running: c cancels it first", error=True)
            return
        super().action_back()
