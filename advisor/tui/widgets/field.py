"""A labelled input that checks itself on every keystroke and shows its error inline.

    tunebench tui      # e.g. the Budget screen's hours and dollars

``Field(label, check, value=...)``: ``check(text) -> (value, error | None)``. The field posts
``FieldChecked`` so its screen can block Next while any field is invalid.
"""
from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, Static

from advisor.tui.messages import FieldChecked

Check = Callable[[str], tuple[object, str | None]]


class Field(Vertical):
    DEFAULT_CSS = """
    Field { height: auto; }
    Field > Horizontal { height: 1; }
    Field Label.field-label { width: 22; color: $text-muted; }
    Field Input { width: 1fr; }
    Field Static.field-hint { color: $text-muted; height: auto; padding-left: 22; }
    Field Static.field-error { color: $error; height: auto; padding-left: 22; display: none; }
    Field.-invalid Static.field-error { display: block; }
    Field.-invalid Input { background: $error 20%; }
    """

    def __init__(self, label: str, check: Check, value: str = "", *, hint: str = "", placeholder: str = "",
                 suggestions: list[str] | None = None, id: str | None = None):
        super().__init__(id=id)
        self.label, self.check, self.initial, self.hint = label, check, value, hint
        self.placeholder = placeholder
        self.suggester = SuggestFromList(suggestions, case_sensitive=False) if suggestions else None
        self.value, self.error = check(value)

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Label(self.label, classes="field-label")
            yield Input(self.initial, placeholder=self.placeholder, compact=True, suggester=self.suggester,
                        id=f"{self.id}-input" if self.id else None)
        if self.hint:
            yield Static(self.hint, classes="field-hint")
        yield Static("", classes="field-error")

    @property
    def valid(self) -> bool:
        return self.error is None

    @property
    def text(self) -> str:
        return self.query_one(Input).value

    def recheck(self) -> None:
        before = (self.value, self.error)
        self.value, self.error = self.check(self.text)
        self.set_class(self.error is not None, "-invalid")
        self.query_one(".field-error", Static).update(self.error or "")
        # Only a change is news: Next re-checks every field, and an unchanged one must not clear
        # the screen's status line or regenerate what the user edited.
        if (self.value, self.error) != before:
            self.post_message(FieldChecked(self.id or "", self.value, self.error))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.recheck()
