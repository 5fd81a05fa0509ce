"""Framework profiles (advisor/frameworks.py, advisor/catalog/frameworks.yaml): cited defaults, explicit flags
winning, the post-estimate mechanisms (DeepSpeed master layout, CPU offload) and the cheapest fix."""
import json
from dataclasses import replace

import pytest

from advisor import estimator
from advisor import frameworks as F
from advisor.catalogs import gpu, shape
from advisor.cli import main
from advisor.estimator import GIB, Request

FRAMEWORKS = ("tunebench", "hf-trainer", "trl", "deepspeed-zero2", "deepspeed-zero3", "deepspeed-zero3-offload",
              "fsdp", "torchtune", "unsloth", "llama-factory", "axolotl")
METHODS = ("lora", "qlora", "full")
# A different value for each knob, to check that a flag the user gave wins over the profile.
OTHER = {"grad_ckpt": lambda v: not v, "amp": lambda v: not v, "master_weights": lambda v: not v,
         "adapter_fp32": lambda v: not v, "precision": lambda v: "fp16" if v != "fp16" else "bf16",
         "optimizer": lambda v: "sgd" if v != "sgd" else "adamw", "lm_head": lambda v: "full" if v == "fused" else "fused",
         "zero_stage": lambda v: 1 if v != 1 else 2}


def request(method="lora", **kw) -> Request:
    return Request(shape=shape("llama-3.1-8b"), method=method, **kw)


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_catalog_holds_every_framework():
    assert tuple(F.profiles()) == FRAMEWORKS


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_every_default_has_a_source(name):
    rows = [r for r in F.table() if r["framework"] == name]
    assert rows, name
    for r in rows:
        kind, values = F.ACCEPTED[r["knob"]]
        assert type(r["value"]) is kind and (values is None or r["value"] in values)
        assert len(r["source"]) >= 20 and r["source"] != r["knob"]


# What the sources say, stated once more here so a catalog edit that changes them is noticed.
@pytest.mark.parametrize("name,method,knob,value", [
    ("tunebench", "lora", "grad_ckpt", False), ("tunebench", "lora", "master_weights", True),
    ("tunebench", "lora", "lm_head", "fused"), ("hf-trainer", "lora", "grad_ckpt", False),
    ("hf-trainer", "qlora", "grad_ckpt", True), ("hf-trainer", "lora", "lm_head", "full"),
    ("trl", "lora", "grad_ckpt", True), ("trl", "lora", "master_weights", True), ("trl", "lora", "lm_head", "fused"),
    ("deepspeed-zero2", "full", "zero_stage", 2), ("deepspeed-zero3", "full", "zero_stage", 3),
    ("deepspeed-zero3", "full", "master_weights", False), ("fsdp", "full", "zero_stage", 3),
    ("torchtune", "lora", "grad_ckpt", True), ("torchtune", "full", "optimizer", "paged_adamw8bit"),
    ("torchtune", "lora", "lm_head", "fused"), ("torchtune", "qlora", "lm_head", "full"),
    ("unsloth", "qlora", "optimizer", "adamw8bit"), ("unsloth", "qlora", "grad_ckpt", True),
    ("llama-factory", "full", "master_weights", True), ("llama-factory", "lora", "master_weights", False),
    ("axolotl", "lora", "optimizer", "adamw8bit"), ("axolotl", "qlora", "optimizer", "adamw"),
    ("axolotl", "full", "optimizer", "paged_adamw8bit"),
])
def test_profile_sets_the_cited_default(name, method, knob, value):
    assert getattr(F.apply(name, request(method)), knob) == value


@pytest.mark.parametrize("name", FRAMEWORKS)
@pytest.mark.parametrize("method", METHODS)
def test_explicit_flags_win(name, method):
    req = request(method)
    knobs = F.profile(name).knobs(F.family(req), cpu=False)
    for knob, cited in knobs.items():
        if knob in F.POST:
            assert getattr(F.resolve(name, req, {knob}), knob) is False  # an explicit knob is not the profile's
            continue
        mine = OTHER[knob](cited.value)
        got = F.apply(name, replace(req, **{knob: mine}), {knob})
        assert getattr(got, knob) == mine, (name, knob)
        assert getattr(F.apply(name, req), knob) == cited.value


def test_explicit_master_weights_replaces_the_deepspeed_layout():
    a = F.resolve("deepspeed-zero3", replace(request("full"), master_weights=True), {"master_weights"})
    assert a.request.master_weights and not a.master_in_optimizer


def test_tunebench_on_cpu_trains_fp32_with_full_logits():
    got = F.apply("tunebench", request(gpu=gpu("cpu")))
    assert (got.precision, got.master_weights, got.amp, got.lm_head) == ("fp32", False, False, "full")


def test_unknown_framework_is_a_user_error():
    with pytest.raises(Exception, match="did you mean axolotl"):
        F.apply("axolotll", request())


