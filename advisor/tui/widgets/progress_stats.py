"""Live figures of a training child: stage, step, loss, tokens/s, memory, ETA.

    tunebench tui      # Progress screen
"""
from __future__ import annotations

from rich.table import Table
from textual.widgets import Static

from advisor.tui.fmt import gib_bytes, seconds


class ProgressStats(Static):
    def on_mount(self) -> None:
        self.state = {"stage": "starting", "step": 0, "max_steps": None, "loss": None, "tokens_per_s": None,
                      "rss_bytes": None, "eta_s": None, "status": "running"}
        self.refresh_table()

    def apply(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "stage_start":
            self.state.update(stage=f"{event['stage']} (stage {event['index'] + 1})", step=0,
                              max_steps=event.get("max_steps"), eta_s=None)
        elif kind == "step":
            self.state.update({k: event.get(k) for k in ("step", "max_steps", "tokens_per_s", "rss_bytes", "eta_s")})
            if event.get("loss") is not None:
                self.state["loss"] = event["loss"]
        elif kind == "stage_end":
            self.state["status"] = f"{event['stage']}: {event['status']}"
        elif kind == "done":
            self.state["status"] = f"done: {event['status']}"
        self.refresh_table()

    def set_status(self, text: str) -> None:
        self.state["status"] = text
        self.refresh_table()

    def refresh_table(self) -> None:
        s = self.state
        t = Table.grid(padding=(0, 2))
        t.add_column(style="dim")
        t.add_column()
        t.add_column(style="dim")
        t.add_column()
        steps = f"{s['step']}/{s['max_steps']}" if s["max_steps"] else str(s["step"])
        loss = "-" if s["loss"] is None else f"{s['loss']:.4f}"
        tps = "-" if s["tokens_per_s"] is None else f"{s['tokens_per_s']:,.0f}"
        mem = "-" if s["rss_bytes"] is None else f"{gib_bytes(s['rss_bytes'])} RSS"
        t.add_row("stage", str(s["stage"]), "step", steps)
        t.add_row("loss", loss, "tokens/s", tps)
        t.add_row("memory", mem, "ETA", seconds(s["eta_s"]))
        t.add_row("status", str(s["status"]), "", "")
        self.update(t)
