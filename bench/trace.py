"""Peak training memory from a traced step on fake tensors: no GPU, no weights.

    from bench.trace import TraceRequest, trace_peak
    t = trace_peak(TraceRequest(shape=shape, method="qlora", objective="dpo", seq_len=1024))
    t.peak_bytes, t.breakdown, t.peak_phase, t.seconds

The real transformers architecture of the shape is built on the meta device
(bench/trace_model.py), the parameterization is applied by the method's own ``apply``
(methods/<name>.py through methods.registry, as bench/train.py does), and the model moves into
``FakeTensorMode`` with ``to_empty``: tensors have shapes, dtypes and storages but no data.
Two training steps then run for real — forward, the objective's loss, backward, the optimizer's
step — while bench/trace_count.py counts live storage at every aten op. Step 2 holds the
optimizer state, so the peak is the steady-state one.

What a step is for each objective (``OBJECTIVE_STEPS``) mirrors what its trainer does to memory:
causal LM loss from the model's own forward (the CPU path of methods/_trl.py's LeanSFTTrainer),
preference pairs concatenated into one forward with TRL's ``selective_log_softmax``, the
reference as the disabled adapter (PEFT) or a frozen copy (full-weight methods), generation as
an HF prefill plus one decode step with a DynamicCache (the KV cache of prompt+completion),
a reward model as a second model with a scalar head. The figures are live tensor storage (what
``torch.cuda.max_memory_allocated`` counts), not the allocator's reserved pool.

Precision: ``bf16`` = weights and optimizer state in bf16, under a bf16 autocast (the HF/TRL
trainers' bf16=True); ``fp32`` = all fp32, no autocast; ``mixed`` = fp32 master weights and fp32
optimizer state with a bf16 autocast compute (16 bytes per trained parameter).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from common.errors import UserError
from common.shape import Shape

PRECISIONS = ("bf16", "fp32", "mixed")
CAUSAL = ("sft", "cpt", "multitask", "distill")  # objectives whose step is a next-token loss
OPTIMIZERS = ("adamw", "adamw8bit", "paged_adamw8bit", "sgd")
CATEGORIES = ("weights", "trainable", "grads", "optimizer", "activations", "logits_loss", "extra_models",
              "extra_activations", "kv_cache", "backward_temp", "optimizer_temp")


@dataclass
class TraceRequest:
    """One traced configuration. ``shape`` or ``config`` (an HF config dict with model_type)."""

    shape: Shape | None = None
    config: dict | None = None
    method: str = "lora"
    method_cfg: dict = field(default_factory=dict)
    objective: str = "sft"
    objective_cfg: dict = field(default_factory=dict)
    seq_len: int = 1024
    micro_batch: int = 1
    grad_ckpt: bool = False
    precision: str = "bf16"
    optimizer: str = "adamw"
    gen_len: int = 256
    generations: int = 8
    steps: int = 2
    # ZeRO / FSDP sharding over num_gpus ranks, counted on one rank as the step runs (bench/trace_count.py):
    # 1 optimizer states, 2 + gradients (reduce-scattered as the backward makes them), 3 + weights
    zero_stage: int = 0
    num_gpus: int = 1
    # LM-head loss of the causal objectives (sft, cpt, multitask, distill): "fused" = TRL's chunked
    # log-prob head with log_probs only (what tunebench train runs on GPU, methods/_trl.py); "fused_logs"
    # = stock TRL SFTTrainer's head (+ entropy, is_top1 for its logs); "full" = the model's own
    # cross-entropy over full logits (LeanSFTTrainer on CPU, plain HF Trainer).
    lm_head: str = "fused"
    # Batches padded to their longest sequence (unpacked real data): the attention mask holds zeros, so
    # transformers materializes a (batch, 1, seq, seq) mask and SDPA repeats k/v to every head (no native
    # GQA with a mask). False: unpadded sequences, SDPA's causal kernel without a mask.
    padded: bool = False


@dataclass
class Trace:
    peak_bytes: int
    peak_phase: str
    peak_step: int
    breakdown: dict[str, int]
    boundary_bytes: dict[int, int]  # live bytes where backward starts, per step
    seconds: float
    ops: int
    total_params: int
    trainable_params: int
    notes: list[str]

    def to_dict(self) -> dict:
        gib = 2 ** 30
        return {"peak_gib": self.peak_bytes / gib, "peak_bytes": self.peak_bytes, "phase": self.peak_phase,
                "step": self.peak_step + 1, "breakdown_gib": {k: v / gib for k, v in self.breakdown.items() if v},
                "boundary_bytes": {str(k + 1): v for k, v in self.boundary_bytes.items()},
                "seconds": round(self.seconds, 2), "ops": self.ops, "total_params": self.total_params,
                "trainable_params": self.trainable_params, "notes": self.notes}


def _dtype(precision: str):
    import torch

    return torch.bfloat16 if precision == "bf16" else torch.float32


def _config(req: TraceRequest) -> tuple[dict, list[str]]:
    from bench.trace_model import hf_config

    if req.config is not None:
        return dict(req.config), []
    if req.shape is None:
        raise UserError("trace: give a shape or an HF config")
    cfg, note = hf_config(req.shape)
    return cfg, [note] if note else []


class _Phase:
    """Forward hooks that set the counter's phase: the LM head and the loss after it are
    'logits_loss', the rest of a policy forward 'forward' (or the phase it was entered in)."""

    def __init__(self, live):
        self.live = live

    def head_hooks(self, model):
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if head is None:  # a seq_cls model: the score head
            head = getattr(model, "score", None)
        if head is None:
            return []
        saved = {}

        def pre(mod, args):
            saved["phase"] = self.live.phase
            if self.live.phase == "forward":
                self.live.phase = "logits_loss"

        return [head.register_forward_pre_hook(pre)]


def _ids(b: int, t: int):
    import torch

    return torch.zeros(b, t, dtype=torch.long)


LM_HEADS = {"fused": ("log_probs",), "fused_logs": ("log_probs", "entropy", "is_top1"), "full": None}
# TRL 1.16's DPO / KTO / GRPO trainers score sequences through the same fused head (their __init__
# patches it with these outputs; the reference model gets the plain log_probs head). CPO (SimPO) and
# ORPO still build full logits and use selective_log_softmax.
FUSED_OBJECTIVES = {"dpo": ("log_probs", "entropy", "mean_logits", "is_top1"),
                    "ipo": ("log_probs", "entropy", "mean_logits", "is_top1"),
                    "rlaif": ("log_probs", "entropy", "mean_logits", "is_top1"),
                    "kto": ("log_probs", "entropy", "mean_logits"),
                    "grpo": ("log_probs", "entropy")}


def fuse_head(model, lm_head: str, outputs: tuple | None = None) -> None:
    """Patch TRL's fused LM head onto the (base) model, as the TRL trainers do."""
    from trl.trainer.utils import add_fused_lm_head

    outputs = outputs or LM_HEADS[lm_head]
    if outputs is not None:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        add_fused_lm_head(base, outputs=outputs)