def test_master_in_optimizer_is_fp32_master_and_moments_sharded():
    req = request("full", num_gpus=4, gpu=gpu("h100"))
    res = F.run("deepspeed-zero3", req)
    est = res.estimate
    assert est.breakdown["optimizer_states"] == pytest.approx(est.trainable_params * 12 / 4)
    assert est.peak_bytes == pytest.approx(sum(est.breakdown.values()))


def test_offload_moves_states_and_weights_to_host():
    req = request("full", num_gpus=2, gpu=gpu("a100-80gb"))
    on_gpu = F.run("deepspeed-zero3", req)
    res = F.run("deepspeed-zero3-offload", req)
    b = res.estimate.breakdown
    assert b["optimizer_states"] == 0 and res.offloaded["optimizer_states"] == on_gpu.estimate.breakdown["optimizer_states"]
    # only the gathered layer's 16-bit weights stay on the GPU
    assert b["weights"] == 0 and b["zero3_gathered_layer"] == pytest.approx(req.shape.layer_params() * 2)
    assert res.estimate.peak_bytes == pytest.approx(sum(b.values()))
    assert res.estimate.peak_bytes < on_gpu.estimate.peak_bytes


@pytest.mark.parametrize("name,method,kw,gpu_name", [
    ("tunebench", "qlora", dict(seq_len=2048, micro_batch=2), "rtx-4090"),    # grad ckpt is enough
    ("trl", "lora", dict(seq_len=2048, micro_batch=2), "rtx-4090"),           # qlora is the cheapest
    ("axolotl", "lora", dict(seq_len=2048, micro_batch=4), "rtx-4090"),       # micro-batch 1
    ("trl", "full", dict(seq_len=2048, micro_batch=2), "rtx-4090"),           # more GPUs
    ("hf-trainer", "full", dict(seq_len=2048, micro_batch=2), "rtx-4090"),    # stacked changes
    ("tunebench", "full", {}, "h100"),
    ("deepspeed-zero3-offload", "lora", dict(seq_len=4096), "l4"),
])
def test_fix_really_fits_and_nothing_cheaper_does(name, method, kw, gpu_name):
    g = gpu(gpu_name)
    res = F.run(name, request(method, gpu=g, **kw))
    assert not estimator.fits_gpu(res.estimate, g)
    fix = F.find_fix(res.assumed.request, g, res.assumed)
    assert fix is not None and fix.fits
    again = F.estimate(fix.assumed).estimate  # recomputed from the changed request alone
    assert estimator.fits_gpu(again, g) and again.peak_bytes == pytest.approx(fix.estimate.peak_bytes)
    assert f"{again.peak_bytes / GIB:.1f} GiB" in fix.line(g)
    base = replace(res.assumed, request=replace(res.assumed.request, gpu=g))
    singles = F.changes(base, g)
    labels = [label for label, _ in singles]
    cheaper = singles[:labels.index(fix.labels[0])] if len(fix.labels) == 1 else singles
    for label, changed in cheaper:
        assert not estimator.fits_gpu(F.estimate(changed).estimate, g), label


def test_no_fix_when_it_fits():
    g = gpu("h200")
    res = F.run("trl", request("qlora", gpu=g))
    assert F.find_fix(res.assumed.request, g, res.assumed) is None


def test_cli_prints_assumptions_and_the_fix(capsys):
    code, out, _ = cli(capsys, "estimate", "--model", "llama-3.1-8b", "--method", "qlora", "--seq-len", "2048",
                       "--micro-batch", "2", "--gpu", "rtx-4090")
    assert code == 0
    assert "assumed: tunebench · grad ckpt off · bf16 autocast · fp32 master weights · adamw · fused LM head" in out
    assert "fix: fits with --grad-ckpt: " in out


@pytest.mark.parametrize("flags,grad_ckpt", [((), True), (("--no-grad-ckpt",), False)])
def test_cli_json_framework_and_explicit_flag(capsys, flags, grad_ckpt):
    code, out, _ = cli(capsys, "estimate", "--model", "llama-3.2-3b", "--framework", "trl", "--gpu", "h200",
                       "--json", *flags)
    d = json.loads(out)
    assert code == 0 and d["framework"] == "trl" and d["fix"] is None
    assert d["assumed"]["grad_ckpt"] is grad_ckpt and d["assumed"]["lm_head"] == "fused"
    assert ("grad_ckpt" in d["assumed"]["from_profile"]) is not flags


def test_cli_unknown_framework_exits_2(capsys):
    code, out, err = cli(capsys, "estimate", "--model", "llama-3.2-3b", "--framework", "axolotll")
    assert code == 2 and "axolotll" in err and "axolotl" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_lists_frameworks_with_sources(capsys):
    code, out, _ = cli(capsys, "estimate", "frameworks", "--json")
    rows = json.loads(out)
    assert code == 0 and {r["framework"] for r in rows} == set(FRAMEWORKS) and all(r["source"] for r in rows)
