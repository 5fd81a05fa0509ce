"""The Recommendations screen's inputs in one row: GPU, count, hours, dollars, goal.

    tunebench tui      # Recommendations screen, top row

Every valid change posts ``InputsChanged`` (the screen re-ranks in place); an invalid value is
named in the line under the row and nothing is re-ranked until it is fixed.
"""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select, Static

from advisor.tui.fmt import number
from advisor.tui.messages import InputsChanged
from advisor.tui.plan import Inputs, goal_options, gpu_options, parse_number


def _num(v) -> str:
    return number(v)


class InputsBar(Vertical):
    DEFAULT_CSS = """
    InputsBar { height: auto; }
    InputsBar > Horizontal { height: 1; }
    InputsBar Label { width: auto; padding: 0 1 0 1; color: $text-muted; }
    InputsBar #bar-gpu { width: 1fr; min-width: 14; }
    InputsBar #bar-count { width: 4; }
    InputsBar #bar-hours { width: 7; }
    InputsBar #bar-usd { width: 8; }
    InputsBar #bar-goal { width: 1fr; min-width: 14; }
    InputsBar #bar-error { color: $error; height: auto; display: none; }
    InputsBar.-invalid #bar-error { display: block; }
    """

    def __init__(self, inputs: Inputs, id: str | None = None):
        super().__init__(id=id)
        self.inputs = inputs

    def compose(self) -> ComposeResult:
        i = self.inputs
        with Horizontal():
            yield Label("GPU")
            yield Select(gpu_options(), value=i.gpu_key, allow_blank=False, compact=True, id="bar-gpu")
            yield Label("×")
            yield Input(str(i.num_gpus), compact=True, id="bar-count")
            yield Label("h")
            yield Input(_num(i.budget_hours), compact=True, id="bar-hours")
            yield Label("$")
            yield Input(_num(i.budget_usd), compact=True, id="bar-usd")
            yield Label("goal")
            yield Select([(k, k) for _, k in goal_options()], value=i.goal, allow_blank=False, compact=True,
                         id="bar-goal")
        yield Static("", id="bar-error")

    def _read(self) -> tuple[dict, str | None]:
        count, e1 = parse_number(self.query_one("#bar-count", Input).value, "GPU count", integer=True, minimum=1)
        hours, e2 = parse_number(self.query_one("#bar-hours", Input).value, "hours", allow_empty=True)
        usd, e3 = parse_number(self.query_one("#bar-usd", Input).value, "dollars", allow_empty=True)
        changes = {"gpu_key": self.query_one("#bar-gpu", Select).value, "num_gpus": count, "budget_hours": hours,
                   "budget_usd": usd, "goal": self.query_one("#bar-goal", Select).value}
        return changes, e1 or e2 or e3

    def _changed(self) -> None:
        changes, error = self._read()
        self.set_class(error is not None, "-invalid")
        self.query_one("#bar-error", Static).update(error or "")
        if error is None:
            self.post_message(InputsChanged(changes))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._changed()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._changed()

    @property
    def valid(self) -> bool:
        return self._read()[1] is None
