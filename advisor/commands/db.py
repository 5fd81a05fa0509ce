"""``tunebench db show|sql|export|merge``: read, query, export and merge the results database.

    tunebench db show --format json
    tunebench db show --where "method = 'lora' AND status = 'ok'" --limit 20
    tunebench db sql "SELECT method, median(tokens_per_s) AS tps FROM runs GROUP BY method ORDER BY tps DESC"
    tunebench db export --out results.csv
    tunebench db merge machine-a/db machine-b/db --db merged-db

Damaged files are reported one line each on stderr and skipped; the rest still reads. ``db sql``
and ``db show --where`` run read-only queries only (SELECT or WITH ... SELECT, one statement).
Large databases keep an index in ``<db>/_index`` (a cache; see ``bench.results``).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from advisor.cli import add_command
from common.errors import UserError

DEFAULT_COLUMNS = ["run_id", "stage", "model", "task", "seed", "status", "trainable_params", "tokens_per_s",
                   "peak_rss_bytes", "train_loss", "eval_loss", "wall_time_s"]


def register(sub):
    p = add_command(sub, "db", "show, query (SQL), export and merge the results database",
                    "  tunebench db show\n  tunebench db sql \"SELECT method, median(tokens_per_s) FROM runs GROUP BY method\"\n"
                    "  tunebench db export --out results.parquet\n  tunebench db merge other/db --db mine/db")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    sh = add_command(s, "show", "print the records",
                     "  tunebench db show\n  tunebench db show --format json --columns run_id,method,status\n"
                     "  tunebench db show --db /tmp/tb-db --format csv --all-columns\n"
                     "  tunebench db show --where \"task = 'gsm-symbolic' AND status = 'ok'\" --limit 10")
    sh.add_argument("--format", choices=["table", "json", "csv"], default="table")
    sh.add_argument("--columns", help="comma-separated columns (default: a summary set; see --all-columns)")
    sh.add_argument("--all-columns", action="store_true", help="every schema column")
    sh.add_argument("--limit", type=int, help="at most N rows (newest first)")
    sh.add_argument("--where", help="SQL condition over the columns, e.g. \"method = 'lora' AND seed = 0\"")
    _db_arg(sh)
    sh.set_defaults(func=show)

    q = add_command(s, "sql", "run a read-only polars SQL query (SELECT or WITH ... SELECT); the table is called runs",
                    "  tunebench db sql \"SELECT method, median(tokens_per_s) FROM runs GROUP BY method\"\n"
                    "  tunebench db sql \"SELECT status, count(*) AS n FROM runs GROUP BY status\" --format json")
    q.add_argument("query", help="one SELECT (or WITH ... SELECT) over the table runs")
    q.add_argument("--format", choices=["table", "json", "csv"], default="table")
    _db_arg(q)
    q.set_defaults(func=sql)

    e = add_command(s, "export", "write every readable record to one parquet, csv or json file",
                    "  tunebench db export --out results.parquet\n  tunebench db export --out results.csv --force")
    e.add_argument("--out", type=Path, required=True, help="FILE.parquet, FILE.csv or FILE.json")
    e.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    _db_arg(e)
    e.set_defaults(func=export)

    m = add_command(s, "merge", "copy records from other databases (dirs or exported .parquet files) into --db; "
                                "run ids already present are skipped",
                    "  tunebench db merge shard0/db shard1/db --db all-db\n  tunebench db merge results.parquet --db mine")
    m.add_argument("sources", nargs="+", type=Path, help="result folders or exported parquet files")
    _db_arg(m)
    m.set_defaults(func=merge)
    _register_import(s)
    _register_import_campaign(s)


def _db_arg(p):
    p.add_argument("--db", type=Path, help="results database folder (default: TUNEBENCH_HOME/db)")


def _db(args, must_exist: bool = True) -> Path:
    from bench.home import default_db

    db = Path(args.db).expanduser() if args.db else default_db()
    if db.exists() and not db.is_dir():
        raise UserError(f"--db {db} is not a folder")
    if must_exist and not db.is_dir():
        raise UserError(f"results database {db} does not exist (run tunebench train or bench run first, or pass --db)")
    return db


def _read(db: Path):
    from bench.results import read_runs

    return read_runs(db)


# Statements that change or reach outside the data; any of them anywhere (outside string literals,
# quoted names and comments) refuses the query, as do several statements.
_WRITES = {"insert", "update", "delete", "create", "drop", "alter", "copy", "attach", "detach", "truncate",
           "merge", "grant", "revoke", "pragma", "vacuum", "install", "load", "export", "import", "set", "call"}
# Other words a statement can start with; a first word that is no SQL keyword at all (a typo such
# as SELEC) goes on to the SQL engine, which names the syntax error.
_STATEMENTS = _WRITES | {"replace", "upsert", "show", "explain", "describe", "desc", "use", "begin", "commit",
                         "rollback", "declare", "prepare", "execute", "analyze", "reset", "comment", "lock",
                         "unload", "refresh", "start", "savepoint", "release", "deallocate", "cache", "uncache",
                         "kill", "flush", "discard", "listen", "notify", "unlisten", "checkpoint", "cluster",
                         "reindex", "optimize", "msck", "table", "values", "from"}


def _code(query: str) -> str:
    """The query with string literals, quoted names and comments blanked out."""
    out, i, n = [], 0, len(query)
    while i < n:
        c = query[i]
        if c in "'\"":
            j = i + 1
            while j < n and not (query[j] == c and (j + 1 >= n or query[j + 1] != c)):
                j += 2 if query[j] == c else 1  # a doubled quote is an escaped one
            i = j + 1
            out.append(" ")
        elif query.startswith("--", i):
            j = query.find("\n", i)
            i = n if j < 0 else j
            out.append(" ")
        elif query.startswith("/*", i):
            j = query.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def read_only_check(query: str) -> None:
    """Raise UserError unless ``query`` is one read-only statement (SELECT, or WITH ... SELECT)."""
    code = _code(query)
    words = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", code)
    first = words[0] if words else query.strip().split(maxsplit=1)[0] if query.strip() else ""
    bad = None
    if first.lower() not in ("select", "with") and (
            first.lower() in _STATEMENTS or not words or not code.lstrip().startswith(first)):
        bad = first
    else:
        bad = next((w for w in words if w.lower() in _WRITES), None)
        statements = [part for part in code.split(";") if part.strip()]
        if bad is None and len(statements) > 1:
            bad = f"{(re.findall(r'[A-Za-z_]+', statements[1]) or [';'])[0]}' after ';"
    if bad is not None:
        raise UserError(f"db sql runs read-only queries (SELECT ...); got '{bad[:40]}'")


def _where(df, where: str):
    import polars as pl

    query = f"SELECT * FROM runs WHERE {where}"
    try:
        read_only_check(query)
    except UserError:
        raise UserError(f"--where takes one read-only condition (e.g. \"method = 'lora'\"); got {where[:60]!r}") from None
    try:
        return pl.SQLContext(runs=df).execute(query, eager=True)
    except Exception as e:
        raise UserError(f"--where {where[:60]!r}: {str(e).splitlines()[0]} (columns as in db show --all-columns)") from None


def _print(df, fmt: str) -> None:
    import polars as pl

    if fmt == "json":
        print(json.dumps(df.to_dicts(), indent=2, default=str))
    elif fmt == "csv":
        flat = df.with_columns([pl.col(c).cast(pl.String) for c, t in df.schema.items() if t == pl.Datetime])
        sys.stdout.write(flat.write_csv())
    else:
        with pl.Config(tbl_rows=max(len(df), 1), tbl_cols=len(df.columns), fmt_str_lengths=40, tbl_width_chars=240,
                       tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
            print(df)


def show(args):
    import polars as pl

    from bench.schema import SCHEMA

    df = _read(_db(args))
    if args.columns:
        cols = [c.strip() for c in args.columns.split(",") if c.strip()]
        bad = [c for c in cols if c not in SCHEMA]
        if bad:
            from common.errors import unknown

            raise unknown("column", bad[0], SCHEMA)
    else:
        cols = list(SCHEMA) if args.all_columns or args.format == "json" else DEFAULT_COLUMNS
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be >= 1, got {args.limit}")
    if args.where:
        df = _where(df, args.where)
    df = df.sort("created_at", descending=True, nulls_last=True)
    if args.limit:
        df = df.head(args.limit)
    _print(df.select(cols), args.format)
    if args.format == "table":
        counts = df.group_by("status").len().sort("status").iter_rows() if len(df) else []
        print(f"{len(df)} records" + "".join(f", {n} {s}" for s, n in counts), file=sys.stderr)
    return 0


def sql(args):
    import polars as pl

    read_only_check(args.query)
    df = _read(_db(args))
    try:
        out = pl.SQLContext(runs=df).execute(args.query, eager=True)
    except Exception as e:
        raise UserError(f"SQL error: {str(e).splitlines()[0]} (the table is called runs)") from None
    _print(out, args.format)
    return 0


def export(args):
    import os
    import tempfile

    import polars as pl

    out = Path(args.out).expanduser()
    ext = out.suffix.lower()
    if ext not in (".parquet", ".csv", ".json"):
        raise UserError(f"--out {out}: the extension must be .parquet, .csv or .json")
    if out.exists() and not args.force:
        raise UserError(f"--out {out} exists; pass --force to overwrite it")
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: folder {out.parent} does not exist")
    df = _read(_db(args))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    os.close(fd)
    try:
        if ext == ".parquet":
            df.write_parquet(tmp)
        elif ext == ".csv":
            df.with_columns(pl.col("created_at").cast(pl.String)).write_csv(tmp)
        else:
            Path(tmp).write_text(json.dumps(df.to_dicts(), indent=1, default=str))
        os.replace(tmp, out)
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    print(f"{len(df)} records -> {out}")
    return 0


def merge(args):
    from bench.results import merge as merge_into

    db = _db(args, must_exist=False)
    added, dupes = merge_into(args.sources, db)
    print(f"merged {added} new records into {db}; {dupes} already present (same run id) skipped")
    return 0


# --- db import: published results (bench/published.py), kept apart from measured runs -------------

def _register_import(s):
    i = add_command(s, "import", "import published results (a folder with source.json and the raw result files) "
                                 "as origin=published records with their provenance",
                    "  tunebench db import reports/published/peft/method_comparison/MetaMathQA "
                    "--db reports/published/peft-method-comparison/db\n"
                    "  tunebench db import reports/published/peft/method_comparison/MetaMathQA   # into TUNEBENCH_HOME/db")
    i.add_argument("folder", type=Path, help="folder holding source.json (repo, commit, license, format, files) "
                                             "and the result files it lists")
    _db_arg(i)
    i.set_defaults(func=import_published)


def import_published(args):
    from bench.published import import_published as run_import

    db = _db(args, must_exist=False)
    added, present = run_import(args.folder, db)
    print(f"imported {added} published records into {db}; {present} already present (same run id) skipped")
    return 0


# --- db import-campaign: the GPU campaign's JSON lines (bench/campaign.py) as measured records ---------

def _register_import_campaign(s):
    c = add_command(s, "import-campaign", "turn a GPU campaign's campaign.jsonl (make gpu-campaign) into result "
                                          "records; every line is checked first, a bad one imports nothing",
                    "  tunebench db import-campaign campaign.jsonl   # from an H200: -> reports/reference/h200-campaign/db\n"
                    "  tunebench db import-campaign campaign.jsonl --db /tmp/campaign-db")
    c.add_argument("file", type=Path, help="campaign.jsonl written by `make gpu-campaign` (python -m bench.campaign)")
    c.add_argument("--db", type=Path, help="results folder (default: reports/reference/<gpu>-campaign/db, "
                                           "e.g. h200-campaign for an NVIDIA H200)")
    c.set_defaults(func=import_campaign)


def import_campaign(args):
    from bench.campaign_import import import_campaign as run_import

    if not args.file.is_file():
        raise UserError(f"campaign file {args.file} does not exist (or is not a file)")
    if args.db is not None and args.db.exists() and not args.db.is_dir():
        raise UserError(f"--db {args.db} is not a folder")
    done = run_import(args.file, args.db)
    by_status = ", ".join(f"{n} {s}" for s, n in sorted(done["statuses"].items())) or "none new"
    print(f"imported {done['written']} records into {done['db']} ({by_status}); "
          f"{done['present']} already present (same run id) skipped")
    for reason, n in sorted(done["skipped"].items()):
        print(f"  {n} planned runs not measured: {reason}")
    return 0
