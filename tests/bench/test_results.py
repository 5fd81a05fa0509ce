"""The results store: typed round trip, damaged files, concurrent writers, kills, merge, db commands.

    .venv/bin/python -m pytest tests/bench/test_results.py -q
"""
import datetime as dt
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time

import polars as pl
import pytest

from advisor.cli import main
from bench.results import merge, read_runs, record_files, write_record
from bench.schema import SCHEMA, new_record
from common.errors import UserError


def full_record(i: int = 0, **over) -> dict:
    """A record with every column set to a value of its schema type."""
    values = {}
    for name, dtype in SCHEMA.items():
        if dtype == pl.String:
            values[name] = f"{name}-{i}"
        elif dtype in (pl.Int32, pl.Int64):
            values[name] = 1000 + i
        elif dtype == pl.Float64:
            values[name] = 0.5 + i
        elif isinstance(dtype, pl.Datetime):
            values[name] = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    values.update({"status": "ok", "run_id": f"run-{i}", "hyperparams": json.dumps({"lr": 1e-4}), **over})
    return values


def test_round_trip_keeps_every_column_and_type(tmp_path):
    rec = full_record(1)
    path = write_record(tmp_path, rec)
    assert path.name == "run-1.parquet"
    df = read_runs(tmp_path)
    assert df.schema == pl.Schema(SCHEMA)
    row = df.row(0, named=True)
    expected = new_record(**rec)
    for name in SCHEMA:
        assert row[name] == expected[name], name


def test_records_are_immutable_and_validated(tmp_path):
    write_record(tmp_path, full_record(2))
    with pytest.raises(FileExistsError):
        write_record(tmp_path, full_record(2, status="error"))
    assert read_runs(tmp_path)["status"].to_list() == ["ok"]
    with pytest.raises(KeyError):
        write_record(tmp_path, {"status": "ok", "not_a_column": 1})
    with pytest.raises(ValueError):
        write_record(tmp_path, {"status": "fine"})
    with pytest.raises(UserError):
        write_record(tmp_path, {"status": "ok", "run_id": "../escape"})


def test_empty_db_is_an_empty_typed_frame(tmp_path):
    df = read_runs(tmp_path / "missing")
    assert df.is_empty() and df.schema == pl.Schema(SCHEMA)


