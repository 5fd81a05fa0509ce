"""Peak GPU memory, time and cost of one training stage, with a breakdown, before launching.

    tunebench estimate --model llama-3.1-8b --method qlora --objective dpo --gpu rtx-4090 --json

``estimate(Request(...)) -> Estimate``. Memory is modelled from mechanisms, not fitted rows:
weights by storage (bf16/fp16/fp32, NF4 with its block constants, int8), trainable
parameters' gradients and optimizer states, the tensors autograd keeps per token (which
depend on what trains: a frozen linear keeps no input, an fp32 adapter keeps an fp32 copy of
its input), the logits (bf16 logits + fp32 upcast, log-softmax and their gradients), the
objective's extra models and rollouts, and the CUDA context. The few constants that cannot be
derived live in ``advisor/calibration.json`` (``tunebench estimate calibrate`` refits them).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from advisor.catalogs import Gpu, Shape
from advisor.method_table import TARGETS, Obj, Param, check
from common.errors import UserError, unknown

GIB = 2**30
CALIBRATION = Path(__file__).parent / "calibration.json"
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
OPTIMIZERS = {"adamw": None, "adamw8bit": 2.0, "paged_adamw8bit": 2.0, "sgd": 0.0}
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4-bit codes + 8-bit absmax per 64 + fp32 per 256 absmax (double quant)
BOTTLENECK = 64  # bottleneck adapter width
DEFAULTS = {"activation_scale": 1.0, "logits_scale": 1.0, "alloc_overhead": 0.0,
            "cuda_context_gib": 0.5, "mfu": 0.35, "cpu_runtime_gib": 1.0}


@lru_cache(maxsize=None)
def constants() -> dict:
    """Calibrated constants (fall back to the mechanistic defaults)."""
    out = dict(DEFAULTS)
    if CALIBRATION.exists():
        out.update(json.loads(CALIBRATION.read_text()).get("constants", {}))
    return out


@dataclass
class Request:
    shape: Shape
    method: str = "lora"
    objective: str = "sft"
    precision: str = "bf16"
    seq_len: int = 1024
    micro_batch: int = 1
    grad_ckpt: bool = False
    optimizer: str = "adamw"
    lora_r: int = 8
    targets: str = "all-linear"
    num_gpus: int = 1
    zero_stage: int = 0
    gpu: Gpu | None = None
    tokens: int | None = None
    attn: str = "sdpa"
    virtual_tokens: int = 20
    generations: int = 8
    gen_len: int = 256
    teacher: Shape | None = None
    precompute_ref: bool = False
    usd_per_hour: float | None = None
    adapter_fp32: bool = True  # PEFT keeps adapters in fp32 on a bf16/fp16 base (autocast_adapter_dtype)
    amp: bool = True           # Trainer/TRL bf16 autocast: adapter matmuls run on a bf16 copy of their input


@dataclass
class Estimate:
    peak_bytes: float
    breakdown: dict[str, float]
    reserved_bytes: float         # what torch.cuda.max_memory_reserved would show (no CUDA context)
    fits: bool | None
    hours: float | None
    cost_usd: float | None
    trainable_params: int
    total_params: int
    notes: list[str] = field(default_factory=list)

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / GIB

    def to_dict(self) -> dict:
        return {
            "peak_gib": round(self.peak_gib, 3),
            "breakdown": {k: round(v / GIB, 3) for k, v in self.breakdown.items()},
            "fits": self.fits,
            "hours": None if self.hours is None else round(self.hours, 4),
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 2),
            "trainable_params": self.trainable_params,
            "total_params": self.total_params,
            "notes": self.notes,
        }


def _targets(req: Request) -> tuple[str, ...]:
    if req.targets in TARGETS:
        mods = TARGETS[req.targets]
    else:
        mods = tuple(t.strip() for t in req.targets.split(",") if t.strip())
    known = req.shape.linears()
    bad = [m for m in mods if m not in known and not (m == "gate_proj" and req.shape.mlp == "plain")]
    if bad:
        raise UserError(f"unknown target module '{bad[0]}' (accepted: {', '.join(list(TARGETS) + sorted(known))})")
    return tuple(m for m in mods if m in known)


def _expert_mult(shape: Shape, module: str) -> int:
    return shape.experts if module in ("gate_proj", "up_proj", "down_proj") else 1


def trainable_params(req: Request, par: Param) -> int:
    s, L = req.shape, req.shape.layers
    mods = s.linears()
    if par.kind == "full":
        return s.params()
    if par.kind == "freeze":
        return _freeze_layers(s) * s.layer_params()
    if par.kind in ("lowrank", "dora", "vera", "weightdelta"):
        r, n = req.lora_r, 0
        for m in _targets(req):
            i, o = mods[m]
            k = _expert_mult(s, m)
            if par.kind == "vera":
                n += (r + o) * k                      # lambda_d (r) and lambda_b (out); A, B are frozen buffers
            elif par.kind == "weightdelta":
                n += 2 * r * (i + o) * k              # LoHa-size factors; LoKr/OFT/BOFT are of the same order
            else:
                n += r * (i + o) * k + (o * k if par.kind == "dora" else 0)
        return n * L
    if par.kind == "ia3":
        return L * (2 * s.kv_dim + s.intermediate)
    if par.kind == "prefix":
        return L * 2 * s.kv_dim * req.virtual_tokens
    if par.kind == "prompt":
        return s.hidden * req.virtual_tokens
    if par.kind == "ln":
        return L * 2 * s.hidden + s.hidden
    if par.kind == "bias":
        return L * s.bias_params()
    if par.kind == "bottleneck":
        per = 2 * s.hidden * BOTTLENECK + BOTTLENECK + s.hidden
        return L * per * (2 if req.method == "adapter_houlsby" else 1)
    raise AssertionError(par.kind)


def _freeze_layers(s: Shape) -> int:
    return max(1, s.layers // 4)


def _weights_bytes(s: Shape, base: str, e: int) -> float:
    if base == "nf4":
        return s.linear_params() * NF4_BYTES + (s.params() - s.linear_params()) * e
    if base == "int8":
        return s.linear_params() * (1 + 4 / s.hidden) + (s.params() - s.linear_params()) * e
    return s.params() * e


def _per_token_layer(req: Request, par: Param, e: int, attended: int) -> float:
    """Bytes autograd keeps per token in one transformer layer."""
    s = req.shape
    h, i, dq, dkv, k = s.hidden, s.intermediate, s.q_dim, s.kv_dim, s.experts_per_token
    mods = s.linears()
    # Two RMSNorms keep an fp32 copy of their input (they upcast); attention kernel keeps q, k, v, out.
    b = 2 * 4 * h + e * (2 * dq + 2 * dkv)
    if req.attn == "eager":
        b += (4 + e) * s.heads * attended   # fp32 softmax output + the probabilities in compute dtype
    b += (3 * e * i if s.mlp == "gated" else e * i) * k  # activation input/output and the up branch
    if par.kind in ("full", "freeze"):
        b += e * (h + dq + h + i * k) + 2 * e * h  # every linear's input + the norms' weighted inputs
    elif par.kind == "ln":
        b += 2 * e * h
    # Each adapter keeps its own copy of its input: fp32 when it upcasts (no autocast, as in a
    # plain PyTorch loop), in the compute dtype when autocast casts it for the matmul.
    ab = 4 if (e == 4 or (req.adapter_fp32 and not req.amp)) else e
    if par.kind in ("lowrank", "dora", "weightdelta"):
        for m in _targets(req):
            di, do = mods[m]
            km = k if m in ("gate_proj", "up_proj", "down_proj") else 1
            b += (ab * di + ab * req.lora_r) * km          # the adapter's own (upcast) input and its rank-r hidden
            if par.kind == "dora":
                b += 2 * ab * do * km                      # base and LoRA outputs kept for the magnitude gradient
    elif par.kind == "vera":
        # The shared projections are frozen, so no input is kept: only what the two scaling
        # vectors multiply (rank-r hidden and the output) survives.
        for m in _targets(req):
            b += ab * (req.lora_r + mods[m][1]) * (k if m in ("gate_proj", "up_proj", "down_proj") else 1)
    elif par.kind == "ia3":
        b += e * 2 * dkv + 4 * i * k                       # scaled k/v outputs; fp32 FFN input
    elif par.kind == "bottleneck":
        n = 2 if req.method == "adapter_houlsby" else 1
        b += n * (e * h + e * BOTTLENECK * 2)
    return b


def _layer_fixed(req: Request, par: Param) -> float:
    """Token-independent bytes kept per layer (weight-sized deltas built in the forward)."""
    if par.kind != "weightdelta":
        return 0.0
    mods = req.shape.linears()
    return sum(4 * mods[m][0] * mods[m][1] * _expert_mult(req.shape, m) for m in _targets(req))


def _kv_cache(s: Shape, seqs: int, length: int, e: int) -> float:
    return seqs * length * s.layers * 2 * s.kv_dim * e


def estimate(req: Request, consts: dict | None = None) -> Estimate:
    """consts overrides the calibrated constants (calibration evaluates candidates this way)."""
    par, obj = check(req.method, req.objective)
    if req.precision not in DTYPE_BYTES:
        raise UserError(f"unknown precision '{req.precision}' (accepted: {', '.join(DTYPE_BYTES)})")
    if req.optimizer not in OPTIMIZERS:
        raise unknown("optimizer", req.optimizer, OPTIMIZERS)
    for name in ("seq_len", "micro_batch", "lora_r", "num_gpus"):
        if getattr(req, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(req, name)}")
    if req.zero_stage not in (0, 1, 2, 3):
        raise UserError(f"--zero-stage must be 0, 1, 2 or 3, got {req.zero_stage}")
    if par.kind == "bias" and req.shape.bias == "none":
        raise UserError(f"bitfit trains bias terms and {req.shape.name} has none; pick a model with biases (e.g. phi-2, opt-1.3b)")
    c = {**constants(), **(consts or {})}
    s = req.shape
    notes: list[str] = []
    cpu = req.gpu is not None and req.gpu.is_cpu
    precision = req.precision
    if cpu and precision != "fp32":
        precision = "fp32"
        notes.append("CPU trains in fp32 (bf16 is ~11x slower on CPUs without AMX)")
    e = DTYPE_BYTES[precision]
    adapter_fp32 = req.adapter_fp32 and e < 4

    n_train = trainable_params(req, par)
    in_base = par.kind in ("full", "freeze", "ln", "bias")  # trainables are base weights
    p_bytes = e if in_base else (4 if adapter_fp32 else e)
    state = OPTIMIZERS[req.optimizer]
    state_bytes = 2 * p_bytes if state is None else state
    n = req.num_gpus if req.zero_stage else 1

    # Sequences trained together and the tokens attended.
    seq = req.seq_len + (req.virtual_tokens if par.kind == "prompt" else 0)
    attended = seq + (req.virtual_tokens if par.kind == "prefix" else 0)
    seqs = req.micro_batch * obj.pairs
    tokens = seqs * seq

    weights = _weights_bytes(s, par.base, e)
    adapter = 0.0 if in_base else n_train * p_bytes
    if par.kind == "vera":
        adapter += 4 * req.lora_r * (s.hidden + max(s.intermediate, s.hidden))  # shared frozen projections
    optimizer = n_train * state_bytes
    grads = n_train * p_bytes

    # Layers autograd keeps: all of them when anything trains in (or before) the first layer.
    kept_layers = _freeze_layers(s) if par.kind == "freeze" else s.layers
    per_layer = _per_token_layer(req, par, e, attended)
    if req.grad_ckpt:
        # Only each layer's input survives; one layer is recomputed at a time in the backward.
        acts = tokens * (kept_layers * e * s.hidden + per_layer) + _layer_fixed(req, par)
    else:
        acts = tokens * kept_layers * per_layer + _layer_fixed(req, par) * kept_layers
    acts *= c["activation_scale"]
    if obj.head == "seq_cls":
        logits = tokens * s.hidden * e
    else:
        logits = tokens * s.vocab * (e + 12) * c["logits_scale"]
    head_grad = s.vocab * s.hidden * e if par.kind == "full" else 0.0

    extras: dict[str, float] = {}
    frozen_copy = _weights_bytes(s, par.base, e)
    if obj.reference and not req.precompute_ref:
        if in_base:
            extras["reference_model"] = frozen_copy
        else:
            notes.append("reference = the same base with adapters disabled (no extra copy)")
    if obj.teacher:
        t = req.teacher or s
        extras["teacher_model"] = _weights_bytes(t, "dense", e)
        extras["teacher_logits"] = tokens * t.vocab * (e + 4)
        if req.teacher is None:
            notes.append("teacher defaults to a model of the student's shape; pass --teacher for a bigger one")
    if obj.generates:
        # Rollouts for one micro-batch of completions are generated with a KV cache.
        extras["generation_kv_cache"] = _kv_cache(s, req.micro_batch, req.seq_len + req.gen_len, e)
        if req.objective == "grpo":
            notes.append(f"GRPO: micro-batch counts completions ({req.generations} per prompt); KV cache for generation")
    if obj.value_and_reward:
        extras["reward_model"] = frozen_copy
        extras["value_model"] = (frozen_copy if not in_base else weights) + grads + optimizer
        acts += tokens * kept_layers * per_layer * c["activation_scale"]  # value network backprops too
        if in_base:
            extras["reference_model"] = frozen_copy

    # ZeRO / FSDP sharding over n GPUs.
    if req.zero_stage >= 1:
        optimizer /= n
    if req.zero_stage >= 2:
        grads /= n
        head_grad /= n  # gradients are reduce-scattered into shards as the backward produces them
    if req.zero_stage >= 3:
        gathered = s.layer_params() * e
        weights = weights / n + gathered
        adapter /= n
        for k in ("reference_model", "teacher_model", "reward_model", "value_model"):
            if k in extras:
                extras[k] /= n

    transient_a = acts + logits + head_grad + (0 if in_base else grads)
    transient_b = grads + (n_train * p_bytes / (n if req.zero_stage >= 1 else 1))  # foreach optimizer temporaries
    overhead_alloc = max(transient_a, transient_b) * c["alloc_overhead"]
    if transient_a >= transient_b:
        phase = {"gradients": head_grad + (0 if in_base else grads), "activations": acts, "logits": logits}
    else:
        phase = {"gradients": grads, "optimizer_step_temporaries": transient_b - grads, "activations": 0.0, "logits": 0.0}
    breakdown = {"weights": weights}
    if adapter:
        breakdown["adapter_weights"] = adapter
    breakdown["optimizer_states"] = optimizer
    breakdown.update(phase)
    breakdown.update(extras)
    breakdown["allocator_overhead"] = overhead_alloc
    reserved = sum(breakdown.values())
    ctx = c["cpu_runtime_gib"] if cpu else c["cuda_context_gib"]
    breakdown["cuda_context" if not cpu else "runtime"] = ctx * GIB
    peak = reserved + ctx * GIB

    fits = None if req.gpu is None else peak <= req.gpu.memory_gib * GIB
    hours = cost = None
    if req.tokens:
        hours = _hours(req, par, obj, precision, c)
        price = req.usd_per_hour if req.usd_per_hour is not None else (req.gpu.usd_per_hour if req.gpu else None)
        cost = None if price is None else hours * price * req.num_gpus
    if req.tokens and req.gpu is None:
        notes.append("no --gpu: time and cost need a GPU's peak FLOPs")
    return Estimate(peak_bytes=peak, breakdown=breakdown, reserved_bytes=reserved, fits=fits, hours=hours,
                    cost_usd=cost, trainable_params=n_train, total_params=s.params(), notes=notes)


def train_flops_per_token(req: Request, par: Param, obj: Obj) -> float:
    """Training FLOPs per training token: forward 2N, backward 2N for input grads + 2N for trainable weights."""
    s = req.shape
    active = s.params() - s.embedding_params() if not s.tied else s.params()
    if s.experts > 1:
        dense = s.params() - s.linear_params() + s.linear_params() * (s.experts_per_token / s.experts)
        active = dense
    fwd = 2 * active + 2 * s.layers * req.seq_len * s.q_dim  # causal attention scores + weighted sum
    weight_grad = fwd if par.kind == "full" else (fwd / 4 if par.kind == "freeze" else 0.0)
    total = fwd * (2 + (1 if req.grad_ckpt else 0)) + weight_grad
    if obj.reference and not req.precompute_ref:
        total += fwd
    if obj.teacher:
        t = req.teacher or s
        total += 2 * t.params()
    if obj.value_and_reward:
        total += 2 * fwd + fwd  # value fwd+bwd, reward fwd
    return total * obj.pairs


def _hours(req: Request, par: Param, obj: Obj, precision: str, c: dict) -> float | None:
    gpu = req.gpu
    if gpu is None:
        return None
    peak = (gpu.bf16_tflops if precision in ("bf16", "fp16") else gpu.fp32_tflops) * 1e12
    mfu = c["mfu"] * {"nf4": 0.6, "int8": 0.4}.get(par.base, 1.0)
    seconds = req.tokens * train_flops_per_token(req, par, obj) / obj.pairs / (peak * mfu * req.num_gpus)
    if obj.generates:
        # Decoding is memory-bound: each step reads the weights once for the whole batch.
        w = _weights_bytes(req.shape, par.base, DTYPE_BYTES[precision])
        steps = req.tokens / max(1, req.seq_len) / max(1, req.micro_batch) * req.gen_len
        seconds += steps * w / (gpu.bandwidth_gbs * 1e9 * 0.6) / req.num_gpus
    return seconds / 3600


def fits_gpu(est: Estimate, gpu: Gpu, headroom: float = 0.95) -> bool:
    """Fit with headroom: allocator spikes make the last few percent unsafe."""
    return est.peak_bytes <= gpu.memory_gib * GIB * headroom


