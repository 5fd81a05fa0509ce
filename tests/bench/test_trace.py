"""bench/trace.py: the traced step on fake tensors against the same step measured for real.

The real step is the harness's meter (bench/metrics.py Meter: live tensors where backward
starts) around two forward/backward/AdamW steps of tiny-llama; the trace must land within 2%
of it (measured here: within 0.1%) and account the weights exactly. The same holds for a tiny
Mixtral in fp32 (grouped_mm experts through the fp32 fake kernel); prefix methods train with
gradient checkpointing (the real path) and the counter names the storages live at the peak.
"""
import pytest
import torch

from bench.trace import TraceRequest, trace_peak
from bench.trace_check import model_config

CASES = [("sft", "lora"), ("sft", "full"), ("sft", "qlora"), ("sft", "boft")]  # boft: real block_diag vs traced strided copy


def live_cpu_bytes() -> int:
    """Bytes of the CPU tensor storages alive now, each counted once (what the Meter's heap walk sees)."""
    import gc

    gc.collect()
    seen = {}
    for obj in gc.get_objects():
        try:
            if isinstance(obj, torch.Tensor) and obj.device.type == "cpu" and not obj.is_meta:
                st = obj.untyped_storage()
                seen[st.data_ptr()] = st.nbytes()
        except Exception:  # fake or subclass tensors without a plain storage
            continue
    return sum(seen.values())


def _two_steps_peak(model, b: int, t: int, padded: bool = False) -> tuple[int, list]:
    """Peak live tensor bytes over two real AdamW training steps of ``model`` on random ids (``padded``:
    the first row's last 8 positions are padding), and the meter's record of what each boundary fed."""
    from bench.metrics import Meter

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], fused=True)
    ids, mask = torch.randint(0, 1000, (b, t)), torch.ones(b, t, dtype=torch.long)
    if padded:
        mask[0, -8:] = 0
    with Meter() as meter:
        meter.watch(model)
        for _ in range(2):
            loss = model(input_ids=ids, attention_mask=mask, labels=ids, use_cache=False).loss
            loss.backward()
            del loss
            opt.step()
            opt.zero_grad()
    return meter.result()["peak_tensor_bytes"], meter.boundary_batches


def measured(method: str, b: int, t: int, padded: bool = False) -> int:
    """The meter's peak minus what earlier tests in this process left alive (the meter walks the heap)."""
    from transformers import AutoModelForCausalLM

    from bench.models import model_path
    from methods import parameterization

    par = parameterization(method)
    before = live_cpu_bytes()
    kw = par.load_kwargs(par.make_config({})) if par.load_kwargs else {}
    model = AutoModelForCausalLM.from_pretrained(model_path("tiny-llama"), dtype=torch.float32, **kw)
    model = par.apply(model, par.make_config({}))
    peak, fed = _two_steps_peak(model, b, t, padded)
    assert fed == [[b, t, padded]] * 2  # the meter saw the batch's shape and whether attention got a mask
    return peak - before


@pytest.mark.parametrize("objective,method", CASES)
def test_trace_matches_measured_step(tiny_llama, objective, method):
    # the real step below takes the model's own loss over full logits: trace the same head
    tr = trace_peak(TraceRequest(config=model_config("tiny-llama"), method=method, objective=objective,
                                 seq_len=64, micro_batch=4, precision="fp32", lm_head="full"))
    real = measured(method, 4, 64)
    traced = max(tr.boundary_bytes.values())
    assert abs(traced / real - 1) < 0.02, (traced, real)
    assert tr.peak_bytes >= traced
    assert sum(tr.breakdown.values()) == tr.peak_bytes


@pytest.mark.parametrize("method", ["lora", "full"])
def test_padded_batch_trace_matches_measured_step(tiny_llama, method):
    """A batch with padding keeps a (batch, 1, seq, seq) mask per layer and SDPA repeats tiny-llama's 2 k/v heads
    to its 4 query heads: the trace with ``padded`` matches that real step, and costs more than the unpadded one."""
    req = TraceRequest(config=model_config("tiny-llama"), method=method, objective="sft", seq_len=64, micro_batch=4,
                       precision="fp32", lm_head="full", padded=True)
    traced = max(trace_peak(req).boundary_bytes.values())
    real = measured(method, 4, 64, padded=True)
    assert abs(traced / real - 1) < 0.02, (traced, real)
    from dataclasses import replace

    assert traced > max(trace_peak(replace(req, padded=False)).boundary_bytes.values())


def test_boft_block_diag_matches_peft():
    """The traced BOFT rotation (one strided copy) gives torch.block_diag's values and gradients on real tensors."""
    from peft.tuners.boft import layer as boft

    from bench.trace_model import boft_block_diag

    class Layer(torch.nn.Module):
        fbd_cuda_available = False

    blocks = torch.randn(1, 6, 4, 4, requires_grad=True)
    want = torch.block_diag(*torch.unbind(blocks[0])).unsqueeze(0)
    (want * torch.arange(want.numel()).view_as(want)).sum().backward()
    grad, blocks.grad = blocks.grad, None
    layer, notes = Layer(), []
    with boft_block_diag(layer, notes):
        assert layer.fbd_cuda_available
        got = boft.FastBlockDiag.apply(blocks)
        (got * torch.arange(got.numel()).view_as(got)).sum().backward()
    assert not layer.fbd_cuda_available and notes
    assert torch.equal(got, want) and torch.equal(blocks.grad, grad)


