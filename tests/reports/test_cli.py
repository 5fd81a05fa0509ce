"""``tunebench report`` end to end through advisor.cli.main: files written, sections per hardware
class, smoke models without verdicts, published records apart, bad input exit 2."""
from pathlib import Path

import pytest
from report_records import frame, rec, sft, write_db

from advisor.cli import main

PEFT = Path(__file__).resolve().parents[2] / "reports" / "published" / "peft" / "method_comparison" / "MetaMathQA"


@pytest.fixture
def db(tmp_path):
    return write_db(tmp_path / "db", [
        *[sft("full", trainable=134_515_008, mem_gib=4.9, metric_after=0.8, forgetting=0.3, seed=s) for s in range(3)],
        *[sft("lora", trainable=2_442_240, mem_gib=4.5, metric_after=0.78, forgetting=0.05, seed=s) for s in range(3)],
        sft("lora", hardware="NVIDIA H100", peak_reserved_bytes=20 * 2**30),
        rec("sft:adapter_houlsby", status="oom", error="OutOfMemoryError: out of memory"),
    ])


def test_report_writes_tables_and_plots(db, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["report", "--db", str(db), "--out", str(out)]) == 0
    md, page = (out / "comparison.md").read_text(), (out / "comparison.html").read_text()
    assert md.index("\n## CPU: our measurements\n") < md.index("\n## GPU: our measurements\n")
    assert md.count("\n### smollm2-135m on ") == 2  # one section per hardware, never pooled
    assert "\n### smollm2-135m on NVIDIA H100\n" in md and "\n### smollm2-135m on cpu-test-2c\n" in md
    assert "| Full FT | sft:full | wiki-topics | 135M (100.0%) | 4.90 GiB host RSS |" in md
    assert "— (oom)" in md and "#### Folklore vs measured" in md
    assert "| Full fine-tuning forgets the most | wiki-topics | holds |" in md
    # per-task differences: full FT's 0.8 and LoRA's 0.78 are exact over 3 seeds, so apart
    assert "| sft:full | 3 | 0.8 | best | 4.90 GiB | more | 101 ± 2.48 (n=3) | best |" in md
    assert "| sft:lora | 3 | 0.78 | worse | 4.50 GiB | best | 101 ± 2.48 (n=3) | not distinguishable |" in md
    pngs = sorted(out.rglob("*.png"))
    assert pngs and all(f"({p.relative_to(out).as_posix()})" in md for p in pngs)
    assert page.count("data:image/png;base64,") == len(pngs)
    assert "<table>" in page and "v-holds" in page and "<h2>CPU: our measurements</h2>" in page
    assert str(out / "comparison.md") in capsys.readouterr().out


def test_random_init_models_are_a_smoke_check_without_verdicts(tmp_path):
    db = write_db(tmp_path / "db", [sft("full", model="tiny-llama", trainable=200_000, seed=s) for s in range(3)]
                  + [sft("lora", model="tiny-llama", seed=s) for s in range(3)])
    assert main(["report", "--db", str(db), "--out", str(tmp_path / "o")]) == 0
    md = (tmp_path / "o" / "comparison.md").read_text()
    assert "## Smoke check: random-init models (pipeline only, no verdicts)" in md
    assert "| Full FT | sft:full | wiki-topics |" in md and "| LoRA | sft:lora | wiki-topics |" in md
    for word in ("Folklore", "holds", "doesn't hold", "inconclusive", "Differences", "our measurements"):
        assert word not in md
    assert "| DoRA |" not in md  # no "not run" padding rows in a smoke check
    assert not list((tmp_path / "o").rglob("*.png"))


def test_published_records_get_their_own_labelled_section(db, tmp_path, capsys):
    pub = tmp_path / "pub"
    assert main(["db", "import", str(PEFT), "--db", str(pub)]) == 0
    assert "imported 63 published records" in capsys.readouterr().out
    out = tmp_path / "o"
    assert main(["report", "--db", str(db), "--db", str(pub), "--out", str(out), "--format", "md,html"]) == 0
    md = (out / "comparison.md").read_text()
    ours, published = md.split("\n## Published results (others' measurements, not pooled with ours)\n")
    assert "### Published: huggingface/peft @ 5d602fdbff: method_comparison/MetaMathQA/results — " \
           "meta-llama/Llama-3.2-3B on NVIDIA L40S" in published
    assert "commit 5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40" in published and "licence Apache-2.0" in published
    assert "| LoRA | lora/llama-3.2-3B-rank32 | 9.18M (0.285%) | 0.4784 | 20.76 GiB | 13.41 GiB |" in published
    assert published.count("\n| ") == 64  # header + 63 records
    assert "Llama-3.2-3B" not in ours and "L40S" not in ours  # never pooled with our runs
    assert "NVIDIA L40S" not in [p.parent.name for p in out.rglob("*.png")]


def test_report_filters_and_format(db, tmp_path):
    out = tmp_path / "out"
    assert main(["report", "--db", str(db), "--out", str(out), "--hardware", "NVIDIA H100", "--format", "md"]) == 0
    md = (out / "comparison.md").read_text()
    assert "cpu-test-2c" not in md and "NVIDIA H100" in md
    assert not (out / "comparison.html").exists()


@pytest.mark.parametrize("argv, words", [
    (["--hardware", "tpu"], ["unknown hardware 'tpu'", "cpu-test-2c"]),
    (["--task", "nope"], ["unknown task 'nope'", "wiki-topics"]),
    (["--format", "pdf"], ["unknown report format 'pdf'", "accepted: html, md"]),
])
def test_bad_values_exit_2_with_one_line(db, tmp_path, capsys, argv, words):
    assert main(["report", "--db", str(db), "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(w in err for w in words)


def test_missing_or_empty_db_exits_2(tmp_path, capsys):
    assert main(["report", "--db", str(tmp_path / "nothere"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
    (tmp_path / "empty").mkdir()
    assert main(["report", "--db", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no readable result records" in err
    assert not (tmp_path / "o").exists()


def test_damaged_file_is_reported_and_the_rest_renders(db, tmp_path, capsys):
    (db / "broken.parquet").write_bytes(b"not parquet")
    assert main(["report", "--db", str(db), "--out", str(tmp_path / "o"), "--format", "md"]) == 0
    assert "broken.parquet" in capsys.readouterr().err
    assert "Full FT" in (tmp_path / "o" / "comparison.md").read_text()


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as e:
        main(["report", "--help"])
    assert e.value.code == 0
    assert "tunebench report --db" in capsys.readouterr().out