def _mask(b: int, t: int, padded: bool):
    """The batch's attention mask: ones for a padded batch (bench/trace_model.py ``real_masks`` then
    keeps it, as a real run keeps a mask with zeros), none for unpadded sequences."""
    import torch

    return torch.ones(b, t, dtype=torch.long) if padded else None


def _causal_loss(model, b, t, lm_head: str, padded: bool):
    """Next-token loss: TRL's fused head (tiles, no full logits) or the model's own CE over full logits."""
    ids, mask = _ids(b, t), _mask(b, t, padded)
    if lm_head == "full":
        return model(input_ids=ids, attention_mask=mask, labels=ids, use_cache=False).loss
    out = model(input_ids=ids, attention_mask=mask, labels=ids, use_cache=False, fused_lm_head=True)
    return -out.log_probs.sum() / (b * (t - 1))


def _fused_logps(model, b, t, padded: bool, new: int | None = None):
    """Sequence log-probs through the fused head (labels outside the completion are -100 in TRL;
    on CPU the head scores every position either way)."""
    ids = _ids(b, t)
    out = model(input_ids=ids, attention_mask=_mask(b, t, padded), labels=ids, use_cache=False, fused_lm_head=True)
    lp = out.log_probs if new is None else out.log_probs[:, -new:]
    return lp.sum(-1)


