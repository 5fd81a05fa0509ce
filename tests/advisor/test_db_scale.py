"""``tunebench bench db-scale``: a tiny run prints its table and leaves nothing behind.

    .venv/bin/python -m pytest tests/advisor/test_db_scale.py -q

The real benchmark (100,000 records, minutes) is run by hand: ``tunebench bench db-scale``.
"""
import json

from advisor.cli import main
from bench.dbscale import MATRIX, synthetic_record


def test_tiny_db_scale_prints_its_table_and_cleans_up(tmp_path, capsys):
    assert main(["bench", "db-scale", "--records", "200", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for row in ("generate 200 record files", "first scan", "db show --where", "db sql", "evidence lookup", "target:"):
        assert row in out, (row, out)
    assert list(tmp_path.iterdir()) == []  # the temporary DB is gone
    assert main(["bench", "db-scale", "--records", "300", "--dir", str(tmp_path), "--json"]) == 0
    fig = json.loads(capsys.readouterr().out)
    assert fig["records"] == 300 and len(fig["queries_ms"]) == 3 and fig["index_bytes"] > 0
    assert list(tmp_path.iterdir()) == []


def test_synthetic_records_say_so():
    import datetime as dt
    import random

    rec = synthetic_record(7, random.Random(0), dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    assert rec["matrix"] == MATRIX and rec["hardware"] == "synthetic"
    assert json.loads(rec["hyperparams"]) == {"synthetic": "db-scale"} == json.loads(rec["extra"])


def test_db_scale_bad_input(tmp_path, capsys):
    assert main(["bench", "db-scale", "--records", "0"]) == 2
    assert main(["bench", "db-scale", "--dir", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.count("\n") == 2


def test_evidence_lookup_ranks_runs_on_the_closest_task(tmp_path, monkeypatch):
    from advisor import evidence
    from advisor.catalogs import gpu
    from bench import results

    monkeypatch.setattr(results, "INDEX_MIN_FILES", 1)  # read through the index
    rows = [("a", "sft", "lora", 1.0), ("b", "sft", "lora", 3.0), ("c", "sft", "full", 2.0)]
    for rid, obj, method, after in rows:
        results.write_record(tmp_path, {"run_id": rid, "status": "ok", "task": "GSM-symbolic", "objective": obj,
                                        "method": method, "metric_before": 0.0, "metric_after": after,
                                        "wall_time_s": 10.0, "hardware": "NVIDIA L4"})
    results.write_record(tmp_path, {"run_id": "d", "status": "oom", "task": "gsm-symbolic", "objective": "sft",
                                    "method": "dora", "metric_after": 9.0, "hardware": "NVIDIA L4"})
    results.write_record(tmp_path, {"run_id": "e", "status": "ok", "task": "wiki-topics", "objective": "sft",
                                    "method": "ia3", "metric_after": 9.0, "hardware": "NVIDIA L4"})
    for _ in range(2):  # builds the index, then reads it
        evidence._read.cache_clear()
        frame = evidence._read(str(tmp_path), 0.0, False)
        ev = evidence.lookup([(str(tmp_path), frame)], "reasoning", gpu("l4"))
        assert set(ev) == {("sft", "lora"), ("sft", "full")}
        assert ev[("sft", "lora")].rank == 0.5 and ev[("sft", "lora")].run_ids == ["a", "b"]
        assert ev[("sft", "full")].rank == 0.5 and ev[("sft", "full")].tier == "same device"
        assert ev[("sft", "lora")].delta.mean == 2.0 and ev[("sft", "lora")].delta.n == 2
    assert (tmp_path / results.INDEX_DIR).is_dir()
