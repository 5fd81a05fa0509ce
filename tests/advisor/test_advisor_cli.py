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
    from advisor.catalogs import shape
    from advisor.estimator import Request, estimate
    from methods import OBJECTIVES, PARAMETERIZATIONS

    s = shape("phi-2")  # has bias terms, so every parameterization applies
    for name in PARAMETERIZATIONS:
        assert estimate(Request(shape=s, method=name)).trainable_params > 0, name
    for name in OBJECTIVES:
        assert estimate(Request(shape=s, objective=name)).peak_bytes > 0, name


def test_methods_json_reads_cards_without_torch():
    code = "import sys; from advisor.commands.methods import describe; describe(); assert 'torch' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


def test_methods_json_carries_the_cards(capsys):
    code, out, _ = run(capsys, "methods", "--json")
    info = json.loads(out)
    pars = {r["name"]: r for r in info["parameterizations"]}
    objs = {r["name"]: r for r in info["objectives"]}
    lora, prefix = pars["lora"], pars["prefix"]
    assert lora["label"] == "LoRA" and lora["latency"] == "none" and lora["shares_base"] and lora["mergeable"]
    assert lora["defaults"]["r"] == 8 and lora["defaults"] == lora["config"]
    assert prefix["latency"] == "extra-tokens" and not prefix["mergeable"] and not pars["full"]["shares_base"]
    assert objs["dpo"]["sequences"] == 2 and "reference" in objs["dpo"]["needs"]
    assert objs["rm"]["provides"] == ["reward_model"] and objs["rm"]["head"] == "seq_cls"
    assert objs["grpo"]["generates"] and "label" in objs["sft"]