def test_damaged_files_are_reported_and_skipped(tmp_path):
    for i in range(3):
        write_record(tmp_path, full_record(i))
    good = record_files(tmp_path)[0].read_bytes()
    (tmp_path / "truncated.parquet").write_bytes(good[: len(good) // 2])
    (tmp_path / "garbage.parquet").write_bytes(b"\x00not parquet at all" * 10)
    pl.DataFrame({"x": [1]}).write_parquet(tmp_path / "foreign.parquet")
    damaged = []
    df = read_runs(tmp_path, on_damaged=lambda p, msg: damaged.append(p.name))
    assert sorted(df["run_id"].to_list()) == ["run-0", "run-1", "run-2"]
    assert sorted(damaged) == ["foreign.parquet", "garbage.parquet", "truncated.parquet"]


def test_damaged_file_warns_one_line_each_on_stderr(tmp_path, capsys):
    write_record(tmp_path, full_record(0))
    (tmp_path / "bad.parquet").write_bytes(b"garbage")
    assert len(read_runs(tmp_path)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.parquet" in err[0]


def _writer(db, worker, n):
    for i in range(n):
        write_record(db, {"status": "ok", "run_id": f"w{worker}-{i}", "seed": i})


def test_concurrent_writer_processes_lose_nothing(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    damaged = []
    df = read_runs(tmp_path, on_damaged=lambda p, m: damaged.append(p))
    assert len(df) == 100 and df["run_id"].n_unique() == 100 and not damaged
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


KILL_LOOP = """
import sys
from bench.results import write_record
i = 0
while True:
    write_record(sys.argv[1], {"status": "ok", "run_id": f"k-{i}", "error": "x" * 20000})
    i += 1
"""


def test_killed_writer_leaves_no_partial_record(tmp_path):
    for trial in range(3):
        proc = subprocess.Popen([sys.executable, "-c", KILL_LOOP, str(tmp_path)])
        deadline = time.time() + 60
        while len(record_files(tmp_path)) < 5 * (trial + 1) and time.time() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # restart numbering clash is expected for the next trial: keep ids unique per trial
        for p in record_files(tmp_path):
            if p.name.startswith("k-"):
                p.rename(p.with_name(f"t{trial}-{p.name}"))
    damaged = []
    df = read_runs(tmp_path, on_damaged=lambda p, m: damaged.append(p))
    assert not damaged and len(df) >= 15


def test_merge_dedupes_by_run_id(tmp_path):
    a, b, db = tmp_path / "a", tmp_path / "b", tmp_path / "db"
    for i in range(3):
        write_record(a, full_record(i))
    for i in range(2, 5):
        write_record(b, full_record(i))
    (b / "bad.parquet").write_bytes(b"garbage")
    damaged = []
    assert merge([a, b], db, on_damaged=lambda p, m: damaged.append(p.name)) == (5, 1)
    assert merge([a, b], db, on_damaged=lambda p, m: None) == (0, 6)
    assert damaged == ["bad.parquet"]
    assert sorted(read_runs(db)["run_id"].to_list()) == [f"run-{i}" for i in range(5)]
    # an exported multi-row parquet merges too
    export = tmp_path / "export.parquet"
    read_runs(a).write_parquet(export)
    assert merge([export], tmp_path / "db2") == (3, 0)


def test_read_only_db_is_one_line_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(UserError, match="cannot write result"):
            write_record(tmp_path, {"status": "ok"})
    finally:
        tmp_path.chmod(0o700)


@pytest.fixture
def db(tmp_path):
    for i, (method, tps, status) in enumerate([("lora", 100.0, "ok"), ("lora", 300.0, "ok"),
                                               ("full", 50.0, "ok"), ("dora", None, "oom")]):
        write_record(tmp_path, {"run_id": f"r{i}", "method": method, "tokens_per_s": tps, "status": status})
    return tmp_path


def test_db_sql_answers(db, capsys):
    assert main(["db", "sql", "--db", str(db), "--format", "json",
                 "SELECT method, median(tokens_per_s) AS tps FROM runs WHERE status = 'ok' GROUP BY method ORDER BY method"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"method": "full", "tps": 50.0}, {"method": "lora", "tps": 200.0}]
    assert main(["db", "sql", "--db", str(db), "SELEC nonsense"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_db_show_and_export(db, tmp_path, capsys):
    assert main(["db", "show", "--db", str(db), "--format", "json", "--columns", "run_id,status"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["run_id"] for r in rows) == ["r0", "r1", "r2", "r3"]
    assert main(["db", "show", "--db", str(db), "--columns", "nope"]) == 2
    assert main(["db", "show", "--db", str(db), "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("run_id,")
    for ext in ("parquet", "csv", "json"):
        out = tmp_path / f"export.{ext}"
        assert main(["db", "export", "--db", str(db), "--out", str(out)]) == 0
        assert out.stat().st_size > 0
    assert len(pl.read_parquet(tmp_path / "export.parquet")) == 4
    assert main(["db", "export", "--db", str(db), "--out", str(tmp_path / "export.csv")]) == 2  # no --force
    assert main(["db", "export", "--db", str(db), "--out", str(tmp_path / "x.txt")]) == 2
    assert main(["db", "show", "--db", str(tmp_path / "nope")]) == 2


def test_db_merge_command(db, tmp_path, capsys):
    target = tmp_path / "merged"
    assert main(["db", "merge", str(db), "--db", str(target)]) == 0
    assert main(["db", "merge", str(db), "--db", str(target)]) == 0
    out = capsys.readouterr().out
    assert "merged 4 new" in out and "4 already present" in out
    assert main(["db", "merge", str(tmp_path / "missing"), "--db", str(target)]) == 2
