"""The results store: typed round trip, damaged files, concurrent writers, kills, merge, db commands.

    .venv/bin/python -m pytest tests/bench/test_results.py -q
"""
import datetime as dt
import json
import multiprocessing as mp
import os
import shutil
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
    values.update({"status": "ok", "run_id": f"run-{i}", "hyperparams": json.dumps({"lr": 1e-4}), "origin": "published",
                   "source": json.dumps({"repo": "r", "commit": f"c{i}", "path": "p", "metric": "m"}), **over})
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


# -- the index (<db>/_index): a cache of the record files, never the source of truth -------------
from bench import results as store  # noqa: E402


def _index_segments(db):
    return sorted((db / store.INDEX_DIR).glob("*.parquet"))


def _fill(db, n, start=0):
    store.write_records(db, [full_record(i) for i in range(start, start + n)], durable=False)


def test_write_records_writes_one_immutable_file_each(tmp_path):
    assert store.write_records(tmp_path, [full_record(i) for i in range(3)]) == 3
    assert [p.name for p in record_files(tmp_path)] == ["run-0.parquet", "run-1.parquet", "run-2.parquet"]
    with pytest.raises(FileExistsError):
        store.write_records(tmp_path, [full_record(1)])
    assert read_runs(tmp_path).equals(read_runs(tmp_path, index=False))


def test_index_is_built_used_and_follows_new_and_deleted_files(tmp_path):
    _fill(tmp_path, 40)
    full = read_runs(tmp_path, index=False)
    assert not (tmp_path / store.INDEX_DIR).exists()  # a plain read touches nothing
    first = read_runs(tmp_path, index=True)
    assert first.equals(full) and first.schema == pl.Schema(SCHEMA)
    assert len(_index_segments(tmp_path)) == 1
    # the index answers: a record file altered in place after indexing is not re-read ...
    (tmp_path / "run-3.parquet").write_bytes(b"damaged after indexing")
    assert read_runs(tmp_path, index=True, on_damaged=lambda p, m: pytest.fail("read a file")).equals(full)
    (tmp_path / "run-3.parquet").unlink()
    # ... while a new file appears in the next read (and is appended as a segment) and a deleted one goes
    write_record(tmp_path, full_record(99))
    (tmp_path / "run-5.parquet").unlink()
    after = read_runs(tmp_path, index=True)
    assert "run-99" in after["run_id"].to_list() and not {"run-3", "run-5"} & set(after["run_id"])
    assert len(_index_segments(tmp_path)) == 2
    assert after.equals(read_runs(tmp_path, index=False))
    # deleting the index changes nothing but speed
    shutil.rmtree(tmp_path / store.INDEX_DIR)
    assert read_runs(tmp_path, index=True).equals(after)
    # record files stay the only source for merge and export: the index is not a record
    assert len(record_files(tmp_path)) == 39 and merge([tmp_path], tmp_path / "copy") == (39, 0)


def test_index_is_automatic_from_index_min_files(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "INDEX_MIN_FILES", 10)
    _fill(tmp_path, 9)
    read_runs(tmp_path)
    assert not _index_segments(tmp_path)
    _fill(tmp_path, 1, start=9)
    assert len(read_runs(tmp_path)) == 10 and _index_segments(tmp_path)


