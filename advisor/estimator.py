"""Peak GPU memory, time and cost of one training stage, with a breakdown, before launching.

    tunebench estimate --model llama-3.1-8b --method qlora --objective dpo --gpu rtx-4090 --json

``estimate(Request(...)) -> Estimate``. Memory is modelled from mechanisms, not fitted rows:
weights by storage (bf16/fp16/fp32, NF4 with its block constants, int8), trainable
parameters' gradients and optimizer states, the tensors autograd keeps per token (which
depend on what trains: a frozen linear keeps no input, an fp32 adapter keeps an fp32 copy of
its input), the logits (bf16 logits + fp32 upcast, log-softmax and their gradients), the
objective's extra models and rollouts, and the CUDA context. The few constants that cannot be
derived live in ``advisor/calibration.json`` (``tunebench estimate calibrate`` refits them;
``fitted_on`` there says what each was fitted on).

Mechanisms read off the tracer (bench/trace.py, which runs the real step on fake tensors and is
scored against this estimator by ``tunebench estimate trace-grid``): fp32 master weights
(``master_weights``: 4-byte weights and states, and autocast's bf16 copy of every linear weight kept
for the backward), bnb's NF4 storage and prepare_model_for_kbit_training's fp32 upcast, TRL's fused
LM head (``lm_head="fused"``; DPO/KTO/GRPO always), the reference as a deep copy for
parameterizations peft does not apply, a rollout's KV cache freed before the training forward, and
tunebench's PPO (a separate reward model, a value head on the policy).

What a method is comes from its card (methods/card.py), never from its name: the parameterization's
``memory`` traits (trainable count, base storage, kept layers, per-token and per-layer terms, extra
tokens) evaluated on the model's Shape and the method's validated settings (``method_config``), and
the objective's ``needs`` (reference, teacher, value model), ``head`` and ``memory`` (sequences per
example, whether it generates). The estimator adds only what every layer keeps whatever trains
(norms, attention q/k/v/out, MLP activations); the card's ``per_token`` is the rest, including
every base linear's input where the base trains (``trains_base_linears``, which also makes the
backward compute weight gradients).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from advisor import timing
from advisor.catalogs import Gpu, Shape
from common.errors import UserError, unknown

if TYPE_CHECKING:
    from pydantic import BaseModel

    from methods.card import ObjectiveCard, ParamCard

GIB = 2**30
CALIBRATION = Path(__file__).parent / "calibration.json"
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
OPTIMIZERS = {"adamw": None, "adamw8bit": 2.0, "paged_adamw8bit": 2.0, "sgd": 0.0}
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4-bit codes + 8-bit absmax per 64 + fp32 per 256 absmax (double quant)
# Objectives whose trainer computes the next-token loss through TRL's fused, tiled LM head.
FUSED_HEAD_FAMILIES = ("pretraining", "supervised", "distillation")
# TRL 1.16's DPOTrainer, KTOTrainer and GRPOTrainer score log-probs through the same fused head
# (their __init__ calls add_fused_lm_head); CPO/SimPO and ORPO (trl.experimental) build full logits,
# as does tunebench's own PPO loop. Which TRL trainer an objective runs is not on its card yet.
FUSED_HEAD_OBJECTIVES = ("dpo", "ipo", "rlaif", "kto", "grpo")
FUSED_TILE_TOKENS, FUSED_TILE_VOCAB = 4096, 32768  # trl/kernels TOKEN_CHUNK_SIZE, _CHUNKED_LOGPROB_CHUNK_SIZE
DEFAULTS = {"fused_tile_bytes": 24.0, "activation_scale": 1.0, "logits_scale": 1.0, "alloc_overhead": 0.0,
            "cuda_context_gib": 0.5, "mfu": 0.35, "cpu_runtime_gib": 1.0}
# Adapter-target presets for --targets (or a comma list of module names).
TARGETS = {
    "all-linear": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "attn": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "qv": ("q_proj", "v_proj"),
    "mlp": ("gate_proj", "up_proj", "down_proj"),
}
# The request's knobs and the method-settings field each one sets (when the method has it).
KNOBS = {"lora_r": "r", "targets": "target_modules", "virtual_tokens": "num_virtual_tokens"}
# Model features a card can require (ParamCard.requires): how a Shape shows it, what to pick instead.
REQUIREMENTS = {"bias terms": (lambda s: s.bias != "none", "pick a model with biases (e.g. phi-2, opt-1.3b)")}


@lru_cache(maxsize=None)
def constants() -> dict:
    """Calibrated constants (fall back to the mechanistic defaults)."""
    out = dict(DEFAULTS)
    if CALIBRATION.exists():
        out.update(json.loads(CALIBRATION.read_text()).get("constants", {}))
    return out


@dataclass
class Request:
    """One stage to estimate. The method's settings are ``method_cfg`` (its card's settings
    fields, defaults from the card); ``lora_r``, ``targets`` and ``virtual_tokens`` are shorthands
    that set ``r``, ``target_modules`` and ``num_virtual_tokens`` when the method has that field
    (None: the method's own default)."""

    shape: Shape
    method: str = "lora"
    objective: str = "sft"
    precision: str = "bf16"
    seq_len: int = 1024
    micro_batch: int = 1
    grad_ckpt: bool = False
    optimizer: str = "adamw"
    lora_r: int | None = None
    targets: str | None = None     # all-linear | attn | qv | mlp | q_proj,v_proj,...
    num_gpus: int = 1
    zero_stage: int = 0
    gpu: Gpu | None = None
    tokens: int | None = None
    attn: str = "sdpa"
    virtual_tokens: int | None = None
    generations: int = 8
    gen_len: int = 256
    teacher: Shape | None = None
    precompute_ref: bool = False
    usd_per_hour: float | None = None
    adapter_fp32: bool = True  # PEFT keeps adapters in fp32 on a bf16/fp16 base (autocast_adapter_dtype)
    amp: bool = True           # Trainer/TRL bf16 autocast: adapter matmuls run on a bf16 copy of their input
    method_cfg: dict | None = None
    master_weights: bool = False  # fp32 master weights + fp32 optimizer states, bf16 compute (16 B/param)
    # Next-token loss of the SFT-family objectives: "full" = the model's own cross-entropy over full
    # logits (HF Trainer, plain PyTorch loops, peft's method_comparison); "fused" = TRL's fused tiled
    # LM head (TRL SFTTrainer; what `tunebench train` runs on GPU, methods/_trl.py).
    lm_head: str = "full"


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


def cards_for(method: str, objective: str) -> tuple[ParamCard, ObjectiveCard]:
    """The parameterization's and the objective's cards (UserError with the closest names)."""
    from methods import OBJECTIVES, PARAMETERIZATIONS  # loads every card, no torch

    if method not in PARAMETERIZATIONS:
        raise unknown("method", method, PARAMETERIZATIONS)
    if objective not in OBJECTIVES:
        raise unknown("objective", objective, OBJECTIVES)
    return PARAMETERIZATIONS[method].card, OBJECTIVES[objective].card


def _target_list(targets: str) -> list[str]:
    if targets in TARGETS:
        return list(TARGETS[targets])
    mods = [t.strip() for t in targets.split(",") if t.strip()]
    if not mods:
        raise UserError(f"--targets '{targets}' names no module (presets: {', '.join(TARGETS)})")
    return mods


def method_config(req: Request, card: ParamCard, notes: list[str] | None = None) -> BaseModel:
    """The method's validated settings: ``method_cfg``, then the knobs the method has a field for."""
    values = dict(req.method_cfg or {})
    fields = card.settings.model_fields
    for knob, key in KNOBS.items():
        value = getattr(req, knob)
        if value is None:
            continue
        if key not in fields:
            if notes is not None:
                notes.append(f"--{knob.replace('_', '-')} does not apply to {card.name} (it has no '{key}' setting)")
            continue
        values[key] = _target_list(value) if knob == "targets" else value
    return card.make_config(values)


def check_requirements(card: ParamCard, s: Shape) -> None:
    """UserError when the model lacks a feature the card requires (bitfit on a model without biases)."""
    for need in card.requires:
        if need in REQUIREMENTS and not REQUIREMENTS[need][0](s):
            raise UserError(f"{card.name} trains {need} and {s.name} has none; {REQUIREMENTS[need][1]}")


def trainable_params(req: Request, card: ParamCard | None = None, cfg: BaseModel | None = None) -> int:
    """Trainable parameters of the request's method on its model, from the method's card."""
    card = card or cards_for(req.method, req.objective)[0]
    cfg = cfg if cfg is not None else method_config(req, card)
    return int(card.memory.trainable(req.shape, cfg))


def _kept_layers(card: ParamCard, s: Shape, cfg: BaseModel) -> int:
    """Layers autograd keeps: all of them unless the card says only the last few train."""
    fn = card.memory.kept_layers
    return s.layers if fn is None else min(s.layers, int(fn(s, cfg)))


def _head_trains(card: ParamCard, s: Shape, cfg: BaseModel, n_train: int) -> bool:
    """The LM head (or the tied embedding) is among the trained base weights: its gradient is
    built while the logits' gradients are alive. Read from the card: in-base trainables beyond
    the kept layers' weights hold at least a vocab×hidden matrix (full; freeze with its head)."""
    if not card.memory.in_base:
        return False
    return n_train - _kept_layers(card, s, cfg) * s.layer_params() >= s.vocab * s.hidden


def _weights_bytes(s: Shape, base: str, e: int) -> float:
    if base == "nf4":
        return s.linear_params() * NF4_BYTES + (s.params() - s.linear_params()) * e
    if base == "int8":
        return s.linear_params() * (1 + 4 / s.hidden) + (s.params() - s.linear_params()) * e
    return s.params() * e


# NF4 as tunebench's qlora stores it (methods/_quant.py: no double quantization): 4-bit codes + an
# fp32 absmax per 64-block; prepare_model_for_kbit_training upcasts every non-quantized parameter
# (embeddings, head, norms) to fp32. Read off the tracer (bench/trace.py), which builds bnb's own layers.
NF4_STORED = 0.5 + 4 / 64


def _stored_weights(st: "_Stage", s: Shape | None = None) -> float:
    """Bytes of a model's weights as the run stores them (the policy's shape unless ``s``)."""
    s = s or st.s
    base = st.par.memory.base
    if base == "nf4":
        return s.linear_params() * NF4_STORED + (s.params() - s.linear_params()) * 4
    if base == "int8":
        return s.linear_params() * (1 + 4 / s.hidden) + (s.params() - s.linear_params()) * 4
    return s.params() * st.w


def _autocast_copies(st: "_Stage", layers: int) -> float:
    """Autocast casts every fp32 linear weight to bf16 for its matmul and autograd keeps that copy
    for the input gradient (frozen weights are re-cast per op; trained leaves hit the cast cache,
    which also lives until the step ends): 2 bytes per linear parameter of each layer whose
    activations are kept. Measured in the tracer's fp32-master runs (mixed precision)."""
    if not st.req.master_weights or st.par.memory.base != "dense":
        return 0.0
    return 2.0 * layers * (st.s.linear_params() / st.s.layers)


def _peft_backed(name: str) -> bool:
    """The parameterization is applied through peft (methods/_peft.py): a PeftModel whose
    adapters TRL disables to get the reference, instead of a frozen deep copy."""
    from methods.registry import PARAMETERIZATIONS

    return PARAMETERIZATIONS[name].apply.__module__ == "methods._peft"


def _per_token_layer(req: Request, card: ParamCard, cfg: BaseModel, e: int, attended: int) -> float:
    """Bytes autograd keeps per token in one transformer layer."""
    s = req.shape
    h, i, dq, dkv, k = s.hidden, s.intermediate, s.q_dim, s.kv_dim, s.experts_per_token
    # Two RMSNorms keep an fp32 copy of their input (they upcast); attention kernel keeps q, k, v, out.
    b = 2 * 4 * h + e * (2 * dq + 2 * dkv)
    if req.attn == "eager":
        b += (4 + e) * s.heads * attended   # fp32 softmax output + the probabilities in compute dtype
    b += (3 * e * i if s.mlp == "gated" else e * i) * k  # activation input/output and the up branch
    # What trains adds its own: the card's per_token. Where the base's linears train
    # (trains_base_linears: full, freeze) that is every linear's input and the norms' weighted
    # inputs, which the full and freeze cards state in their per_token, so it is not added here again.
    # Each adapter keeps its own copy of its input: fp32 when it upcasts (no autocast, as in a
    # plain PyTorch loop), in the compute dtype when autocast casts it for the matmul.
    ab = 4 if (e == 4 or (req.adapter_fp32 and not req.amp)) else e
    return b + card.memory.per_token(s, cfg, e, ab)


def _kv_cache(s: Shape, seqs: int, length: int, e: int) -> float:
    return seqs * length * s.layers * 2 * s.kv_dim * e


def _check_numbers(req: Request) -> None:
    if req.precision not in DTYPE_BYTES:
        raise UserError(f"unknown precision '{req.precision}' (accepted: {', '.join(DTYPE_BYTES)})")
    if req.optimizer not in OPTIMIZERS:
        raise unknown("optimizer", req.optimizer, OPTIMIZERS)
    for name in ("seq_len", "micro_batch", "lora_r", "virtual_tokens", "num_gpus"):
        value = getattr(req, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if req.lm_head not in ("full", "fused"):
        raise UserError(f"--lm-head must be full or fused, got {req.lm_head}")
    if req.zero_stage not in (0, 1, 2, 3):
        raise UserError(f"--zero-stage must be 0, 1, 2 or 3, got {req.zero_stage}")


@dataclass
class _Stage:
    """One estimate's resolved inputs: the cards, the validated settings, dtypes and token counts."""

    req: Request
    par: ParamCard
    obj: ObjectiveCard
    cfg: BaseModel
    c: dict
    notes: list[str]
    precision: str
    e: int            # bytes per element of the compute dtype
    w: int            # bytes per stored (dense) weight: 4 with fp32 master weights, else e
    p_bytes: int      # bytes per trained parameter (adapters may stay fp32 on a bf16 base)
    n_train: int
    tokens: int       # tokens trained together in one micro-batch (all sequences)
    attended: int     # key/value positions each token attends to
    cpu: bool

    @property
    def s(self) -> Shape:
        return self.req.shape

    @property
    def in_base(self) -> bool:
        return self.par.memory.in_base  # trainables are base weights: no separate copy, the base dtype

    @property
    def shards(self) -> int:
        return self.req.num_gpus if self.req.zero_stage else 1


def _resolve(req: Request, consts: dict | None) -> _Stage:
    """Check the request against the cards and fix dtypes, trained parameters and tokens."""
    from methods import check_combination  # the registry's own check (cards only, no torch)

    par, obj = cards_for(req.method, req.objective)
    check_combination(obj.name, par.name)
    _check_numbers(req)
    check_requirements(par, req.shape)
    notes: list[str] = []
    cfg = method_config(req, par, notes)
    cpu = req.gpu is not None and req.gpu.is_cpu
    precision = req.precision
    if cpu and precision != "fp32":
        precision = "fp32"
        notes.append("CPU trains in fp32 (bf16 is ~11x slower on CPUs without AMX)")
    e = DTYPE_BYTES[precision]
    w = 4 if req.master_weights else e
    if req.master_weights:
        notes.append("fp32 master weights and optimizer states, bf16 autocast compute (16 B per trained parameter)")
    # peft keeps adapters in fp32 on a bf16 base (autocast_adapter_dtype); tunebench's own
    # bottleneck adapters take the model's dtype
    adapter_fp32 = req.adapter_fp32 and e < 4 and _peft_backed(par.name)
    seq = req.seq_len + par.memory.extra_tokens(cfg)
    if obj.memory.generates:  # the policy trains on prompt + generated completion
        seq += req.gen_len
    return _Stage(req=req, par=par, obj=obj, cfg=cfg, c={**constants(), **(consts or {})}, notes=notes,
                  precision=precision, e=e, w=w, p_bytes=w if par.memory.in_base else (4 if adapter_fp32 else e),
                  n_train=trainable_params(req, par, cfg), tokens=req.micro_batch * obj.memory.sequences * seq,
                  attended=seq + par.memory.extra_attended(cfg), cpu=cpu)


def _policy_parts(st: _Stage) -> dict[str, float]:
    """Bytes of the trained policy: weights, adapter, optimizer states, gradients, activations, logits."""
    s, mem, c = st.s, st.par.memory, st.c
    state = OPTIMIZERS[st.req.optimizer]
    kept_layers = _kept_layers(st.par, s, st.cfg)  # all layers when anything trains in (or before) the first
    per_layer = _per_token_layer(st.req, st.par, st.cfg, st.e, st.attended)
    fixed = mem.layer_fixed(s, st.cfg)
    if st.req.grad_ckpt:
        # Only each layer's input survives; one layer is recomputed at a time in the backward.
        acts = st.tokens * (kept_layers * st.e * s.hidden + per_layer) + fixed + _autocast_copies(st, 1)
    else:
        acts = st.tokens * kept_layers * per_layer + fixed * kept_layers + _autocast_copies(st, kept_layers)
    if st.obj.head == "seq_cls":
        logits = st.tokens * s.hidden * st.e
    elif st.obj.family in FUSED_HEAD_FAMILIES and st.req.lm_head == "full":
        logits = st.tokens * s.vocab * (st.e + 12) * c["logits_scale"]  # bf16 logits + fp32 upcast, log-softmax, grads
    elif st.obj.family in FUSED_HEAD_FAMILIES or st.obj.name in FUSED_HEAD_OBJECTIVES:
        # TRL's fused LM head (trl/kernels/chunked_logprob.py): no full logits; the projection runs
        # on one (4096 tokens x 32768 vocab) buffer at a time, and the backward builds the hidden
        # states' gradient in fp32. fused_tile_bytes: bytes per tile element, with the fold's temporaries.
        tile = min(st.tokens, FUSED_TILE_TOKENS) * min(s.vocab, FUSED_TILE_VOCAB)
        logits = tile * c["fused_tile_bytes"] + st.tokens * s.hidden * 4
    else:
        # full logits in the compute dtype, and TRL's selective_log_softmax: a bf16 row-by-row
        # log-softmax kept for the backward (another copy), fp32 via logsumexp (no second copy)
        scored = st.tokens
        # (under autocast the log-softmax runs in fp32: a bf16 logit + an fp32 log-prob per element)
        per = (st.e + 4) if st.req.master_weights else (2 * st.e if st.e == 2 else st.e)
        logits = scored * s.vocab * per * c["logits_scale"]
    return {
        "weights": _stored_weights(st),
        # frozen tensors the method adds count here too (VeRA's shared projections)
        "adapter": (0.0 if st.in_base else st.n_train * st.p_bytes) + mem.frozen_extra(s, st.cfg),
        "optimizer": st.n_train * (2 * st.p_bytes if state is None else state),
        "grads": st.n_train * st.p_bytes,
        "acts": acts * c["activation_scale"],
        "acts_one_model": st.tokens * kept_layers * per_layer * c["activation_scale"],
        "logits": logits,
        "head_grad": s.vocab * s.hidden * st.w if _head_trains(st.par, s, st.cfg, st.n_train) else 0.0,
    }


def _extra_models(st: _Stage, parts: dict[str, float]) -> dict[str, float]:
    """The objective's other models (from its card's needs) and its rollouts' KV cache."""
    s, e, req, obj = st.s, st.e, st.req, st.obj
    extras: dict[str, float] = {}
    frozen_copy = _stored_weights(st)
    if "reference" in obj.needs and not req.precompute_ref and not _grpo_without_kl(obj):
        if not _peft_backed(st.par.name):  # TRL deep-copies a plain model as its reference
            extras["reference_model"] = frozen_copy
        else:
            st.notes.append("reference = the same base with adapters disabled (no extra copy)")
    if "teacher" in obj.needs:
        t = req.teacher or s
        extras["teacher_model"] = t.params() * st.w
        extras["teacher_logits"] = st.tokens * t.vocab * (e + 4)
        if req.teacher is None:
            st.notes.append("teacher defaults to a model of the student's shape; pass --teacher for a bigger one")
    if obj.memory.generates:
        # Rollouts for one micro-batch of completions are generated with a KV cache.
        extras["generation_kv_cache"] = _kv_cache(s, req.micro_batch, req.seq_len + req.gen_len, e)
        if "num_generations" in obj.settings.model_fields:
            st.notes.append(f"{obj.label}: micro-batch counts completions ({req.generations} per prompt); "
                            "KV cache for generation")
    if "value_model" in obj.needs:
        # methods/_ppo.py: a separate scalar-head reward model; the value is a linear head on the
        # policy's last hidden state (its weights are negligible, its backward is the policy's own).
        extras["reward_model"] = s.params() * st.w
    return extras


def _grpo_without_kl(obj) -> bool:
    """GRPO with TRL's default beta=0 keeps no reference model."""
    return "beta" in obj.settings.model_fields and obj.memory.generates and obj.settings().beta == 0


def _shard(st: _Stage, parts: dict[str, float], extras: dict[str, float]) -> None:
    """ZeRO / FSDP: stage 1 shards optimizer states, 2 gradients, 3 weights (one layer gathered)."""
    n, zero = st.shards, st.req.zero_stage
    if zero >= 1:
        parts["optimizer"] /= n
    if zero >= 2:
        parts["grads"] /= n
        parts["head_grad"] /= n  # gradients are reduce-scattered into shards as the backward produces them
    if zero >= 3:
        parts["weights"] = parts["weights"] / n + st.s.layer_params() * st.w
        parts["adapter"] /= n
        for k in ("reference_model", "teacher_model", "reward_model", "value_model"):
            if k in extras:
                extras[k] /= n


def _breakdown(st: _Stage, parts: dict[str, float], extras: dict[str, float]) -> dict[str, float]:
    """Peak = what stays + the larger of the two transient phases: the backward (activations,
    logits, gradients) or the optimizer step (gradients + foreach temporaries)."""
    own_grads = 0 if st.in_base else parts["grads"]
    backward = parts["acts"] + parts["logits"] + parts["head_grad"] + own_grads
    step_temps = st.n_train * st.p_bytes / (st.shards if st.req.zero_stage >= 1 else 1)
    step = parts["grads"] + step_temps
    if backward >= step:
        phase = {"gradients": parts["head_grad"] + own_grads, "activations": parts["acts"], "logits": parts["logits"]}
    else:
        phase = {"gradients": parts["grads"], "optimizer_step_temporaries": step_temps, "activations": 0.0,
                 "logits": 0.0}
    kv = extras.get("generation_kv_cache", 0.0)
    if kv and kv < max(backward, step):
        # rollouts are generated before the training forward: the cache is gone by the backward
        extras = {k: v for k, v in extras.items() if k != "generation_kv_cache"}
    elif kv:
        phase = {"gradients": 0.0, "activations": 0.0, "logits": 0.0}
    breakdown = {"weights": parts["weights"]}
    if parts["adapter"]:
        breakdown["adapter_weights"] = parts["adapter"]
    breakdown["optimizer_states"] = parts["optimizer"]
    breakdown.update(phase)
    breakdown.update(extras)
    breakdown["allocator_overhead"] = max(backward, step) * st.c["alloc_overhead"]
    return breakdown


def estimate(req: Request, consts: dict | None = None) -> Estimate:
    """consts overrides the calibrated constants (calibration evaluates candidates this way)."""
    st = _resolve(req, consts)
    parts = _policy_parts(st)
    extras = _extra_models(st, parts)
    _shard(st, parts, extras)
    breakdown = _breakdown(st, parts, extras)
    reserved = sum(breakdown.values())
    ctx = (st.c["cpu_runtime_gib"] if st.cpu else st.c["cuda_context_gib"]) * GIB
    breakdown["runtime" if st.cpu else "cuda_context"] = ctx
    peak = reserved + ctx
    hours = cost = None
    if req.tokens:
        hours = timing.hours(req, st.par, st.obj, st.precision, st.c, st.n_train,
                             _weights_bytes(req.shape, st.par.memory.base, DTYPE_BYTES[st.precision]))
        price = req.usd_per_hour if req.usd_per_hour is not None else (req.gpu.usd_per_hour if req.gpu else None)
        cost = None if price is None or hours is None else hours * price * req.num_gpus
        if req.gpu is None:
            st.notes.append("no --gpu: time and cost need a GPU's peak FLOPs")
    return Estimate(peak_bytes=peak, breakdown=breakdown, reserved_bytes=reserved,
                    fits=None if req.gpu is None else peak <= req.gpu.memory_gib * GIB, hours=hours, cost_usd=cost,
                    trainable_params=st.n_train, total_params=st.s.params(), notes=st.notes)


def fits_gpu(est: Estimate, gpu: Gpu, headroom: float = 0.95) -> bool:
    """Fit with headroom: allocator spikes make the last few percent unsafe."""
    return est.peak_bytes <= gpu.memory_gib * GIB * headroom


