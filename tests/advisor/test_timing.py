"""The time model: speed factors fitted on measured runs, and the committed fit reproducible from its DB.

    .venv/bin/python -m pytest -q tests/advisor/test_timing.py
"""
import json
from pathlib import Path

import pytest

from advisor import timing
from advisor.cli import main
from advisor.timing_fit import calibrate_time

REFERENCE = Path(__file__).resolve().parents[2] / "reports" / "reference" / "cpu-amd-epyc-2c-smollm2-135m" / "db"


@pytest.mark.parametrize("mfu,fm,fo", [
    (0.25, {"lora": 1.0, "dora": 1.7, "boft": 4.0}, {"sft": 1.0, "dpo": 1.2}),
    (0.5, {"lora": 1.0, "full": 0.9}, {"sft": 1.0, "kto": 1.5, "grpo": 0.3}),
])
def test_fit_recovers_known_factors(mfu, fm, fo):
    rows = [(m, o, mfu / (fm[m] * fo[o])) for m in fm for o in fo]
    fit = timing.fit_speed(rows)
    assert fit["mfu"] == pytest.approx(mfu, rel=1e-6)
    assert fit["method"] == pytest.approx(fm, rel=1e-6) and fit["objective"] == pytest.approx(fo, rel=1e-6)
    err = timing.speed_errors(rows)
    assert err["in_sample"]["median"] == pytest.approx(0, abs=1e-9)


def test_one_noisy_run_moves_the_median_fit_little():
    rows = [("lora", "sft", 0.2)] * 4 + [("lora", "sft", 2.0)] + [("dora", "sft", 0.1)] * 3
    fit = timing.fit_speed(rows)
    assert fit["mfu"] == pytest.approx(0.2) and fit["method"]["dora"] == pytest.approx(2.0)


def test_committed_fit_is_what_the_reference_db_gives(tmp_path):
    """advisor/timing.json is the output of calibrate-time on the reference DB, not typed in."""
    committed = json.loads(timing.TIMING.read_text())
    doc = calibrate_time([REFERENCE], tmp_path / "t.json")
    assert doc["classes"]["cpu"]["method"] == committed["classes"]["cpu"]["method"]
    assert doc["classes"]["cpu"]["mfu"] == committed["classes"]["cpu"]["mfu"]
    assert doc["classes"]["cpu"]["error"]["in_sample"]["median"] <= 0.2  # the bar, per hardware


def test_calibrate_time_cli_and_bad_input(tmp_path, capsys):
    assert main(["estimate", "calibrate-time", "--db", str(REFERENCE), "--out", str(tmp_path / "t.json")]) == 0
    assert "leaving each run out" in capsys.readouterr().out and (tmp_path / "t.json").exists()
    (tmp_path / "empty").mkdir()
    assert main(["estimate", "calibrate-time", "--db", str(tmp_path / "empty"), "--out", str(tmp_path / "u.json")]) == 2
    assert not (tmp_path / "u.json").exists()
