"""Export a finished run from Results: a merged Hugging Face folder or a GGUF q8_0 file.

    tunebench tui      (Results: e on a run)
    tunebench export --run RUN_ID --to hf --out PATH      # the same export on the command line

The path defaults to a name under the stage's output dir (``export-hf``, ``export-q8_0.gguf``);
type another to write elsewhere. The export (bench/export.py ``export_run``) merges the trained
update into its base, so it runs in a worker; when done the screen shows the path, size and time.
An existing path is never replaced: the library's one-line refusal shows in the status.
"""
from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Static

from advisor.tui import fmt
from advisor.tui.run_actions import EXPORTS, export_target
from advisor.tui.screens.chat import one_line


class ExportScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, record: dict):
        super().__init__()
        self.record = record
        self.busy = False
        self.result = None  # bench.export.Exported once done

    def compose(self) -> ComposeResult:
        r = self.record
        yield Header()
        yield Static(f"Export [b]{r['stage']}[/b] on {r['model']} / {r['task']}  ({r['run_id']})", id="export-title")
        yield Static("Out path (empty: a name under the run's output dir):", classes="hint")
        yield Input(placeholder=str(Path(r.get("output_dir") or "-") / "export-…"), id="export-out")
        with Horizontal(id="export-buttons"):
            yield Button("HF folder (safetensors)", id="export-hf", variant="primary")
            yield Button("GGUF q8_0", id="export-gguf")
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"export {self.record['run_id']}"

    def set_status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#status", Static)
        status.update(Text(text))
        status.set_class(error, "-error")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        key = (event.button.id or "").removeprefix("export-")
        if key in EXPORTS:
            self.start(key)

    def start(self, key: str) -> None:
        from common.errors import UserError

        if self.busy:
            self.set_status("an export is still running", error=True)
            return
        try:
            to, quant, default = export_target(self.record, key)
        except UserError as e:
            self.set_status(str(e), error=True)
            return
        typed = self.query_one("#export-out", Input).value.strip()
        out = Path(typed).expanduser() if typed else default
        self.busy = True
        self.set_status(f"exporting {to}{' ' + quant if to == 'gguf' else ''} to {out}…")
        self.run_worker(lambda: self.export(to, quant, out), thread=True, group="export")

    def export(self, to: str, quant: str, out: Path) -> None:
        """Worker: merge and write; the result or the refusal goes back to the UI thread."""
        from bench.export import export_run

        try:
            done = export_run(self.record, to, out, quant=quant)
        except Exception as e:  # noqa: BLE001 -- one line in the status, never a traceback over the screen
            self.app.call_from_thread(self.finished, None, one_line(e))
        else:
            self.app.call_from_thread(self.finished, done, None)

    def finished(self, done, error: str | None) -> None:
        """On the UI thread, so ``busy``, ``result`` and the status line change together."""
        self.busy = False
        if error is not None:
            self.set_status(error, error=True)
            return
        self.result = done
        note = f" ({done.note})" if done.note else ""
        size = f"{done.bytes / 2**20:.1f} MiB"
        self.set_status(f"wrote {done.kind} {done.path}: {size} in {fmt.seconds(done.seconds)}{note}")