def _logps(model, b, t, padded: bool):
    """Sequence log-probs over the completion tokens, TRL-style (selective_log_softmax)."""
    from trl.trainer.utils import selective_log_softmax

    ids = _ids(b, t)
    logits = model(input_ids=ids, attention_mask=_mask(b, t, padded), use_cache=False).logits
    lp = selective_log_softmax(logits[:, :-1], ids[:, 1:])
    return lp.sum(-1), logits


class Step:
    """One objective's training step: ``loss(ctx)`` runs the forwards and returns the loss."""

    def __init__(self, req: TraceRequest, live, models: dict, cfg: dict):
        self.req, self.live, self.models = req, live, models
        self.cfg = cfg  # the objective's validated settings (card defaults filled in)

    def reference(self, fn):
        """Run ``fn(model)`` with the reference: the disabled adapter or the frozen copy."""
        import torch

        prev, self.live.phase = self.live.phase, "extra_forward"
        try:
            with torch.no_grad():
                ref = self.models.get("reference")
                if ref is not None:
                    return fn(ref)
                policy = self.models["policy"]
                with policy.disable_adapter():
                    return fn(policy)
        finally:
            self.live.phase = prev

    def generate(self, b: int, prompt: int, new: int):
        """HF decoding memory: prefill of prompt+new-1 tokens (logits of the last position only)
        into a DynamicCache, then one decode step; the cache ends at its full final size."""
        import torch
        from transformers import DynamicCache

        policy = self.models["policy"]
        prev, self.live.phase = self.live.phase, "generation"
        try:
            with torch.no_grad():
                cache = DynamicCache(config=policy.config)
                n, pad = prompt + new - 1, self.req.padded
                policy(input_ids=_ids(b, n), attention_mask=_mask(b, n, pad), past_key_values=cache,
                       use_cache=True, logits_to_keep=1)
                policy(input_ids=_ids(b, 1), attention_mask=_mask(b, n + 1, pad), past_key_values=cache,
                       use_cache=True, logits_to_keep=1)
                del cache
        finally:
            self.live.phase = prev

    def loss(self):
        import torch
        import torch.nn.functional as F

        req, name = self.req, self.req.objective
        b, t, policy, pad = req.micro_batch, req.seq_len, self.models["policy"], req.padded
        if name in CAUSAL:
            return _causal_loss(policy, b, t, req.lm_head, pad)
        if name == "rm":
            ids = _ids(2 * b, t)
            r = policy(input_ids=ids, attention_mask=_mask(2 * b, t, pad)).logits.squeeze(-1)
            return -F.logsigmoid(r[:b] - r[b:]).mean()
        if name in ("dpo", "ipo", "rlaif"):
            lp = _fused_logps(policy, 2 * b, t, pad)
            ref = self.reference(lambda m: _fused_logps(m, 2 * b, t, pad))
            margin = (lp[:b] - ref[:b]) - (lp[b:] - ref[b:])
            return -F.logsigmoid(0.1 * margin).mean()
        if name in ("simpo", "orpo"):
            lp, logits = _logps(policy, 2 * b, t, pad)
            loss = -F.logsigmoid(lp[:b] - lp[b:]).mean()
            if name == "orpo":
                loss = loss + F.cross_entropy(logits[:b, :-1].flatten(0, 1), _ids(b, t - 1).flatten())
            return loss
        if name == "kto":
            lp = _fused_logps(policy, b, t, pad)
            with torch.no_grad():
                kl_lp = _fused_logps(policy, b, t, pad)  # the KL batch (mismatched pairs): no grad
            ref = self.reference(lambda m: _fused_logps(m, 2 * b, t, pad))
            return (1 - F.sigmoid(lp - ref[:b] - (kl_lp - ref[b:]).mean())).mean()
        if name == "grpo":
            # TRL's per-device batch counts completions (prompt seq_len + gen_len new tokens each)
            # TRL GRPOTrainer: the fused head over prompt + completion (labels -100 on the prompt)
            new = req.gen_len
            self.generate(b, t, new)
            lp = _fused_logps(policy, b, t + new, pad, new)
            return -(lp - lp.detach()).exp().mean()
        if name == "ppo":
            # methods/_ppo.py: a rollout of rollout_batch prompts, scored without grad (policy logits
            # + values, reference logits, reward model), then clipped updates on mini_batch sequences.
            from trl.trainer.utils import selective_log_softmax

            new, cfg = req.gen_len, self.cfg
            r, mb, n = int(cfg.get("rollout_batch", b)), int(cfg.get("mini_batch", b)), t + req.gen_len
            self.generate(r, t, new)
            with torch.no_grad():
                prev, self.live.phase = self.live.phase, "extra_forward"
                old = policy(input_ids=_ids(r, n), attention_mask=_mask(r, n, pad), output_hidden_states=True,
                             use_cache=False)
                old_v = self.models["value_head"](old.hidden_states[-1].float())
                old_lp = selective_log_softmax(old.logits[:, :-1], _ids(r, n)[:, 1:])
                ref = self.reference(lambda m: m(input_ids=_ids(r, n), attention_mask=_mask(r, n, pad),
                                                 use_cache=False).logits)
                self.models["reward_model"](input_ids=_ids(r, n), attention_mask=_mask(r, n, pad))
                self.live.phase = prev
            out = policy(input_ids=_ids(mb, n), attention_mask=_mask(mb, n, pad), output_hidden_states=True,
                         use_cache=False)
            values = self.models["value_head"](out.hidden_states[-1].float()).squeeze(-1)
            lp = selective_log_softmax(out.logits[:, :-1], _ids(mb, n)[:, 1:])
            del old, ref
            return -(lp - old_lp[:mb]).exp().mean() + (values - old_v[:mb].squeeze(-1)).pow(2).mean()
        raise UserError(f"trace: objective '{name}' has no traced step")


