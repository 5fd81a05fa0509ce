"""``tunebench bench stress``: a small run reports zeros, and its counters do see damage.

    .venv/bin/python -m pytest tests/bench/test_stress.py -q

(The store's own crash and concurrency tests are in test_results.py; this checks the command.)
"""
import json

from advisor.cli import build_parser, main
from bench.results import INDEX_DIR, record_files, write_record
from bench.stress import DEFAULT_KILLS, db_damage


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
    assert kills["forked_runs"] == 1 and figures["wall_s"] > 0  # the run came from the fork server
    assert race == {**race, "written": 100, "read_back": 100, "lost": 0, "corrupt": 0, "partial": 0,
                    "failed_writers": 0}
    assert main(["bench", "stress", "--db", str(db)]) == 2  # a used folder is refused


def test_default_run_kills_at_least_20_real_training_runs():
    args = build_parser().parse_args(["bench", "stress"])
    assert args.kills is None and DEFAULT_KILLS >= 40  # None -> DEFAULT_KILLS: half of them training runs
    assert (DEFAULT_KILLS + 1) // 2 >= 20


def test_damage_counters_see_truncated_files_and_leftover_temps(tmp_path):
    write_record(tmp_path, {"run_id": "good", "status": "ok"})
    data = record_files(tmp_path)[0].read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    (tmp_path / ".cut.abc123.tmp").write_bytes(data[:100])
    (tmp_path / INDEX_DIR).mkdir()  # the store's own index cache is not damage; a temp left in it is
    (tmp_path / INDEX_DIR / "v1-seg.parquet").write_bytes(data)
    (tmp_path / INDEX_DIR / ".v1-seg.x.tmp").write_bytes(data[:100])
    corrupt, partial = db_damage(tmp_path)
    assert corrupt == ["cut.parquet"] and partial == [".cut.abc123.tmp", f"{INDEX_DIR}/.v1-seg.x.tmp"]
