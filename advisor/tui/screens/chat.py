"""Chat: a finished run's base and tuned models side by side on the same prompt, tokens streaming in.

    tunebench tui      (Results: t on a run; Progress: t when the run is done)
    tunebench chat --run RUN_ID          # the same models on the command line

Starters are the task's first held-out prompts (bench/chat.py ``starters``): click one or type your
own prompt and press Enter. Base answers first, then tuned; decoding is greedy, so a reply is what
``bench.chat.generate`` returns for that prompt. Loading and generating block, so they run in a
worker thread that posts each token piece back with ``call_from_thread``. A run that cannot chat
(failed, nothing saved, a published figure) says why in the status line.
"""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Static

from advisor.tui import fmt

PANES = ("base", "tuned")
MAX_NEW_TOKENS = 64


class ReplyPane(Static):
    """One model's reply; ``text`` is what it shows (streamed pieces, then the final decoded reply)."""

    def __init__(self, which: str):
        super().__init__("", id=f"reply-{which}", classes="reply")
        self.which, self.text, self.pieces = which, "", 0  # pieces: streamed token pieces of the last reply
        self.border_title = which

    def reset(self) -> None:
        self.text, self.pieces = "", 0
        self.border_subtitle = "waiting…"
        self.update("")

    def append(self, piece: str) -> None:
        self.text += piece
        self.pieces += 1
        self.border_subtitle = "generating…"
        self.update(Text(self.text))

    def finish(self, text: str, footnote: str) -> None:
        self.text = text
        self.border_subtitle = footnote
        self.update(Text(text))


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


class ChatScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("ctrl+l", "clear", "Clear")]

    def __init__(self, record: dict):
        super().__init__()
        self.record = record
        self.session = None
        self.starters: list[str] = []
        self.busy = False
        self.replies: dict[str, object] = {}  # which -> bench.chat.Reply of the last prompt

    def compose(self) -> ComposeResult:
        r = self.record
        yield Header()
        yield Static(f"[b]{r['stage']}[/b] on {r['model']} / {r['task']}  ({r['run_id']})", id="chat-title")
        yield Horizontal(id="starters")
        with Horizontal(id="panes"):
            for which in PANES:
                with VerticalScroll(classes="pane"):
                    yield ReplyPane(which)
        yield Input(placeholder="your prompt, then Enter", id="prompt", disabled=True)
        yield Static("loading the run…", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"chat {self.record['run_id']}"
        self.run_worker(self.load, thread=True, group="chat")

    def set_status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#status", Static)
        status.update(Text(text))
        status.set_class(error, "-error")

    def load(self) -> None:
        """Worker: find the run's folders and tokenizer and its starters (the models load on the first prompt)."""
        from bench.chat import ChatSession
        from bench.trained import artifacts

        try:
            session = ChatSession(artifacts(self.record))
            starters = session.starters(3)
        except Exception as e:  # noqa: BLE001 -- one line in the status, never a traceback over the screen
            self.app.call_from_thread(self.set_status, one_line(e), True)
            return
        self.app.call_from_thread(self.loaded, session, starters)

    def loaded(self, session, starters: list[str]) -> None:
        self.session, self.starters = session, starters
        box = self.query_one("#starters", Horizontal)
        for i, text in enumerate(starters):
            box.mount(Button(text if len(text) <= 40 else text[:39] + "…", id=f"starter-{i}", compact=True))
        prompt = self.query_one("#prompt", Input)
        prompt.disabled = False
        prompt.focus()
        self.set_status(f"{len(starters)} starters from {self.record['task']}'s held-out prompts: click one, "
                        "or type a prompt" if starters else "type a prompt and press Enter")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id and event.button.id.startswith("starter-"):
            event.stop()
            self.ask(self.starters[int(event.button.id.split("-")[1])])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.ask(event.value)

    def ask(self, prompt: str) -> None:
        if self.session is None:
            return
        if self.busy:
            self.set_status("still answering the last prompt", error=True)
            return
        if not prompt.strip():
            self.set_status("the prompt is empty", error=True)
            return
        self.busy, self.replies = True, {}
        self.query_one("#prompt", Input).value = prompt
        for pane in self.query(ReplyPane):
            pane.reset()
        self.set_status(f"answering: {prompt}")
        self.run_worker(lambda: self.answer(prompt), thread=True, group="chat")

    def answer(self, prompt: str) -> None:
        """Worker: base, then tuned, streaming pieces into their panes."""
        call = self.app.call_from_thread
        try:
            for which in PANES:
                pane = self.query_one(f"#reply-{which}", ReplyPane)
                reply = self.session.generate(prompt, which, on_token=lambda s, p=pane: call(p.append, s),
                                              max_new_tokens=MAX_NEW_TOKENS)
                call(self.replied, pane, reply)
        except Exception as e:  # noqa: BLE001 -- a UserError (or a load failure) as one line
            call(self.done, one_line(e))
        else:
            call(self.done, None)

    def replied(self, pane: ReplyPane, reply) -> None:
        self.replies[pane.which] = reply
        pane.finish(reply.text, f"{reply.new_tokens} tokens in {fmt.seconds(reply.seconds)}")

    def done(self, error: str | None) -> None:
        """On the UI thread, so ``busy`` and the status line change together."""
        self.busy = False
        if error is not None:
            self.set_status(error, error=True)
        else:
            self.set_status("greedy replies, base and tuned; type another prompt or pick a starter")

    def action_clear(self) -> None:
        if not self.busy:
            for pane in self.query(ReplyPane):
                pane.finish("", "")
            self.query_one("#prompt", Input).value = ""


def open_chat(screen, record: dict) -> None:
    """Push a Chat screen for a run's record, or say in ``screen``'s status why it cannot chat."""
    if record.get("origin") == "published":
        screen.set_status(f"run {record['run_id']} is a published figure; nothing was saved to chat with", error=True)
    elif record["status"] != "ok":
        screen.set_status(f"run {record['run_id']} did not finish ({record['status']}); nothing to chat with",
                          error=True)
    else:
        screen.app.push_screen(ChatScreen(record))
