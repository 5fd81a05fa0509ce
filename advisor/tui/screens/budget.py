"""Step 2, Budget: hours and/or dollars (empty = no limit), $/hour prefilled from the catalog.

    tunebench tui
"""
from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from advisor.tui.fmt import number, usd
from advisor.tui.plan import parse_number
from advisor.tui.screens.base import WizardScreen
from advisor.tui.widgets.field import Field


def _num(v) -> str:
    return number(v)


class BudgetScreen(WizardScreen):
    STEP = "Budget"

    def body(self) -> ComposeResult:
        i = self.app.inputs
        g = i.gpu()
        yield Static(f"Planning for {i.num_gpus}× {g.name}. Leave a budget empty for no limit.", classes="hint")
        yield Field("Hours (wall clock)", lambda t: parse_number(t, "hours", allow_empty=True), _num(i.budget_hours),
                    id="hours")
        yield Field("Dollars", lambda t: parse_number(t, "dollars", allow_empty=True), _num(i.budget_usd),
                    id="usd")
        yield Field("$ per GPU-hour", lambda t: parse_number(t, "$ per hour"), number(i.usd_per_hour),
                    hint=f"catalog price for {g.key}: {usd(g.usd_per_hour)}/h; cost = hours × GPUs × $/h",
                    id="rate")

    def save(self) -> None:
        i = self.app.inputs
        i.budget_hours = self.query_one("#hours", Field).value
        i.budget_usd = self.query_one("#usd", Field).value
        i.usd_per_hour = self.query_one("#rate", Field).value

    def go_next(self) -> None:
        from advisor.tui.screens.task import TaskScreen

        self.app.push_screen(TaskScreen())
