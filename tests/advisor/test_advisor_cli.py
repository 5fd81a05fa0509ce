"""CLI contracts: estimate/advise/gpus/models JSON shapes; unknown names exit 2 with the closest names."""
import json
import subprocess
import sys

import pytest

from advisor.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_estimate_json_shape(capsys):
    code, out, _ = run(capsys, "estimate", "--model", "llama-3.1-8b", "--method", "qlora", "--gpu", "rtx-4090",
                       "--tokens", "1e7", "--json")
    d = json.loads(out)
    assert code == 0 and {"peak_gib", "breakdown", "fits", "hours", "cost_usd"} <= set(d)
    assert d["peak_gib"] == pytest.approx(sum(d["breakdown"].values()), abs=0.02)
    assert isinstance(d["fits"], bool) and d["hours"] > 0


def test_estimate_params_b_without_gpu(capsys):
    code, out, _ = run(capsys, "estimate", "--params-b", "7", "--method", "full", "--json")
    d = json.loads(out)
    assert code == 0 and d["fits"] is None and d["hours"] is None and d["cost_usd"] is None


def test_advise_json_shape(capsys):
    code, out, _ = run(capsys, "advise", "--gpu", "l4", "--goal", "chat", "--data", "pairs,preferences",
                       "--budget-hours", "24", "--json")
    recs = json.loads(out)["recommendations"]
    assert code == 0 and recs
    for r in recs:
        assert {"stack", "model", "peak_gib", "hours", "cost_usd", "fits", "why", "evidence"} <= set(r)
        assert r["fits"] is True and r["peak_gib"] <= 24


@pytest.mark.parametrize("argv,bad,close", [
    (["estimate", "--model", "llama-3.2-3b", "--gpu", "h1000"], "h1000", "h100"),
    (["estimate", "--model", "lama-3.1-8b"], "lama-3.1-8b", "llama-3.1-8b"),
    (["estimate", "--model", "llama-3.2-3b", "--method", "lorra"], "lorra", "lora"),
    (["estimate", "--model", "llama-3.2-3b", "--objective", "dpoo"], "dpoo", "dpo"),
    (["advise", "--gpu", "rtx4090", "--goal", "chat"], "rtx4090", "rtx-4090"),
    (["advise", "--gpu", "l4", "--goal", "chatbot"], "chatbot", "chat"),
])
def test_unknown_names_exit_2_with_closest(capsys, argv, bad, close):
    code, out, err = run(capsys, *argv)
    assert code == 2 and bad in err and close in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_catalog_commands(capsys):
    _, out, _ = run(capsys, "gpus", "--json")
    keys = {g["key"] for g in json.loads(out)}
    assert {"h200", "h100-sxm", "h100-pcie", "a100-80gb", "a100-40gb", "l40s", "a6000", "a10g", "l4", "t4",
            "v100", "rtx-5090", "rtx-4090", "rtx-4080", "rtx-3090", "rtx-3060", "cpu"} <= keys
    _, out, _ = run(capsys, "models", "--json")
    names = {m["name"] for m in json.loads(out)}
    assert {"smollm2-135m", "llama-3.1-8b", "mixtral-8x7b", "qwen2.5-72b", "phi-4", "falcon-7b", "opt-1.3b"} <= names


def test_core_does_not_import_textual():
    code = "import sys, advisor.estimator, advisor.ranking, advisor.calibration; sys.exit(1 if 'textual' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_estimator_knows_every_registered_method():
    from advisor.method_table import OBJECTIVES, PARAMS
    from methods import OBJECTIVES as REG_OBJ
    from methods import PARAMETERIZATIONS as REG_PAR

    assert set(REG_PAR) <= set(PARAMS) and set(REG_OBJ) <= set(OBJECTIVES)
