"""Step 1, Hardware: the detected GPUs (or "no GPU detected"), what to plan for, count and memory.

    tunebench tui
"""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Label, Select, Static

from advisor.catalogs import gpu
from advisor.tui.fmt import number
from advisor.tui.plan import gpu_options, parse_number
from advisor.tui.screens.base import WizardScreen
from advisor.tui.widgets.field import Field


class HardwareScreen(WizardScreen):
    STEP = "Hardware"

    def body(self) -> ComposeResult:
        app, i = self.app, self.app.inputs
        d = app.detected
        yield Static(f"[b]Detected:[/b] {d.summary}", id="detected")
        if not d.gpus:
            yield Static("Plan for this CPU, or pick a catalog GPU you intend to rent or buy.", classes="hint")
        with Horizontal(classes="row"):
            yield Label("Plan for", classes="field-label")
            yield Select(gpu_options(), value=i.gpu_key, allow_blank=False, compact=True, id="gpu")
        yield Field("GPU count", lambda t: parse_number(t, "GPU count", integer=True, minimum=1), str(i.num_gpus),
                    id="count")
        yield Field("Memory per GPU (GiB)", lambda t: parse_number(t, "memory", minimum=0, strict_min=True),
                    number(i.memory_gib), hint="prefilled from the catalog (host RAM for CPU); edit for your card",
                    id="memory")

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.value == Select.BLANK:
            return
        g = gpu(event.value)
        memory = self.app.detected.host_memory_gib if g.is_cpu else g.memory_gib
        self.query_one("#memory-input", Input).value = number(memory)

    def save(self) -> None:
        i = self.app.inputs
        key = self.query_one("#gpu", Select).value
        if key != i.gpu_key:
            i.set_gpu(key, self.app.detected.host_memory_gib)
        i.num_gpus = self.query_one("#count", Field).value
        i.memory_gib = self.query_one("#memory", Field).value

    def go_next(self) -> None:
        from advisor.tui.screens.budget import BudgetScreen

        self.app.push_screen(BudgetScreen())