def test_damaged_record_is_reported_with_the_index_present(tmp_path):
    _fill(tmp_path, 20)
    (tmp_path / "garbage.parquet").write_bytes(b"\x00not parquet" * 10)
    for _ in range(2):  # builds the index, then uses it: the damaged file is reported both times
        damaged = []
        df = read_runs(tmp_path, index=True, on_damaged=lambda p, m: damaged.append(p.name))
        assert damaged == ["garbage.parquet"] and len(df) == 20
    good = record_files(tmp_path)[0].read_bytes()
    (tmp_path / "truncated.parquet").write_bytes(good[: len(good) // 2])  # new after the index
    damaged = []
    assert len(read_runs(tmp_path, index=True, on_damaged=lambda p, m: damaged.append(p.name))) == 20
    assert sorted(damaged) == ["garbage.parquet", "truncated.parquet"]


def test_damaged_segment_is_dropped_and_rebuilt(tmp_path):
    _fill(tmp_path, 12)
    want = read_runs(tmp_path, index=True)
    seg = _index_segments(tmp_path)[0]
    seg.write_bytes(b"torn")
    assert read_runs(tmp_path, index=True, on_damaged=lambda p, m: pytest.fail(str(p))).equals(want)
    assert not seg.exists() and len(_index_segments(tmp_path)) == 1


def test_segments_are_compacted_into_one(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "INDEX_MAX_SEGMENTS", 3)
    _fill(tmp_path, 5)
    for i in range(5):
        read_runs(tmp_path, index=True)
        write_record(tmp_path, full_record(100 + i))
    df = read_runs(tmp_path, index=True)
    assert len(_index_segments(tmp_path)) <= 3 and len(df) == 10
    assert store.compact_index(tmp_path) == 10 and len(_index_segments(tmp_path)) == 1
    assert read_runs(tmp_path, index=True).equals(read_runs(tmp_path, index=False))


COMPACTOR = """
import sys
from bench import results
results.INDEX_MAX_SEGMENTS = 1
for _ in range(int(sys.argv[2])):
    results.compact_index(sys.argv[1])
    assert len(results.read_runs(sys.argv[1], index=True)) == int(sys.argv[3])
"""


def test_concurrent_compactions_leave_a_valid_index(tmp_path):
    _fill(tmp_path, 60)
    for i in range(4):  # several segments to merge
        read_runs(tmp_path, index=True)
        _fill(tmp_path, 5, start=100 + 10 * i)
    want = read_runs(tmp_path, index=False)
    procs = [subprocess.Popen([sys.executable, "-c", COMPACTOR, str(tmp_path), "6", str(len(want))],
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    for seg in _index_segments(tmp_path):  # every segment left is whole and typed
        frame = pl.read_parquet(seg)
        assert frame.schema == pl.Schema({**SCHEMA, store.FILE_COL: pl.String()})
    assert read_runs(tmp_path, index=True).equals(want)
    assert not [p for p in (tmp_path / store.INDEX_DIR).iterdir() if p.name.startswith(".")]


def test_odd_files_named_parquet_are_reported_never_opened(tmp_path):
    write_record(tmp_path, full_record(0))
    os.mkfifo(tmp_path / "pipe.parquet")  # opening a FIFO would block forever
    (tmp_path / "dir.parquet").mkdir()
    (tmp_path / "notes.txt").write_text("junk that is no record")
    damaged = []
    t = time.time()
    df = read_runs(tmp_path, on_damaged=lambda p, m: damaged.append(p.name))
    assert time.time() - t < 5 and len(df) == 1 and damaged == ["dir.parquet", "pipe.parquet"]
    assert merge([tmp_path], tmp_path / "m", on_damaged=lambda p, m: None) == (1, 0)


def test_db_sql_is_read_only_even_on_an_empty_db(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for query, word in [("INSERT INTO runs VALUES (1)", "INSERT"), ("update runs SET seed = 1", "update"),
                        ("DELETE FROM runs", "DELETE"), ("CREATE TABLE x AS SELECT 1", "CREATE"),
                        ("DROP TABLE runs", "DROP"), ("ALTER TABLE runs ADD x INT", "ALTER"),
                        ("COPY runs TO 'x.csv'", "COPY"), ("ATTACH 'x.db'", "ATTACH"),
                        ("SELECT 1; DROP TABLE runs", "DROP"), ("WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a", "INSERT"),
                        ("/* hi */ truncate runs", "truncate")]:
        assert main(["db", "sql", "--db", str(empty), query]) == 2, query
        err = capsys.readouterr().err
        assert err == f"error: db sql runs read-only queries (SELECT ...); got '{word}'\n", (query, err)
    assert main(["db", "sql", "--db", str(empty), "SELECT 1; SELECT 2"]) == 2
    assert main(["db", "sql", "--db", str(empty), "--format", "json",
                 "WITH x AS (SELECT count(*) AS n FROM runs) SELECT n, 'drop; it' AS s FROM x"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 0, "s": "drop; it"}]


def test_db_show_where(db, capsys):
    assert main(["db", "show", "--db", str(db), "--format", "json", "--columns", "run_id",
                 "--where", "method = 'lora' AND tokens_per_s > 150"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"run_id": "r1"}]
    assert main(["db", "show", "--db", str(db), "--where", "nope = 1"]) == 2
    assert main(["db", "show", "--db", str(db), "--where", "1=1; DROP TABLE runs"]) == 2
    assert capsys.readouterr().err.count("\n") == 2


@pytest.mark.parametrize("target", ["file", "/dev/zero", "fifo"])
def test_db_commands_refuse_odd_db_paths_fast(tmp_path, capsys, target):
    path = {"file": tmp_path / "plain.txt", "fifo": tmp_path / "pipe", "/dev/zero": "/dev/zero"}[target]
    if target == "file":
        path.write_text("x")
    elif target == "fifo":
        os.mkfifo(path)
    for argv in (["db", "show"], ["db", "sql", "SELECT 1"], ["db", "export", "--out", str(tmp_path / "o.csv")],
                 ["db", "merge", str(tmp_path / "none")]):
        t = time.time()
        assert main([*argv, "--db", str(path)]) == 2
        err = capsys.readouterr().err
        assert time.time() - t < 1 and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
