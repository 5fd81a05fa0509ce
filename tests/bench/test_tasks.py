"""Standard tasks: registry, record formats, deterministic prepare, disjoint splits, CLI errors.

    .venv/bin/python -m pytest -q tests/bench/test_tasks.py

Every prepared task is built with a small ``limit`` into a throwaway TUNEBENCH_HOME, so the
whole file runs in well under a minute; the full-size build is `tunebench data prepare --all`.
"""
import hashlib
import json

import pytest

from advisor.cli import main
from bench import taskdata
from bench.taskdata import FORMATS, get_task, list_tasks, load_records, validate
from common.errors import UserError

STANDARD = ["general-text", "gsm-symbolic", "instruct-mix", "math-prefs", "pydocs-dapt", "smoke", "wiki-topics"]
LIMIT = 40


@pytest.fixture(scope="module")
def small_home(tmp_path_factory):
    """Every task prepared with LIMIT records per split, in a home of its own."""
    home = tmp_path_factory.mktemp("home")
    mp = pytest.MonkeyPatch()
    mp.setenv("TUNEBENCH_HOME", str(home))
    for t in list_tasks():
        taskdata.prepare(t.name, limit=LIMIT)
    yield home
    mp.undo()


def test_registry_lists_the_standard_tasks():
    assert [t.name for t in list_tasks()] == STANDARD
    for t in list_tasks():
        assert t.license and t.source and all(s.license for s in t.source)
        assert set(t.splits) == {"train", "test"}


def test_smoke_needs_no_prepare_and_offers_every_format():
    for fmt in FORMATS:
        recs = load_records("smoke", "train", fmt, limit=5)
        assert len(recs) == 5
        validate(recs, fmt)
    assert taskdata.checker("smoke")("7", "7") == 1.0


def test_gsm_checker_takes_the_last_number():
    check = taskdata.checker("gsm-symbolic")
    assert check("3 apples + 4 = 7. The answer is 1,200.", "1200") == 1.0
    assert check("The answer is 12.0", "12") == 1.0
    assert check("The answer is 12, not 13", "12") == 0.0
    assert check("no number", "3") == 0.0


def test_format_a_task_lacks_names_the_tasks_that_have_it():
    with pytest.raises(UserError, match="tasks with preference: math-prefs, smoke"):
        load_records("wiki-topics", "train", "preference")


def test_unprepared_task_says_how_to_prepare(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEBENCH_HOME", str(tmp_path))
    with pytest.raises(UserError, match="task wiki-topics is not prepared: run tunebench data prepare wiki-topics"):
        load_records("wiki-topics", "test", "prompt_completion")


def test_every_task_validates_and_splits_do_not_overlap(small_home):
    for t in list_tasks():
        for fmt in t.formats:
            split_hashes = {}
            for split in t.splits:
                recs = load_records(t.name, split, fmt)
                assert recs, f"{t.name}/{split}/{fmt} is empty"
                validate(recs, fmt, f"{t.name}/{split}/{fmt}")
                # Overlap is judged on the input a model sees (prompt or text), not the whole record.
                split_hashes[split] = {
                    hashlib.sha256((r.get("prompt") or r.get("text")).encode()).hexdigest() for r in recs
                }
            assert not split_hashes["train"] & split_hashes["test"], f"{t.name} {fmt}: train and test overlap"


def test_prepare_is_deterministic_and_idempotent(small_home, tmp_path, monkeypatch):
    first = {t.name: taskdata.manifest(t.name) for t in list_tasks() if not t.generated}
    monkeypatch.setenv("TUNEBENCH_HOME", str(tmp_path))
    for name in first:
        again = taskdata.prepare(name, limit=LIMIT)
        assert again["sha256"] == first[name]["sha256"], name
        assert again["files"] == first[name]["files"], name
    # Idempotent: a second call with the same limit does not rebuild (files keep their mtime).
    f = tmp_path / "data" / "wiki-topics" / "test.prompt_completion.jsonl"
    before = f.stat().st_mtime_ns
    taskdata.prepare("wiki-topics", limit=LIMIT)
    assert f.stat().st_mtime_ns == before


def test_data_list_json_rows(small_home, capsys):
    assert main(["data", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == STANDARD
    for r in rows:
        assert set(r) == {"name", "kind", "n_train", "n_test", "source", "license", "sha256", "prepared"}
        assert r["prepared"] and r["n_train"] > 0 and r["n_test"] > 0 and len(r["sha256"]) == 64


def test_unknown_task_exits_2_with_one_line(capsys):
    assert main(["data", "prepare", "wiki-topic"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown task 'wiki-topic'" in err and "wiki-topics" in err
    assert main(["eval", "--model", "tiny-llama", "--task", "nope"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("text,msg", [
    ("name: broken\nkind: [unclosed\n", "is not valid YAML"),
    ("name: broken\nkind: math\n", "description: Field required"),
])
def test_broken_yaml_exits_2_naming_the_file(tmp_path, monkeypatch, capsys, text, msg):
    (tmp_path / "broken.yaml").write_text(text)
    monkeypatch.setenv("TUNEBENCH_TASKS_DIR", str(tmp_path))
    assert main(["data", "prepare", "broken"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken.yaml" in err and msg in err
    with pytest.raises(UserError):
        get_task("broken")
