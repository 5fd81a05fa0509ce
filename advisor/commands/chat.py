"""``tunebench chat``: try a finished run — its tuned model and the base it started from, same prompt.

    tunebench chat --run RUN_ID --prompt "What is 2 + 3?"
    tunebench chat --run RUN_ID            # offers the task's held-out prompts; interactive on a terminal

Replies stream as they are generated (greedy decoding, bench/chat.py). Without ``--prompt`` each
line read from stdin is a prompt (a number picks a starter; an empty line on a terminal quits); with
nothing on stdin the first starter is used.
"""
from __future__ import annotations

import sys

from advisor.cli import add_command
from common.errors import UserError


def register(sub):
    p = add_command(
        sub, "chat", "chat with a finished run: tuned vs base model on the same prompt, streamed",
        "  tunebench chat --run 3f2a...-0 --prompt \"What is 2 + 3?\"\n"
        "  tunebench chat --run RUN_ID --db ./results               # pick a held-out prompt, then type your own\n"
        "  echo 'Name a prime number.' | tunebench chat --run RUN_ID --max-new-tokens 32",
    )
    p.add_argument("--run", required=True, metavar="RUN_ID", help="a run id (see tunebench db show)")
    p.add_argument("--db", default=None, help="results folder (default $TUNEBENCH_HOME/db)")
    p.add_argument("--prompt", default=None, help="one prompt; without it, prompts come from stdin")
    p.add_argument("--max-new-tokens", type=int, default=64, help="tokens per reply (default 64)")
    p.add_argument("--tuned-only", action="store_true", help="skip the base model's reply")
    p.set_defaults(func=run)


def answer(session, prompt: str, args) -> None:
    for which in (("tuned",) if args.tuned_only else ("base", "tuned")):
        print(f"--- {which} ---", flush=True)
        reply = session.generate(prompt, which, on_token=lambda t: print(t, end="", flush=True),
                                 max_new_tokens=args.max_new_tokens)
        print(f"\n    ({reply.new_tokens} tokens, {reply.seconds:.1f} s)", flush=True)


def prompts(starters: list[str]):
    """Prompts from stdin; a number picks a starter. On a terminal, an empty line ends the chat."""
    tty = sys.stdin.isatty()
    got = False
    while True:
        try:
            line = input("you> " if tty else "")
        except EOFError:
            break
        line = line.strip()
        if not line:
            if tty:
                break
            continue
        got = True
        if line.isdigit() and 1 <= int(line) <= len(starters):
            line = starters[int(line) - 1]
            print(f"you> {line}")
        yield line
    if not got and not tty and starters:
        print(f"you> {starters[0]}")
        yield starters[0]


def run(args):
    from bench.trained import find_run

    if args.max_new_tokens < 1:
        raise UserError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    record = find_run(args.run, args.db)
    from bench.chat import ChatSession  # imports torch: after the cheap checks
    from bench.train import quiet_libraries
    from bench.trained import artifacts

    quiet_libraries()
    session = ChatSession(artifacts(record))
    r = session.record
    print(f"run {r['run_id']}: {r['stage']} on {r['model']}, task {r['task']} "
          f"(greedy, {args.max_new_tokens} new tokens)")
    if args.prompt is not None:
        answer(session, args.prompt, args)
        return 0
    starters = session.starters()
    if starters:
        print("held-out prompts (type a number to use one):")
        for i, s in enumerate(starters, 1):
            print(f"  {i}. {s[:120]}")
    for prompt in prompts(starters):
        answer(session, prompt, args)
    return 0