def _zero(req: TraceRequest, notes: list[str]) -> tuple[dict[str, float], float]:
    """The counter's per-tag shares of one ZeRO rank, and the share of a gradient once reduce-scattered."""
    if req.zero_stage not in (0, 1, 2, 3):
        raise UserError(f"trace: zero_stage must be 0, 1, 2 or 3, got {req.zero_stage}")
    g = req.num_gpus if req.zero_stage and req.num_gpus > 1 else 1
    if g == 1:
        return {}, 1.0
    share = {"optimizer": 1 / g}  # states and the step's temporaries: each rank steps its flat shard
    if req.zero_stage >= 3:  # TRL prepares the reference / reward / teacher models with DeepSpeed too
        share |= {"weights": 1 / g, "trainable": 1 / g, "extra_models": 1 / g}
    notes.append(f"ZeRO-{req.zero_stage} over {g} ranks counted on one rank: optimizer states"
                 + (", gradients (once each is reduce-scattered)" if req.zero_stage >= 2 else "")
                 + (", weights (buffers stay whole; the gathered layer and communication buckets are not"
                    " in the trace)"
                    if req.zero_stage >= 3 else ""))
    return share, (1 / g if req.zero_stage >= 2 else 1.0)


def _optimizer(req: TraceRequest, params: list, notes: list[str]):
    import torch

    if req.optimizer == "sgd":
        return torch.optim.SGD(params, lr=1e-4)
    if req.optimizer == "adamw":
        # HF Trainer's default optim in transformers 5 is adamw_torch_fused (no foreach temporaries)
        return torch.optim.AdamW(params, lr=1e-4, fused=True)
    import bitsandbytes as bnb

    from torch._subclasses.fake_tensor import unset_fake_temporarily

    notes.append(f"{req.optimizer}: bitsandbytes' optimizer, 8-bit states traced through torch.ops.bitsandbytes")
    cls = bnb.optim.PagedAdamW8bit if req.optimizer.startswith("paged") else bnb.optim.AdamW8bit
    with unset_fake_temporarily():  # its quantization map is computed from real values at construction
        return cls(params, lr=1e-4)


