"""``tunebench db import``: the committed peft method_comparison files become published records with
their provenance; bad input exits 2 with one line and writes nothing; schema-1 records still read."""
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from advisor.cli import main
from bench.published import git_blob_sha, published_records
from bench.results import read_runs, run_ids
from bench.schema import MEASURED, PUBLISHED, new_record

ROOT = Path(__file__).resolve().parents[2]
PEFT = ROOT / "reports" / "published" / "peft" / "method_comparison" / "MetaMathQA"
COMMIT = "5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40"


@pytest.fixture(scope="module")
def records():
    return {r["run_id"]: r for r in published_records(PEFT)}


def test_every_file_is_one_published_record_with_provenance(records):
    assert len(records) == 63
    for r in records.values():
        src = json.loads(r["source"])
        assert r["origin"] == PUBLISHED and r["status"] == "ok"
        assert (src["repo"], src["commit"], src["license"]) == ("huggingface/peft", COMMIT, "Apache-2.0")
        assert src["path"].startswith("method_comparison/MetaMathQA/results/") and src["metric"]["metric_after"]
        assert git_blob_sha((PEFT / "results" / Path(src["path"]).name).read_bytes()) == src["blob"]
        assert (r["model"], r["hardware"], r["task"]) == ("meta-llama/Llama-3.2-3B", "NVIDIA L40S", "metamathqa")


def test_known_figures_of_the_lora_rank32_file(records):
    (r,) = [r for r in records.values() if json.loads(r["extra"])["experiment"] == "lora/llama-3.2-3B-rank32"]
    extra = json.loads(r["extra"])
    assert (r["method"], r["stage"], r["seed"]) == ("lora", "sft:lora", 0)
    assert r["metric_name"] == "gsm8k_test_accuracy" and r["metric_after"] == pytest.approx(0.4783927217589083)
    assert (r["trainable_params"], r["total_params"]) == (9_175_040, 3_221_924_864)
    assert r["peak_reserved_bytes"] == 22_292_725_760 and extra["avg_reserved_bytes"] == 14_397_338_969
    assert extra["train_time_s"] == pytest.approx(941.9589897260084) and r["wall_time_s"] == pytest.approx(1153.3028354130001)
    assert r["tokens_per_s"] == pytest.approx(4_198_051 / 941.9589897260084)
    assert r["forgetting"] == pytest.approx(0.04995572566986084) and r["steps"] == 5000


@pytest.mark.parametrize("experiment, method", [
    ("full-finetuning/llama-3.2-3B-lr_0.00001", "full"), ("lora/llama-3.2-3B-rank32-dora", "dora"),
    ("lora/llama-3.2-3B-rank64-rslora", "rslora"), ("prefixtuning/llama-3.2-3B-lr_0.001", "prefix"),
    ("ptuning/llama-3.2-3B-default", "p_tuning"),  # P-Tuning v1, not this project's ptuning (v2)
    ("vblora/llama-3.2-3B-default", "vblora"),     # not a method of this project: peft's name kept
])
def test_method_mapping(records, experiment, method):
    (r,) = [r for r in records.values() if json.loads(r["extra"])["experiment"] == experiment]
    assert r["method"] == method


def test_import_writes_once_and_reads_back(tmp_path, capsys):
    db = tmp_path / "db"
    assert main(["db", "import", str(PEFT), "--db", str(db)]) == 0
    assert main(["db", "import", str(PEFT), "--db", str(db)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("imported 63 published records") and out[1].startswith("imported 0 published records")
    frame = read_runs(db)
    assert frame.height == 63 and frame["origin"].unique().to_list() == [PUBLISHED]


def _copy(tmp_path) -> Path:
    dst = tmp_path / "src"
    shutil.copytree(PEFT, dst)
    return dst


def _edit_manifest(folder: Path, **changes) -> None:
    man = json.loads((folder / "source.json").read_text())
    man.update(changes)
    (folder / "source.json").write_text(json.dumps(man))


@pytest.mark.parametrize("damage, words", [
    (lambda f: (f / "results" / "lora--llama-3.2-3B-rank32.json").write_text("{not json"),
     ["lora--llama-3.2-3B-rank32.json", "damaged or edited copy"]),
    (lambda f: (f / "source.json").unlink(), ["has no source.json"]),
    (lambda f: (f / "source.json").write_text("[]"), ["bad manifest"]),
    (lambda f: _edit_manifest(f, format="csv-dump"), ["unknown format 'csv-dump'", "peft-method-comparison"]),
    (lambda f: (f / "results" / "extra.json").write_text("{}"), ["extra.json is not listed"]),
    (lambda f: (f / "results" / "vera--llama-3.2-3B-default.json").unlink(), ["listed in source.json but missing"]),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, damage, words):
    folder = _copy(tmp_path)
    damage(folder)
    db = tmp_path / "db"
    assert main(["db", "import", str(folder), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(w in err for w in words), err
    assert not run_ids(db)


def test_well_formed_json_of_another_format_is_refused(tmp_path, capsys):
    folder = _copy(tmp_path)
    name = "lora--llama-3.2-3B-rank32.json"
    data = b'{"run_info": {"experiment_name": "x"}}'
    (folder / "results" / name).write_bytes(data)
    man = json.loads((folder / "source.json").read_text())
    man["files"][name]["blob"] = git_blob_sha(data)  # provenance matches: the content itself is wrong
    (folder / "source.json").write_text(json.dumps(man))
    assert main(["db", "import", str(folder), "--db", str(tmp_path / "db")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{name}: not a peft method_comparison result (run_info.created_at" in err
    assert not (tmp_path / "db").exists() or not run_ids(tmp_path / "db")


def test_schema_origin_rules_and_old_records():
    assert new_record(status="ok")["origin"] == MEASURED
    with pytest.raises(ValueError, match="needs source JSON"):
        new_record(status="ok", origin=PUBLISHED, source=json.dumps({"repo": "a/b"}))
    with pytest.raises(ValueError, match="origin must be one of"):
        new_record(status="ok", origin="rumoured")
    with pytest.raises(ValueError, match="published records only"):
        new_record(status="ok", source=json.dumps({"repo": "a/b"}))
    # most of the committed reference DB was written with schema 1 (no origin/source): those records still
    # read, origin null, beside the schema-2 ones re-measured later (origin measured)
    ref = read_runs(ROOT / "reports" / "reference" / "cpu-amd-epyc-2c-smollm2-135m" / "db", index=False)
    old, new = ref.filter(pl.col("schema_version") == 1), ref.filter(pl.col("schema_version") == 2)
    assert old.height > 0 and old["origin"].null_count() == old.height
    assert old.height + new.height == ref.height and (new["origin"] == MEASURED).all()


def test_committed_published_db_matches_the_files(records):
    db = ROOT / "reports" / "published" / "peft-method-comparison" / "db"
    assert run_ids(db) == set(records)
