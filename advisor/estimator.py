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
for the backward), bnb's NF4 storage and prepare_model_for_kbit_training's fp32 upcast (an fp32
residual stream), TRL's fused LM head (``lm_head="fused"``; DPO/KTO/GRPO always) and its tile, the
reference as a deep copy for parameterizations peft does not apply, a rollout's KV cache freed before
the training forward, tunebench's PPO (a separate reward model, a value head on the policy, fp32 logits), bnb's int8
matmul keeping its input past checkpointing, peft tuners that return their input's dtype, a
layer's backward gradients (LAYER_GRADS) and in-place optimizer steps.

What a method is comes from its card (methods/card.py), never from its name: the parameterization's
``memory`` traits (trainable count, base storage, kept layers, per-token and per-layer terms, extra
tokens) evaluated on the model's Shape and the method's validated settings (``method_config``), and
the objective's ``needs`` (reference, teacher, value model), ``head`` and ``memory`` (sequences per
example, whether it generates, which LM head its trainer runs). The estimator adds only what every
layer keeps whatever trains (norms, attention q/k/v/out, MLP activations); the card's ``per_token`` is
the rest, including every base linear's input where the base trains (``trains_base_linears``, which
also makes the backward compute weight gradients).
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
FUSED_TILE_TOKENS, FUSED_TILE_VOCAB = 4096, 32768  # trl/kernels TOKEN_CHUNK_SIZE, _CHUNKED_LOGPROB_CHUNK_SIZE
# (tokens x intermediate) gradients a layer's backward holds at its peak: the MLP's (down_proj's input,
# the activation's and up's outputs, gate's output). Read off the tracer: the grid's checkpointed rows
# hold 2.4-8 of them (median ~4.5) beyond the recomputed layer, its unchecked rows 3.9-6.6 where they
# exceed the LM head's tile (reports/reference/trace-grid/results.csv, t_backward_temp).
LAYER_GRADS = 4
DEFAULTS = {"fused_tile_bytes": 32.0, "activation_scale": 1.0, "logits_scale": 1.0, "alloc_overhead": 0.0,
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


def _weights_bytes(s: Shape, base: str, e: int) -> float:
    q = s.quantizable_params()
    if base == "nf4":
        return q * NF4_BYTES + (s.params() - q) * e
    if base == "int8":
        return q * (1 + 4 / s.hidden) + (s.params() - q) * e
    return s.params() * e


# NF4 as tunebench's qlora stores it (methods/_quant.py: no double quantization): 4-bit codes + an
# fp32 absmax per 64-block; prepare_model_for_kbit_training upcasts every non-quantized parameter
# (embeddings, head, norms) to fp32. Read off the tracer (bench/trace.py), which builds bnb's own layers.
NF4_STORED = 0.5 + 4 / 64


def _stored_weights(st: "_Stage", s: Shape | None = None) -> float:
    """Bytes of a model's weights as the run stores them (the policy's shape unless ``s``)."""
    s = s or st.s
    base, q = st.par.memory.base, s.quantizable_params()  # an MoE's experts stay unquantized (and upcast)
    if base == "nf4":
        return q * NF4_STORED + (s.params() - q) * 4
    if base == "int8":
        return q * (1 + 4 / s.hidden) + (s.params() - q) * 4
    return s.params() * st.w


def _autocast_copies(st: "_Stage", layers: int) -> float:
    """Autocast casts every fp32 linear weight to bf16 for its matmul and autograd keeps that copy
    for the input gradient (frozen weights are re-cast per op; trained leaves hit the cast cache,
    which also lives until the step ends): 2 bytes per linear parameter of each layer whose
    activations are kept. Measured in the tracer's fp32-master runs (mixed precision); at ZeRO-3 the
    copies are of the rank's shards (the tracer counts them so). An MoE's experts run through
    ``_grouped_mm``, which autocast leaves in the weights' dtype: no copies of them."""
    if not st.req.master_weights or st.par.memory.base != "dense":
        return 0.0
    return 2.0 * layers * (st.s.quantizable_params() / st.s.layers) / _zero3_shards(st)


def _zero3_shards(st: "_Stage") -> int:
    """ZeRO-3 / FSDP keep the low-precision copies of sharded weights sharded too (a layer is gathered
    at a time, counted once in _shard): the ranks that divide such a copy."""
    return st.shards if st.req.zero_stage >= 3 else 1


def _per_token_layer(req: Request, card: ParamCard, cfg: BaseModel, e: int, attended: int, hs: int) -> float:
    """Bytes autograd keeps per token in one transformer layer."""
    s = req.shape
    h, i, dq, dkv, k = s.hidden, s.intermediate, s.q_dim, s.kv_dim, s.experts_per_token
    # Two RMSNorms keep an fp32 copy of their input (they upcast); attention kernel keeps q, k, v, out.
    b = 2 * 4 * h + e * (2 * dq + 2 * dkv)
    if req.attn == "eager":
        b += (4 + e) * s.heads * attended   # fp32 softmax output + the probabilities in compute dtype
    m = _mlp_bytes(req, card, e)
    b += (3 * m * i if s.mlp == "gated" else m * i) * k  # activation input/output and the up branch
    # What trains adds its own: the card's per_token. Where the base's linears train
    # (trains_base_linears: full, freeze) that is every linear's input and the norms' weighted
    # inputs, which the full and freeze cards state in their per_token, so it is not added here again.
    # Each adapter keeps its own copy of its input, in the dtype its matmul runs in.
    return b + card.memory.per_token(s, cfg, e, _adapter_bytes(req, e), hs)


def _mlp_bytes(req: Request, card: ParamCard, e: int) -> int:
    """Bytes per element of the MLP's activations: the model's dtype where gate/up return it (the card's
    outputs_input_dtype), else autocast's. bnb's 4-bit layers run outside autocast and cast their output back
    to their input's dtype: fp32, the residual stream prepare_model_for_kbit_training upcasts (the tracer's
    bf16 QLoRA rows without checkpointing hold 19-29% more than autocast's dtype would). An MoE's experts
    run through ``_grouped_mm``, which autocast leaves in the weights' dtype: fp32 with fp32 master
    weights or beside a quantized base (prepare_model_for_kbit_training upcasts them)."""
    if req.shape.experts > 1 and (req.master_weights or card.memory.base != "dense"):
        return 4
    if card.memory.outputs_input_dtype:
        return 4 if req.master_weights else e
    return 4 if card.memory.base == "nf4" else e


def _adapter_bytes(req: Request, e: int) -> int:
    """Bytes per element an adapter's matmul runs in: fp32 when it upcasts (no autocast, as in a plain
    PyTorch loop), the compute dtype when autocast casts its operands."""
    return 4 if (e == 4 or (req.adapter_fp32 and not req.amp)) else e


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
    def hs(self) -> int:
        """Bytes per element of the residual stream between layers: fp32 with fp32 master weights and on a
        quantized base (prepare_model_for_kbit_training upcasts embeddings and norms), else the compute dtype."""
        return 4 if self.req.master_weights or self.par.memory.base != "dense" else self.e

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
    adapter_fp32 = req.adapter_fp32 and e < 4 and par.peft
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
    per_layer = _per_token_layer(st.req, st.par, st.cfg, st.e, st.attended, st.hs)
    fixed = mem.layer_fixed(s, st.cfg, _adapter_bytes(st.req, st.e), st.hs)
    unfreed = st.tokens * kept_layers * mem.unfreed_per_token(s, st.e)  # kept with or without checkpointing
    # What one layer's backward holds beyond the kept activations: LAYER_GRADS (tokens x intermediate)
    # gradients at its peak, and with checkpointing the layer's recomputed activations.
    layer_bwd = LAYER_GRADS * st.tokens * s.intermediate * s.experts_per_token * _mlp_bytes(st.req, st.par, st.e)
    if st.req.grad_ckpt:
        # Only each layer's input survives (in the residual stream's dtype); the backward recomputes one
        # layer at a time.
        acts = st.tokens * kept_layers * st.hs * s.hidden + unfreed
        layer_bwd += st.tokens * per_layer + fixed + _autocast_copies(st, 1)
    else:
        acts = st.tokens * kept_layers * per_layer + fixed * kept_layers + _autocast_copies(st, kept_layers) + unfreed
    logits, logits_kept = _logits(st)
    return {
        "weights": _stored_weights(st),
        "adapter": 0.0 if st.in_base else st.n_train * st.p_bytes,
        "buffers": mem.frozen_extra(s, st.cfg),  # frozen tensors the method adds (VeRA, BOFT): never sharded
        "optimizer": st.n_train * (2 * st.p_bytes if state is None else state),
        "grads": st.n_train * st.p_bytes,
        "acts": acts * c["activation_scale"],
        "layer_bwd": layer_bwd * c["activation_scale"],
        "logits": logits,
        "logits_kept": logits_kept,
        "head_grad": s.vocab * s.hidden * st.w if mem.trains_head(st.cfg) else 0.0,
    }


def _logits(st: _Stage) -> tuple[float, float]:
    """Bytes of the LM head and loss: (what lives only while the head runs forward and backward, what
    stays through the layers' backward). Which head runs is the objective card's ``memory.lm_head``."""
    s, e, c, head = st.s, st.e, st.c, st.obj.memory.lm_head
    # autocast's bf16 copy of an fp32 head weight (fp32 master weights) lives while the head runs
    cast = 2 * s.vocab * s.hidden / _zero3_shards(st) if st.req.master_weights else 0.0
    if st.obj.head == "seq_cls":
        return 0.0, st.tokens * s.hidden * e
    elements = st.tokens * s.vocab
    if head == "next_token" and st.req.lm_head == "full":
        return elements * (e + 12) * c["logits_scale"], 0.0  # bf16 logits + fp32 upcast, log-softmax, grads
    if head in ("next_token", "fused"):
        # TRL's fused LM head (trl/kernels/chunked_logprob.py): no full logits; the projection runs
        # on one (4096 tokens x 32768 vocab) buffer at a time (an fp32 head weight cast one vocab chunk
        # at a time), and the backward builds the hidden states' gradient in fp32 and a trained head's
        # in an fp32 buffer of the whole weight. fused_tile_bytes: bytes per tile element, with the
        # fold's temporaries.
        tile = min(st.tokens, FUSED_TILE_TOKENS) * min(s.vocab, FUSED_TILE_VOCAB)
        chunk_cast = cast * min(1.0, FUSED_TILE_VOCAB / s.vocab)
        grad_acc = 4 * s.vocab * s.hidden if st.par.memory.trains_head(st.cfg) else 0.0
        return tile * c["fused_tile_bytes"] + chunk_cast + grad_acc, st.tokens * s.hidden * 4
    if head == "upcast":
        # tunebench's PPO (methods/_ppo.py): the update's logits upcast to fp32 and a full fp32 log-softmax
        # kept for the backward (the compute-dtype logits are freed when the forward returns)
        return elements * 8 + cast, 0.0
    # full logits in the compute dtype and TRL's selective_log_softmax: a row-by-row log-softmax kept
    # for the backward (another copy; autocast on the CPU keeps it in bf16), fp32 via logsumexp (no copy)
    per = 2 * e if e == 2 else e
    # the next-token NLL over some sequences (ORPO's chosen half): F.cross_entropy on a contiguous copy
    # of their logits, upcast to fp32, with an fp32 log-softmax kept for the backward
    per += st.obj.memory.nll_share * (e + 4 + 4)
    return elements * per * c["logits_scale"] + cast, 0.0


def _extra_models(st: _Stage, parts: dict[str, float]) -> dict[str, float]:
    """The objective's other models (from its card's needs) and its rollouts' KV cache."""
    s, e, req, obj = st.s, st.e, st.req, st.obj
    extras: dict[str, float] = {}
    frozen_copy = _stored_weights(st)
    if "reference" in obj.needs and not req.precompute_ref and not _grpo_without_kl(obj):
        if not st.par.peft:  # TRL deep-copies a plain model as its reference
            extras["reference_model"] = frozen_copy
        else:
            st.notes.append("reference = the same base with adapters disabled (no extra copy)")
    if "teacher" in obj.needs:
        t = req.teacher or s
        extras["teacher_model"] = t.params() * st.w
        if obj.memory.teacher_logits(obj.settings()):
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
    if zero >= 3 and n > 1:  # one rank holds everything: nothing to shard or gather
        parts["weights"] /= n
        parts["gathered_layer"] = st.s.layer_params() * st.w  # the layer being computed, gathered whole
        parts["adapter"] /= n
        for k in ("reference_model", "teacher_model", "reward_model", "value_model"):
            if k in extras:
                extras[k] /= n


def _breakdown(st: _Stage, parts: dict[str, float], extras: dict[str, float]) -> dict[str, float]:
    """Peak = what stays + the larger of the two transient phases: the backward (activations,
    logits, gradients) or the end of the backward and the optimizer step (every gradient)."""
    own_grads = 0 if st.in_base else parts["grads"]
    # the head's logits are gone before the backward reaches the layers, so a layer's backward
    # (gradients, recomputed activations) and the logits never coexist: the larger of the two counts
    transient = max(parts["layer_bwd"], parts["logits"])
    backward = parts["acts"] + transient + parts["logits_kept"] + parts["head_grad"] + own_grads
    # every optimizer here steps in place (torch's fused AdamW, HF's default; SGD without momentum;
    # bnb's 8-bit kernels): the tracer sees no step temporaries, so the step phase is the gradients
    step = parts["grads"]
    if backward >= step:
        in_layers = parts["layer_bwd"] > parts["logits"]
        phase = {"gradients": parts["head_grad"] + own_grads,
                 "activations": parts["acts"] + (parts["layer_bwd"] if in_layers else 0.0),
                 "logits": (0.0 if in_layers else parts["logits"]) + parts["logits_kept"]}
    else:
        phase = {"gradients": parts["grads"], "activations": 0.0, "logits": 0.0}
    kv = extras.get("generation_kv_cache", 0.0)
    if kv and kv < max(backward, step):
        # rollouts are generated before the training forward: the cache is gone by the backward
        extras = {k: v for k, v in extras.items() if k != "generation_kv_cache"}
    elif kv:
        phase = {"gradients": 0.0, "activations": 0.0, "logits": 0.0}
    breakdown = {"weights": parts["weights"]}
    if parts.get("gathered_layer"):
        breakdown["zero3_gathered_layer"] = parts["gathered_layer"]
    if parts["adapter"] + parts["buffers"]:
        breakdown["adapter_weights"] = parts["adapter"] + parts["buffers"]
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
    if st.cpu:  # host RSS: the measured runtime baseline and glibc's retained transients (advisor/cpu_memory.py)
        from advisor.cpu_memory import overheads

        breakdown.update(overheads(breakdown))
    else:
        breakdown["cuda_context"] = st.c["cuda_context_gib"] * GIB
    peak = sum(breakdown.values())
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