def _state_tensors(opt) -> list:
    out = []
    for st in opt.state.values():
        for v in st.values():
            if hasattr(v, "untyped_storage"):
                out.append(v)
    return out


def trace_peak(req: TraceRequest) -> Trace:
    """Trace ``req.steps`` training steps on fake tensors; see the module docstring."""
    import warnings

    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    from bench.trace_count import LiveBytes
    from bench.trace_model import (boft_block_diag, build, fp32_grouped_mm, lycoris_without_coin_flip, meta_init,
                                   quantize_fake, real_masks)
    from methods import objective, parameterization
    from methods._common import trainable_counts
    from methods.registry import check_combination

    if req.precision not in PRECISIONS:
        raise UserError(f"trace: precision must be one of {', '.join(PRECISIONS)}")
    if req.lm_head not in LM_HEADS:
        raise UserError(f"trace: lm_head must be one of {', '.join(LM_HEADS)}")
    if req.optimizer not in OPTIMIZERS:
        raise UserError(f"trace: optimizer must be one of {', '.join(OPTIMIZERS)}")
    check_combination(req.objective, req.method)
    t0 = time.perf_counter()
    warnings.filterwarnings("ignore")
    obj, par = objective(req.objective), parameterization(req.method)
    config, notes = _config(req)
    dtype = _dtype(req.precision)
    quant = par.card.memory.base
    model = build(config, obj.head, dtype, quant)
    pcfg = par.make_config(req.method_cfg)
    # apply on meta too: adapters, and buffers some methods build at init (BOFT's permutations, one
    # (in, in) matrix per layer), would otherwise be allocated for real
    with meta_init(notes, req.method), torch.device("meta"):
        model = par.apply(model, pcfg)
    trainable, total = trainable_counts(model)
    if req.shape is not None:  # packed 4-bit storage counts oddly in numel; the shape knows the model
        total = req.shape.params()
    needs = obj.card.needs
    peft = hasattr(model, "disable_adapter") and hasattr(model, "peft_config")
    extra_meta = {}
    if "reference" in needs and not peft and not (req.objective == "grpo"):
        extra_meta["reference"] = build(config, obj.head, dtype, quant)  # TRL's frozen copy
    if req.objective == "distill":
        extra_meta["teacher"] = build(config, "causal_lm", dtype)
    if req.objective == "ppo":
        extra_meta["reward_model"] = build(config, "seq_cls", dtype)
    if req.precision != "bf16":
        notes.append("mixed: fp32 master weights, bf16 autocast compute" if req.precision == "mixed" else "fp32")
    if quant != "dense":
        notes.append(f"{quant} base: bitsandbytes layers with quantized storage from bnb's own quantize op; "
                     "matmuls through torch.ops.bitsandbytes fake kernels")

    fake = FakeTensorMode(allow_non_fake_inputs=True)
    share, grad_share = _zero(req, notes)
    live = LiveBytes(share)
    with fake, real_masks(req.padded), fp32_grouped_mm(notes), boft_block_diag(model, notes):
        # peft's prompt-learning wrapper registers the base's embedding module a second time
        # (word_embeddings); to_empty would convert it twice. Convert once, re-point after.
        shared = model._modules.pop("word_embeddings", None)
        model = model.to_empty(device="cpu")
        if shared is not None:
            model.word_embeddings = model.get_input_embeddings()
        quant_state = quantize_fake(model) if quant != "dense" else []
        model.tie_weights() if hasattr(model, "tie_weights") else None
        extras = {}
        for k, m in extra_meta.items():
            m = m.to_empty(device="cpu")
            extra_q = quantize_fake(m) if quant != "dense" and k == "reference" else []
            m.tie_weights()
            m.requires_grad_(False)
            extras[k] = (m.eval(), extra_q)
        value_head = torch.nn.Linear(config["hidden_size"], 1) if req.objective == "ppo" else None
        if req.objective in FUSED_OBJECTIVES:
            fuse_head(model, "fused", FUSED_OBJECTIVES[req.objective])
            if "reference" in extras:
                fuse_head(extras["reference"][0], "fused")
            notes.append(f"{req.objective}: TRL's fused LM head ({', '.join(FUSED_OBJECTIVES[req.objective])}), "
                         "no full logits")
        if req.objective in CAUSAL:
            fuse_head(model, req.lm_head)
            if req.lm_head != "full":
                notes.append(f"LM head: TRL fused chunked log-probs ({', '.join(LM_HEADS[req.lm_head])}), "
                             "no full logits")
        if req.grad_ckpt:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if peft:
                model.enable_input_require_grads()
        model.train()
        notes += lycoris_without_coin_flip(model)
        with live:
            frozen = [p for p in model.parameters() if not p.requires_grad] + quant_state
            params = [p for p in model.parameters() if p.requires_grad]
            live.register(frozen, "weights")
            # buffers (BOFT's permutations, VeRA's projections, rotary tables) stay whole on every rank:
            # ZeRO-3 and FSDP shard parameters only
            live.register(model.buffers(), "buffers")
            live.register(params, "trainable")
            for m, q in extras.values():
                live.register([*m.parameters(), *q], "extra_models")
                live.register(m.buffers(), "extra_buffers")
            if value_head is not None:
                params += list(value_head.parameters())
                live.register(value_head.parameters(), "trainable")
            models = {"policy": model, **{k: m for k, (m, _) in extras.items()}, "value_head": value_head}
            step = Step(req, live, models, obj.make_config(req.objective_cfg).model_dump())
            hooks = _Phase(live).head_hooks(model)
            opt = _optimizer(req, params, notes)
            if grad_share < 1:  # ZeRO-2/3: a gradient lives whole only until it is reduce-scattered
                for p in params:
                    p.register_post_accumulate_grad_hook(lambda p: live.reshard(p.grad, grad_share))
            grad_ids, opt_ids = set(), set()
            # bf16 and mixed both train under a bf16 autocast, as the HF/TRL trainers do with bf16=True
            # (accelerate's mixed precision): peft's fp32 adapters then run their matmuls in bf16
            autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if req.precision != "fp32"
                        else torch.autocast("cpu", enabled=False))
            for i in range(req.steps):
                live.step, live.phase = i, "forward"
                with autocast:
                    loss = step.loss()
                live.phase = "backward"
                live.mark_boundary()
                loss.backward()
                del loss
                grad_ids |= {live.id_of(p.grad) for p in params if p.grad is not None}
                live.phase = "optimizer"
                opt.step()
                opt_ids |= {live.id_of(s) for s in _state_tensors(opt)}
                opt.zero_grad(set_to_none=True)
            for h in hooks:
                h.remove()
    breakdown = dict.fromkeys(CATEGORIES, 0)
    rename = {"forward": "activations", "setup": "activations", "extra_forward": "extra_activations",
              "buffers": "weights", "extra_buffers": "extra_models",
              "generation": "kv_cache", "backward": "backward_temp", "optimizer": "optimizer_temp"}
    for sid, (n, tag) in live.peak_storages().items():
        cat = "grads" if sid in grad_ids else "optimizer" if sid in opt_ids else rename.get(tag, tag)
        breakdown[cat] += n
    return Trace(peak_bytes=live.peak, peak_phase=live.peak_phase, peak_step=live.peak_step, breakdown=breakdown,
                 boundary_bytes=dict(live.boundary), seconds=time.perf_counter() - t0, ops=live.ops,
                 total_params=int(total), trainable_params=int(trainable), notes=notes)
