"""report_to: a local TensorBoard log per stage, its path in the record, refusals for the rest."""
import json

import pytest

from advisor.cli import main
from bench.results import read_runs
from bench.tracking import scalars

YAML = """model: tiny-llama
task: smoke
hp: {{max_steps: 4, eval_limit: 0}}
report_to: {report_to}
stages:
  - {{objective: sft, method: lora}}
"""


def test_tensorboard_log_holds_the_loss_curve_and_the_record_its_path(tmp_path, tiny_llama):
    spec = tmp_path / "s.yaml"
    spec.write_text(YAML.format(report_to="tensorboard"))
    assert main(["train", str(spec), "--out", str(tmp_path / "run"), "--db", str(tmp_path / "db"), "--quiet"]) == 0
    rec = read_runs(tmp_path / "db").row(0, named=True)
    extra = json.loads(rec["extra"])
    assert extra["report_to"] == "tensorboard"
    assert extra["report_dir"] == str(tmp_path / "run" / "stage0-sft-lora" / "tensorboard")
    curve = scalars(extra["report_dir"], "train/loss")
    assert [step for step, _ in curve] == [1, 2, 3, 4]
    # the record's train_loss is the mean of the logged per-step losses
    assert sum(v for _, v in curve) / 4 == pytest.approx(rec["train_loss"], rel=1e-5)


@pytest.mark.parametrize("report_to, needle", [
    ("mlflow", "report_to mlflow is not supported"),
    ("wandb", "report_to"),
])
def test_unsupported_trackers_exit_2_before_training(tmp_path, capsys, report_to, needle):
    spec = tmp_path / "s.yaml"
    spec.write_text(YAML.format(report_to=report_to))
    assert main(["train", str(spec), "--out", str(tmp_path / "run"), "--db", str(tmp_path / "db"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "db").exists() or not any((tmp_path / "db").iterdir())


def test_report_to_flag_overrides_the_yaml(tmp_path, tiny_llama):
    spec = tmp_path / "s.yaml"
    spec.write_text(YAML.format(report_to="none"))
    assert main(["train", str(spec), "--report-to", "tensorboard", "--max-steps", "2", "--out", str(tmp_path / "run"),
                 "--db", str(tmp_path / "db"), "--quiet"]) == 0
    extra = json.loads(read_runs(tmp_path / "db").row(0, named=True)["extra"])
    assert [step for step, _ in scalars(extra["report_dir"])] == [1, 2]
