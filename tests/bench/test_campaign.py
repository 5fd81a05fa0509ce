"""The GPU campaign, proven on the CPU: its data agrees with the catalogs and cards, its dry run works
where only the GPU machine's packages exist, and its JSON lines import as ordinary records.

    .venv/bin/python -m pytest -q tests/bench/test_campaign.py

The dry run goes through the real Makefile target (``make gpu-campaign DRY=1``) with the packages the
GPU machine lacks (and this project's own pydantic-based packages) made unimportable by a
``sitecustomize`` on PYTHONPATH, which also lists the modules the run loaded when it exits.
"""
import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from advisor.calibration import request_from_run
from advisor.catalogs import gpus, models
from advisor.cli import main
from bench.campaign_plan import METHODS, hf_config, peak_bf16_tflops, runs, spec
from bench.results import read_runs
from common.shape import shape_from_hf_config

ROOT = Path(__file__).resolve().parents[2]
# Not installed on the lent GPU machine (or ours, and needing pydantic): the campaign must not need them.
BLOCKED = ("polars", "trl", "bitsandbytes", "optuna", "pydantic", "pydantic_core", "datasets", "lm_eval",
           "textual", "psutil", "methods", "common", "reports", "advisor")
SITE = f"""
import atexit, os, sys
for name in {BLOCKED!r}:
    sys.modules[name] = None  # import raises ImportError; importlib.util.find_spec answers None

def _dump():
    with open(os.environ["CAMPAIGN_MODULES_OUT"], "w") as f:
        f.write("\\n".join(sorted(k for k, v in sys.modules.items() if v is not None)))

atexit.register(_dump)
"""


@pytest.mark.parametrize("name", sorted(spec()["models"]))
def test_campaign_shapes_are_the_catalogs(name):
    """The HF config the script builds has exactly the catalog's shape (so the estimator reads the same model)."""
    cfg = hf_config(spec()["models"][name]).to_dict()
    got, want = shape_from_hf_config(cfg, name), models()[name]
    assert got.hd == want.hd  # an HF config always states head_dim; the catalog only where it is not hidden/heads
    got = dataclasses.replace(got, head_dim=want.head_dim)
    assert got == want, f"bench/campaign_shapes.json {name} differs from the model catalog: {got} vs {want}"


def test_campaign_method_settings_are_the_cards_defaults():
    from methods import cards

    table = spec()["methods"]
    assert tuple(table) == METHODS
    for name, settings in table.items():
        assert settings == cards()[name].settings().model_dump(), name


@pytest.mark.parametrize("device, key", [
    ("NVIDIA H200", "h200"), ("NVIDIA H100 80GB HBM3", "h100-sxm"), ("NVIDIA H100 PCIe", "h100-pcie"),
    ("NVIDIA A100-SXM4-80GB", "a100-80gb"), ("NVIDIA L40S", "l40s"), ("AMD EPYC 7B13", None),
])
def test_mfu_peak_comes_from_the_gpu_catalog(device, key):
    got_key, peak = peak_bf16_tflops(device)
    assert got_key == key
    assert peak == (gpus()[key].bf16_tflops if key else None)


def test_plan_runs_longest_sequence_first_and_every_model_in_each_round():
    plan = runs()
    names = sorted(spec()["models"], key=lambda n: models()[n].params())
    assert len(plan) == 2 * 2 * len(names) * len(METHODS)
    first = plan[: len(names) * len(METHODS)]
    assert {(r.seq_len, r.grad_ckpt) for r in first} == {(2048, False)}
    assert [r.model for r in first[:: len(METHODS)]] == names
    assert [r.index for r in plan] == list(range(len(plan)))
    assert {r.key for r in plan if r.skip} == {r.key for r in plan if r.method == "prefix" and r.grad_ckpt}