def test_weights_and_states_exact():
    """fp32 full fine-tuning: trainable weights = 4 B/param, AdamW states = 8 B/param at the peak of step 2."""
    tr = trace_peak(TraceRequest(config=model_config("tiny-llama"), method="full", objective="sft",
                                 seq_len=32, micro_batch=2, precision="fp32"))
    n = tr.trainable_params
    assert tr.peak_step == 1  # step 2 holds the optimizer state
    assert tr.breakdown["trainable"] == 4 * n
    assert 8 * n <= tr.breakdown["optimizer"] < 8.01 * n  # exp_avg + exp_avg_sq (+ fp32 step counters)


def _lora(objective: str, lm_head: str = "fused"):
    return trace_peak(TraceRequest(config=model_config("tiny-llama"), method="lora", objective=objective,
                                   seq_len=32, micro_batch=2, precision="bf16", gen_len=8, lm_head=lm_head))


# dpo scores through TRL's fused head like sft; orpo and our ppo loop build full logits
@pytest.mark.parametrize("objective,head,extra_weights", [("dpo", "fused", False), ("ppo", "full", True),
                                                          ("orpo", "full", False)])
def test_objectives_cost_more_than_sft(objective, head, extra_weights):
    """Pairs / rollouts / a reward model each make the step's peak larger than SFT on the same prompts."""
    tr, sft = _lora(objective), _lora("sft", head)
    assert tr.peak_bytes > sft.peak_bytes
    if extra_weights:  # ppo's reward model is a second resident model
        assert tr.breakdown["extra_models"] > sft.breakdown["weights"] * 0.5


def test_zero_shards_as_the_step_runs():
    """ZeRO over 4 ranks counted on one rank: each stage holds less at its peak, the peak's breakdown still
    sums to it, and the sharded parts are a quarter of the unsharded trace's (states from stage 1, gradients
    from 2, weights at 3). The peak is the largest sharded total at any op, which need not be where the
    unsharded step peaked (sharded gradients can leave the activation-heavy start of the backward larger)."""
    def tr(stage):
        return trace_peak(TraceRequest(config=model_config("tiny-llama"), method="full", objective="sft",
                                       seq_len=32, micro_batch=2, precision="bf16", zero_stage=stage, num_gpus=4))

    z0, z1, z2, z3 = (tr(s) for s in range(4))
    # a tiny model peaks early in the backward, before most gradients exist: stage 2 may save nothing there
    assert z0.peak_bytes > z1.peak_bytes >= z2.peak_bytes > z3.peak_bytes
    for t in (z1, z2, z3):
        assert sum(t.breakdown.values()) == t.peak_bytes
        assert t.breakdown["optimizer"] == pytest.approx(z0.breakdown["optimizer"] / 4, rel=0.01)
    assert z2.breakdown["grads"] <= z0.breakdown["trainable"] / 4 * 1.01
    assert z3.breakdown["trainable"] == pytest.approx(z0.breakdown["trainable"] / 4, rel=0.01)
    assert any("ZeRO-2 over 4 ranks" in n for n in z2.notes)


def test_zero3_counts_autocast_weight_copies_as_sharded_weights():
    """fp32 master weights under bf16 autocast at ZeRO-3: the bf16 copies autocast makes are the rank's share
    of the low-precision weights (as ZeRO-3 / FSDP keep them), not full copies among the activations."""
    def tr(stage):
        return trace_peak(TraceRequest(config=model_config("tiny-llama"), method="full", objective="sft",
                                       seq_len=32, micro_batch=2, precision="mixed", zero_stage=stage, num_gpus=4))

    m0, m3 = tr(0), tr(3)
    assert m3.breakdown["trainable"] > m0.breakdown["trainable"] / 4  # fp32 shard + the bf16 copies' shard
    assert m3.breakdown["activations"] < m0.breakdown["activations"]
    assert sum(m3.breakdown.values()) == m3.peak_bytes


def test_zero3_keeps_buffers_whole():
    """ZeRO-3 / FSDP shard parameters, not buffers: BOFT's fp32 permutation buffers (the card's
    frozen_extra, what the estimator counts) stay whole on every rank while the base weights shrink."""
    from common.shape import shape_from_hf_config
    from methods.boft import CARD, BOFTSettings

    cfg = model_config("tiny-llama")
    s = shape_from_hf_config({**cfg}, "tiny-llama")
    buffers = CARD.memory.frozen_extra(s, BOFTSettings())

    def tr(stage):
        return trace_peak(TraceRequest(config=cfg, method="boft", objective="sft", seq_len=32, micro_batch=2,
                                       precision="bf16", zero_stage=stage, num_gpus=4))

    z0, z3 = tr(0), tr(3)
    frozen = z0.breakdown["weights"] - buffers  # the base's parameters (and rotary tables, a few hundred bytes)
    assert buffers > 0.1 * frozen
    assert z3.breakdown["weights"] == pytest.approx(frozen / 4 + buffers, rel=0.01)
    assert any("buffers stay whole" in n for n in z3.notes)


