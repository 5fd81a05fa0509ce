"""Messages the wizard's widgets post instead of reaching into each other.

    tunebench tui

A widget posts; its screen (or the app) handles ``on_<widget>_<message>`` and updates its own
children. Payloads are plain values so handlers never hold on to another widget.
"""
from __future__ import annotations

from textual.message import Message


class FieldChecked(Message):
    """A validated field re-checked its value: ``error`` is None when valid."""

    def __init__(self, field_id: str, value, error: str | None):
        super().__init__()
        self.field_id, self.value, self.error = field_id, value, error


class InputsChanged(Message):
    """The recommendations' inputs bar changed a value: the screen re-ranks."""

    def __init__(self, changes: dict):
        super().__init__()
        self.changes = changes


class RecommendationHighlighted(Message):
    """The cursor moved to a recommendation (index into the ranked list)."""

    def __init__(self, index: int):
        super().__init__()
        self.index = index


class RankingDone(Message):
    """A re-rank finished in its worker: the ranked list (dicts) and how long it took."""

    def __init__(self, recommendations: list, seconds: float, error: str | None = None):
        super().__init__()
        self.recommendations, self.seconds, self.error = recommendations, seconds, error


class TrainEvent(Message):
    """One JSON-lines progress event from the child (bench/progress.py)."""

    def __init__(self, event: dict):
        super().__init__()
        self.event = event


class TrainLog(Message):
    """New lines of the child's log."""

    def __init__(self, lines: list[str]):
        super().__init__()
        self.lines = lines


class TrainExited(Message):
    """The child is gone: exit code, whether the user cancelled, and the run ids it recorded."""

    def __init__(self, returncode: int | None, cancelled: bool, run_ids: list[str]):
        super().__init__()
        self.returncode, self.cancelled, self.run_ids = returncode, cancelled, run_ids


class FilterChanged(Message):
    """The results filter text changed."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text


class DataInspected(Message):
    """The user's data was read in a worker: its DataInfo, or the one-line error; ``key`` = (path, format, model)."""

    def __init__(self, key: tuple, info, error: str | None):
        super().__init__()
        self.key, self.info, self.error = key, info, error