@pytest.fixture(scope="module")
def dry(tmp_path_factory):
    """One dry campaign through `make gpu-campaign DRY=1`, without the packages the GPU machine lacks."""
    tmp = tmp_path_factory.mktemp("campaign")
    (tmp / "site").mkdir()
    (tmp / "site" / "sitecustomize.py").write_text(SITE)
    env = {**os.environ, "PYTHONPATH": str(tmp / "site"), "CAMPAIGN_MODULES_OUT": str(tmp / "modules.txt"),
           "OMP_NUM_THREADS": "1"}
    env.pop("OUT", None)
    proc = subprocess.run([shutil.which("make") or "make", "--no-print-directory", "gpu-campaign", "DRY=1",
                           f"OUT={tmp / 'out'}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    lines = [json.loads(s) for s in (tmp / "out" / "campaign.jsonl").read_text().splitlines()]
    return tmp, lines, (tmp / "modules.txt").read_text().split()


def test_dry_run_needs_only_the_gpu_machines_packages(dry):
    _, lines, loaded = dry
    assert {"torch", "transformers", "peft"} <= set(loaded)
    assert not [m for m in loaded if m.split(".")[0] in BLOCKED]
    assert not [m for m in loaded if m.startswith("bench.") and not m.startswith("bench.campaign")]
    kinds = [ln["kind"] for ln in lines]
    assert kinds[0] == "campaign" and kinds[-2:] == ["quality", "summary"]
    done = [ln for ln in lines if ln["kind"] == "run"]
    assert [ln["index"] for ln in done] == list(range(len(runs(dry=True))))  # nothing left out by the deadline
    assert lines[-1]["not_started"] == [] and lines[-1]["aborted"] is None
    assert lines[-2]["status"] == "skipped" and "bench run --matrix gpu-standard" in lines[-2]["reason"]


def test_dry_run_measures_every_method_with_the_cards_trainable_counts(dry):
    from methods import cards

    _, lines, _ = dry
    done = [ln for ln in lines if ln["kind"] == "run"]
    # qlora: bitsandbytes is blocked, exactly as it is missing on the GPU machine
    assert {ln["key"]: ln["error"] for ln in done if ln["method"] == "qlora"} == {
        ln["key"]: "qlora skipped: bitsandbytes is not importable here" for ln in done if ln["method"] == "qlora"}
    measured = [ln for ln in done if ln["status"] != "skipped"]
    assert {ln["method"] for ln in measured} == set(METHODS) - {"qlora"}
    assert [ln["key"] for ln in measured if ln["status"] != "ok"] == []
    for ln in measured:
        shape = shape_from_hf_config(hf_config(spec()["dry_models"][ln["model"]]).to_dict(), ln["model"])
        card = cards()[ln["method"]]
        assert ln["trainable_params"] == card.memory.trainable(shape, card.settings(**ln["method_cfg"])), ln["key"]
        assert ln["total_params"] == shape.params(), ln["key"]
        assert ln["trainable_tensors_without_grad"] == 0, ln["key"]
        assert len(ln["step_times_s"]) == ln["warmup_steps"] + ln["steps"] == 4
        assert ln["tokens_per_s"] == pytest.approx(ln["seq_len"] * ln["micro_batch"] / ln["step_time_s"])
        assert ln["fingerprint"]["hardware"].startswith("cpu-") and ln.get("peak_reserved_bytes") is None


def test_qlora_base_is_nf4_where_bitsandbytes_imports():
    """The random-init QLoRA base: every decoder linear NF4, the head and embeddings in bf16, nothing left on meta."""
    import bitsandbytes as bnb
    import torch

    from bench.campaign_qlora import nf4_model, param_count

    dims = spec()["dry_models"]["dry-tiny-qwen2"]
    model = nf4_model(dims, "cpu")
    shape = shape_from_hf_config(hf_config(dims).to_dict(), "dry-tiny-qwen2")
    quantized = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantized) == shape.layers * len(shape.linears())
    assert {m.weight.quant_type for m in quantized} == {"nf4"} and all(m.bias is not None for m in quantized[:3])
    assert type(model.lm_head) is torch.nn.Linear and model.lm_head.weight.dtype == torch.bfloat16
    assert sum(param_count(p) for p in model.parameters()) == shape.params()
    ids = torch.randint(0, dims["vocab"], (1, 8))
    assert torch.isfinite(model(input_ids=ids, labels=ids).loss)


def test_qlora_trains_with_the_cards_trainable_count_where_bitsandbytes_imports():
    """With bitsandbytes carried (its wheel fits the GPU machine's 64 MiB), qlora is measured, not skipped:
    the campaign's own build and train, in-process, on the tiny Qwen2 shape (qkv biases), checkpointing on."""
    from bench.campaign_run import build, train
    from methods import cards

    run = next(r for r in runs(dry=True, models=["dry-tiny-qwen2"], methods=["qlora"]) if r.grad_ckpt)
    model, total, _ = build(run, "cpu")
    got = train(model, run, "cpu", hard_deadline=float("inf"))
    card = cards()["qlora"]
    shape = shape_from_hf_config(hf_config(run.dims).to_dict(), run.model)
    assert (got["trainable_params"], total) == (card.memory.trainable(shape, card.settings()), shape.params())
    assert got["trainable_tensors_without_grad"] == 0 and len(got["step_times_s"]) == 4


def _import(argv, capsys):
    rc = main(["db", "import-campaign", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_import_makes_records_the_calibration_reads_once(dry, tmp_path, capsys):
    tmp, lines, _ = dry
    src = tmp / "out" / "campaign.jsonl"
    ok = [ln for ln in lines if ln["kind"] == "run" and ln["status"] == "ok"]
    rc, out, err = _import([src, "--db", tmp_path / "db"], capsys)
    assert rc == 0, err
    assert f"imported {len(ok)} records" in out
    df = read_runs(tmp_path / "db")
    assert len(df) == len(ok) and set(df["status"]) == {"ok"} and set(df["matrix"]) == {"gpu-campaign-dry"}
    for row in df.iter_rows(named=True):
        req = request_from_run(row)
        hp = json.loads(row["hyperparams"])["hp"]
        assert req is not None and (req.seq_len, req.micro_batch, req.grad_ckpt, req.precision) == (
            hp["max_length"], hp["batch_size"], hp["grad_ckpt"], "bf16")
        assert row["hardware"] and row["packages"] and row["tokens_per_s"] and row["trainable_params"]
    assert {r for r in df["run_id"]} == {r for r in df["run_id"] if r.startswith("gc-")}
    rc, out, _ = _import([src, "--db", tmp_path / "db"], capsys)  # the same file again adds nothing
    assert rc == 0 and "imported 0 records" in out and f"{len(ok)} already present" in out
    assert len(read_runs(tmp_path / "db")) == len(ok)


@pytest.mark.parametrize("damage, words", [
    (lambda t: t + "{not json\n", ["line", "not a campaign line"]),
    (lambda t: t.replace('"status": "ok"', '"status": "fine"', 1), ["status"]),
    (lambda t: t.replace('"seq_len": 32', '"seq_len": "32"', 1), ["seq_len"]),
    (lambda t: "\n".join(t.splitlines()[1:]), ["no header"]),
    (lambda t: "", ["no run lines"]),
])
def test_a_damaged_campaign_file_imports_nothing(dry, tmp_path, capsys, damage, words):
    src = tmp_path / "campaign.jsonl"
    src.write_text(damage((dry[0] / "out" / "campaign.jsonl").read_text()))
    rc, out, err = _import([src, "--db", tmp_path / "db"], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert all(w in err for w in words), err
    assert not (tmp_path / "db").exists()


def test_a_dry_campaign_is_never_imported_into_the_reference_folder(dry, capsys):
    rc, _, err = _import([dry[0] / "out" / "campaign.jsonl"], capsys)
    assert rc == 2 and "dry-run campaign" in err and "--db" in err


@pytest.mark.parametrize("argv, words", [
    (["--dry", "--models", "llama-9b"], ["llama-9b", "dry-tiny-llama"]),
    (["--methods", "lora,loraa"], ["loraa", "adapter_houlsby"]),
    (["--dry", "--deadline-s", "-5"], ["--deadline-s", "-5"]),
])
def test_campaign_bad_input_exits_2_with_one_line(argv, words, tmp_path, capsys):
    from bench.campaign import main as campaign

    assert campaign([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and all(w in err for w in words), err
    assert not (tmp_path / "out").exists()


def test_prefix_with_checkpointing_is_skipped_because_peft_refuses_it():
    """The plan skips prefix + checkpointing (bench/campaign_plan.py PREFIX_CKPT); peft must still refuse it."""
    from bench.campaign_plan import PREFIX_CKPT
    from bench.campaign_run import build

    run = next(r for r in runs(dry=True, methods=["prefix"]) if r.grad_ckpt)
    assert run.skip == PREFIX_CKPT
    with pytest.raises(ValueError, match="(?i)prefix.*gradient checkpointing"):
        build(dataclasses.replace(run, skip=None), "cpu")


@pytest.mark.parametrize("method", METHODS)
def test_nothing_of_a_run_outlives_it(method):
    """Runs share one process: a parameter kept alive (a hook, a cache) would inflate every later run's peak."""
    import gc
    import weakref

    from bench.campaign_run import build, train

    run = runs(dry=True, models=["dry-tiny-llama"], methods=[method])[0]
    model, _, _ = build(run, "cpu")
    train(model, run, "cpu", hard_deadline=float("inf"))
    refs = [weakref.ref(p) for p in model.parameters()]
    del model
    gc.collect()
    assert refs and not [r for r in refs if r() is not None]
