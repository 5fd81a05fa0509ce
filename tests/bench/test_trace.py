"""bench/trace.py: the traced step on fake tensors against the same step measured for real.

The real step is the harness's meter (bench/metrics.py Meter: live tensors where backward
starts) around two forward/backward/AdamW steps of tiny-llama; the trace must land within 2%
of it (measured here: within 0.1%) and account the weights exactly.
"""
import pytest
import torch

from bench.trace import TraceRequest, trace_peak, zero_shard
from bench.trace_check import model_config

CASES = [("sft", "lora"), ("sft", "full"), ("sft", "qlora")]


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


def measured(method: str, b: int, t: int) -> int:
    """The meter's peak minus what earlier tests in this process left alive (the meter walks the heap)."""
    from transformers import AutoModelForCausalLM

    from bench.metrics import Meter
    from bench.models import model_path
    from methods import parameterization

    par = parameterization(method)
    before = live_cpu_bytes()
    kw = par.load_kwargs(par.make_config({})) if par.load_kwargs else {}
    model = AutoModelForCausalLM.from_pretrained(model_path("tiny-llama"), dtype=torch.float32, **kw)
    model = par.apply(model, par.make_config({}))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], fused=True)
    ids = torch.randint(0, 1000, (b, t))
    with Meter() as meter:
        for _ in range(2):
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
            loss.backward()
            del loss
            opt.step()
            opt.zero_grad()
    return meter.result()["peak_tensor_bytes"] - before


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


def test_zero_divides_traced_states():
    tr = trace_peak(TraceRequest(config=model_config("tiny-llama"), method="full", objective="sft",
                                 seq_len=32, micro_batch=2, precision="bf16"))
    z = zero_shard(tr, 3, 4)
    assert z.peak_bytes < tr.peak_bytes
    assert z.breakdown["trainable"] == tr.breakdown["trainable"] - (tr.breakdown["trainable"] - tr.breakdown["trainable"] // 4)


def test_qlora_storage_matches_the_estimators_nf4_bytes():
    """The estimator's NF4 storage (advisor/estimator.py NF4_STORED) is what bnb's layers hold."""
    from advisor.estimator import NF4_STORED
    from common.shape import shape_from_hf_config

    cfg = model_config("tiny-llama")
    s = shape_from_hf_config({**cfg}, "tiny-llama")
    tr = trace_peak(TraceRequest(config=cfg, method="qlora", objective="sft", seq_len=16, micro_batch=1))
    lin = s.linear_params()
    assert tr.breakdown["weights"] == pytest.approx(lin * NF4_STORED + (s.params() - lin) * 4, rel=0.001)
