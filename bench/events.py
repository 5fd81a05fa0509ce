"""Incremental readers of the files a running child appends to (its ``bench/progress.py`` events).

Each ``read()`` returns only the complete lines appended since the last call; a partial last line
(the child is mid-write, or was killed mid-write) waits for the next call. The matrix runner, the
stress benchmark and the TUI all poll a child this way.
"""
from __future__ import annotations

import json
from pathlib import Path


class LineTail:
    """New complete lines of a file, as bytes."""

    def __init__(self, path: Path):
        self.path, self.pos = Path(path), 0

    def new_lines(self) -> list[bytes]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.pos)
            chunk = fh.read()
        end = chunk.rfind(b"\n") + 1
        self.pos += end
        return chunk[:end].splitlines()


class EventTail(LineTail):
    """New complete JSON-lines events."""

    def read(self) -> list[dict]:
        out = []
        for line in self.new_lines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a foreign line never stops the stream
        return out
