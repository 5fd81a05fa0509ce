"""What every wizard step shares: header with the step, Next (ctrl+n / Enter) blocked by bad fields, Back (esc).

    tunebench tui
"""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from advisor.tui.messages import FieldChecked
from advisor.tui.widgets.field import Field

STEPS = ("Hardware", "Budget", "Task", "Recommendations", "Launch", "Progress", "Results")


class WizardScreen(Screen):
    BINDINGS = [Binding("ctrl+n", "next", "Next", priority=True), Binding("escape", "back", "Back")]
    STEP = ""

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="body"):
            yield from self.body()
        yield Static("", id="status")
        yield Footer()

    def body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.sub_title = f"{STEPS.index(self.STEP) + 1}/{len(STEPS)} {self.STEP}" if self.STEP else ""

    def set_status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#status", Static)
        status.update(text)
        status.set_class(error, "-error")

    def extra_errors(self) -> list[str]:
        """Errors that are not a single field's (e.g. nothing selected)."""
        return []

    def action_next(self) -> None:
        fields = list(self.query(Field))
        for f in fields:
            f.recheck()
        bad = [f for f in fields if not f.valid]
        errors = [f.error for f in bad] + self.extra_errors()
        if errors:
            self.set_status(f"Fix before going on: {errors[0]}", error=True)
            if bad:
                bad[0].query_one(Input).focus()
            return
        self.set_status("")
        self.save()
        self.go_next()

    def save(self) -> None:
        """Copy the fields into the app's Inputs."""

    def go_next(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} is the last step")

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()

    def on_field_checked(self, event: FieldChecked) -> None:
        if event.error is None and not any(not f.valid for f in self.query(Field)):
            self.set_status("")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_next()
