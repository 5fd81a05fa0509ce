"""``tunebench bench stress``: a small run reports zeros, and its counters do see damage.

    .venv/bin/python -m pytest tests/bench/test_stress.py -q

(The store's own crash and concurrency tests are in test_results.py; this checks the command.)
"""
import json

from advisor.cli import main
from bench.results import record_files, write_record
from bench.stress import db_damage


def test_small_stress_run_loses_nothing(tmp_path, tiny_llama, capsys):
    db = tmp_path / "stress"
    rc = main(["bench", "stress", "--kills", "2", "--writers", "4", "--records", "25", "--db", str(db),
               "--seed", "3", "--json"])
    figures = json.loads(capsys.readouterr().out)
    assert rc == 0, figures
    kills, race = figures["kills"], figures["writers"]
    assert kills["trials"] == 2 and kills["train"] == 1 and kills["writer"] == 1
    assert kills["corrupt"] == 0 and kills["partial"] == 0 and kills["records_left"] >= 1
    assert [d["kind"] for d in kills["detail"]] == ["train", "writer"]
    assert race == {**race, "written": 100, "read_back": 100, "lost": 0, "corrupt": 0, "partial": 0,
                    "failed_writers": 0}
    assert main(["bench", "stress", "--db", str(db)]) == 2  # a used folder is refused


def test_damage_counters_see_truncated_files_and_leftover_temps(tmp_path):
    write_record(tmp_path, {"run_id": "good", "status": "ok"})
    data = record_files(tmp_path)[0].read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    (tmp_path / ".cut.abc123.tmp").write_bytes(data[:100])
    corrupt, partial = db_damage(tmp_path)
    assert corrupt == ["cut.parquet"] and partial == [".cut.abc123.tmp"]