def test_qlora_storage_matches_the_estimators_nf4_bytes():
    """The estimator's NF4 storage (advisor/estimator.py NF4_STORED) is what bnb's layers hold."""
    from advisor.estimator import NF4_STORED
    from common.shape import shape_from_hf_config

    cfg = model_config("tiny-llama")
    s = shape_from_hf_config({**cfg}, "tiny-llama")
    tr = trace_peak(TraceRequest(config=cfg, method="qlora", objective="sft", seq_len=16, micro_batch=1))
    lin = s.linear_params()
    assert tr.breakdown["weights"] == pytest.approx(lin * NF4_STORED + (s.params() - lin) * 4, rel=0.001)


def tiny_moe_config() -> dict:
    """tiny-llama's shape as a Mixtral with 4 experts (2 routed per token)."""
    return {**model_config("tiny-llama"), "model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2}


@pytest.mark.parametrize("precision,fake_kernel", [("bf16", False), ("mixed", True), ("fp32", True)])
def test_moe_experts_trace_in_every_precision(precision, fake_kernel):
    """transformers' grouped_mm experts on fp32 weights (mixed = fp32 master weights) trace like bf16 ones;
    the trace says where the fp32 grouped_mm fake kernel stood in."""
    tr = trace_peak(TraceRequest(config=tiny_moe_config(), method="lora", objective="sft", seq_len=32,
                                 micro_batch=2, precision=precision))
    assert sum(tr.breakdown.values()) == tr.peak_bytes
    assert any(n.startswith("MoE experts") for n in tr.notes) == fake_kernel


def test_moe_fp32_trace_matches_measured_step():
    """The fp32 grouped_mm fake kernel against the real CPU kernel: same tiny Mixtral, full fine-tuning
    (expert weights get gradients), two AdamW steps; live bytes where backward starts within 2%."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = tiny_moe_config()
    tr = trace_peak(TraceRequest(config=cfg, method="full", objective="sft", seq_len=64, micro_batch=4,
                                 precision="fp32", lm_head="full"))
    before = live_cpu_bytes()
    hf = AutoConfig.for_model(**cfg)
    model = AutoModelForCausalLM.from_config(hf, dtype=torch.float32)
    real = _two_steps_peak(model, 4, 64)[0] - before
    traced = max(tr.boundary_bytes.values())
    assert abs(traced / real - 1) < 0.02, (traced, real)


@pytest.mark.parametrize("method", ["prefix", "ptuning"])
def test_prefix_methods_train_with_checkpointing(tiny_llama, method):
    """Gradient checkpointing used to drop peft's prefix cache in every layer (a size mismatch against the
    prefix-extended mask): the real model now gives the same loss and gradients with it on as off, and the
    trace runs and keeps less of the forward."""
    from transformers import AutoModelForCausalLM

    from bench.models import model_path
    from methods import parameterization

    def step(ckpt: bool):
        torch.manual_seed(0)
        par = parameterization(method)
        model = par.apply(AutoModelForCausalLM.from_pretrained(model_path("tiny-llama"), dtype=torch.float32),
                          par.make_config({}))
        if ckpt:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()
        ids = torch.arange(48).reshape(2, 24) % 500
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        return loss.item(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}

    (l0, g0), (l1, g1) = step(False), step(True)
    assert l0 == l1
    assert all(torch.equal(g0[k], g1[k]) for k in g0)
    on, off = (trace_peak(TraceRequest(config=model_config("tiny-llama"), method=method, objective="dpo", seq_len=32,
                                       micro_batch=2, grad_ckpt=ckpt)) for ckpt in (True, False))
    assert on.peak_bytes < off.peak_bytes


def test_live_bytes_names_the_storages_at_the_peak():
    """Real CPU tensors through the counter: alloc a, b; free a; alloc c bigger than a -> the peak's set is
    {b, c}, not {a, b} (a was freed before the peak) and not a later set."""
    from bench.trace_count import LiveBytes

    with LiveBytes() as live:
        a = torch.empty(256, dtype=torch.float32)  # 1 KiB
        b = torch.empty(512, dtype=torch.float32)  # 2 KiB
        del a
        c = torch.empty(1024, dtype=torch.float32)  # 4 KiB: peak 6 KiB with b and c
        del b
        d = torch.empty(128, dtype=torch.float32)  # after the peak: not in its set
    assert live.peak == 6144
    assert sorted(n for n, _ in live.peak_storages().values()) == [2048, 4096]
    del c, d
