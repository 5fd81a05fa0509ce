"""``tunebench report`` end to end through advisor.cli.main: files written, bad input exit 2."""
import pytest
from report_records import frame, rec, sft, write_db

from advisor.cli import main


@pytest.fixture
def db(tmp_path):
    return write_db(tmp_path / "db", [
        sft("full", trainable=134_515_008, mem_gib=4.9, metric_after=0.8, forgetting=0.3),
        sft("lora", trainable=2_442_240, mem_gib=4.5, metric_after=0.78, forgetting=0.05),
        sft("lora", hardware="NVIDIA H100", peak_reserved_bytes=20 * 2**30),
        rec("sft:adapter_houlsby", status="oom", error="OutOfMemoryError: out of memory"),
    ])


def test_report_writes_tables_and_plots(db, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["report", "--db", str(db), "--out", str(out)]) == 0
    md, page = (out / "comparison.md").read_text(), (out / "comparison.html").read_text()
    assert md.count("## smollm2-135m on ") == 2  # one section per hardware
    assert "## smollm2-135m on NVIDIA H100" in md and "## smollm2-135m on cpu-test-2c" in md
    assert "| Full FT | sft:full | wiki-topics | 135M (100.0%) | 4.90 GiB host RSS |" in md
    assert "— (oom)" in md and "### Folklore vs measured" in md
    assert "| Full fine-tuning forgets the most | wiki-topics | holds |" in md
    pngs = sorted(out.rglob("*.png"))
    assert pngs and all(f"({p.relative_to(out).as_posix()})" in md for p in pngs)
    assert page.count("data:image/png;base64,") == len(pngs)
    assert "<table>" in page and "v-holds" in page
    assert str(out / "comparison.md") in capsys.readouterr().out


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
