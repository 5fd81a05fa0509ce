"""Try a finished run: generate from its trained stage and from the base it started from, same prompt.

    tunebench chat --run RUN_ID --prompt "What is 2 + 3?"
    python -c "from bench.chat import open_chat; s = open_chat('RUN_ID'); print(s.generate(s.starters()[0]).text)"

``ChatSession`` loads the two models lazily (fp32; the tuned one is the base with the saved
update restored, bench/trained.py) and keeps them for the next prompt. Prompts of an
instruction-style stage go through the tokenizer's chat template, as the trainer saw them
(methods/_trl.py ``as_chat``); a corpus stage (cpt) continues plain text. Decoding is greedy, so
a reply is reproducible and the base/tuned difference is the training's, not the sampler's.
``generate(..., on_token=f)`` calls ``f(text_piece)`` as tokens arrive (transformers'
``TextStreamer``); it blocks, so a UI calls it from a worker thread.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.trained import Artifacts, artifacts, find_run, load_base, load_tokenizer, load_tuned
from common.errors import UserError

WHICH = ("tuned", "base")
PROMPT_FORMATS = ("prompt_completion", "prompt_with_checker", "preference", "unpaired_preference", "mixture")
TEXT_STARTER_CHARS = 200  # a corpus task's starter: the opening of a held-out document


@dataclass(frozen=True)
class Reply:
    which: str
    prompt: str
    text: str
    new_tokens: int
    seconds: float


def starters(task: str, chat: bool, n: int = 3) -> list[str]:
    """The first ``n`` held-out (test split) prompts of ``task``; [] for a user's own data."""
    from bench.taskdata import get_task, load_records

    try:
        t = get_task(task)
    except UserError:
        return []  # a run on the user's own file: its label is not a standard task
    fmt = next((f for f in PROMPT_FORMATS if f in t.formats), None) if chat else None
    if fmt is None:
        return [r["text"][:TEXT_STARTER_CHARS] for r in load_records(task, "test", "text", n)]
    return [r["prompt"] for r in load_records(task, "test", fmt, n)]


def _streamer(tok, on_token: Callable[[str], None]):
    from transformers import TextStreamer

    class Callback(TextStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False):
            if text:
                on_token(text)

    return Callback(tok, skip_prompt=True, skip_special_tokens=True)


class ChatSession:
    """One run's base and tuned models, loaded on first use and kept."""

    def __init__(self, a: Artifacts):
        self.a = a
        self.tok = load_tokenizer(a)
        self._models: dict[str, object] = {}
        self._lock = threading.Lock()  # one generation at a time: the models are shared

    @property
    def record(self) -> dict:
        return self.a.record

    def starters(self, n: int = 3) -> list[str]:
        return starters(self.record["task"], self.a.chat, n)

    def model(self, which: str):
        if which not in WHICH:
            raise UserError(f"which must be one of {', '.join(WHICH)}, got {which!r}")
        if which not in self._models:
            self._models[which] = load_tuned(self.a) if which == "tuned" else load_base(self.a)
        return self._models[which]

    def encode(self, prompt: str):
        tok = self.tok
        if self.a.chat and tok.chat_template:
            text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                           add_generation_prompt=True)
            return tok(text, return_tensors="pt", add_special_tokens=False)
        return tok(prompt, return_tensors="pt")

    def generate(self, prompt: str, which: str = "tuned", on_token: Callable[[str], None] | None = None,
                 max_new_tokens: int = 64) -> Reply:
        """Greedy reply of the ``which`` model to ``prompt``; streams pieces to ``on_token``."""
        import torch

        if not prompt.strip():
            raise UserError("the prompt is empty")
        if max_new_tokens < 1:
            raise UserError(f"max new tokens must be >= 1, got {max_new_tokens}")
        with self._lock:
            model = self.model(which)
            inputs = self.encode(prompt).to(next(model.parameters()).device)
            t0 = time.perf_counter()
            with torch.no_grad():
                out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=self.tok.pad_token_id, eos_token_id=self.tok.eos_token_id,
                                     streamer=_streamer(self.tok, on_token) if on_token else None)
            seconds = time.perf_counter() - t0
        new = out[0, inputs["input_ids"].shape[1]:]
        return Reply(which=which, prompt=prompt, text=self.tok.decode(new, skip_special_tokens=True).strip(),
                     new_tokens=int(new.numel()), seconds=seconds)


def open_chat(run_id: str, db: Path | str | None = None) -> ChatSession:
    """A session for ``run_id`` in ``db`` (default ``$TUNEBENCH_HOME/db``); UserError if it cannot chat."""
    return ChatSession(artifacts(find_run(run_id, db)))


_SESSIONS: dict[str, ChatSession] = {}
_SESSIONS_LOCK = threading.Lock()


def generate(record: dict, prompt: str, which: str = "tuned", on_token: Callable[[str], None] | None = None,
             max_new_tokens: int = 64) -> Reply:
    """One reply for a run record (a row of ``read_runs``); the last run's models stay loaded."""
    rid = record["run_id"]
    with _SESSIONS_LOCK:
        if rid not in _SESSIONS:
            _SESSIONS.clear()  # keep one run's models in memory, not every run ever chatted with
            _SESSIONS[rid] = ChatSession(artifacts(record))
        session = _SESSIONS[rid]
    return session.generate(prompt, which, on_token, max_new_tokens)
