"""``tunebench tui``: the wizard from GPU, budget, task and your data to a launched, monitored, recorded run.

    tunebench tui
    tunebench tui --db /tmp/tb-db

The Task step reads your data file (format, rows, token lengths feed the estimate); Launch runs
the recommended stack on it with the estimate's micro-batch and checkpointing (a try-out on a
standard task is the other choice), and Results shows the launch's estimate next to what was
measured. The app lives in ``advisor/tui/`` (app.py, screens/, widgets/, app.tcss, messages.py).
"""
from pathlib import Path

from advisor.cli import add_command
from common.errors import UserError

EXAMPLES = """  tunebench tui                        # Task step: give your data file (e.g. ~/pairs.jsonl) and a model
  tunebench tui --db ~/tb-db           # read evidence from and record launched runs into this DB
  TUNEBENCH_HOME=/data/tb tunebench tui"""


def register(sub):
    p = add_command(sub, "tui", "open the wizard: hardware, budget, task -> ranked stacks -> launch -> progress -> results",
                    EXAMPLES)
    p.add_argument("--db", type=Path, help="results database folder (default: TUNEBENCH_HOME/db)")
    p.set_defaults(func=run)


def run(args):
    import sys

    if args.db is not None and args.db.exists() and not args.db.is_dir():
        raise UserError(f"--db {args.db} exists and is not a folder")
    if not sys.stdout.isatty():
        raise UserError("tunebench tui needs a terminal (stdout is not a TTY); use tunebench advise for scripts")
    from advisor.tui.app import make_app

    make_app(args.db).run()
    return 0
