"""One GPU-campaign run: a random-init model of a real shape, one method, warm-up + timed steps, measured.

Used by bench/campaign.py; torch, transformers and peft only (no project module outside
bench/campaign_*: see there).

The model is built directly on the device in bf16 (``from_config`` under ``torch.device``: no fp32
copy, no host round trip) and trained as transformers' Trainer does with ``bf16=True``: bf16 base,
PEFT adapters in fp32 (peft's ``autocast_adapter_dtype``), bf16 autocast around the forward, fused
AdamW without weight decay (the Trainer's default), the model's own causal-LM loss on every token
(full logits: no fused LM head as TRL's SFTTrainer patches in). Peaks are reset before the build,
so ``max_memory_*`` cover weights, method, optimizer state and every step of the run.
"""
from __future__ import annotations

import time

MFU_DEFINITION = ("6*N*tokens_per_s/peak_bf16; N = parameters of the base model's nn.Linear layers "
                  "(decoder projections + LM head, tied or not); embedding lookup and attention scores excluded")


class Deadline(Exception):
    """The campaign's hard deadline passed inside a run."""


def _peft_config(method: str, cfg: dict):
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, TaskType

    if method in ("lora", "dora", "qlora"):
        return LoraConfig(r=cfg["r"], lora_alpha=cfg["alpha"], lora_dropout=cfg["dropout"],
                          target_modules=list(cfg["target_modules"]), use_dora=method == "dora",
                          task_type=TaskType.CAUSAL_LM)
    if method == "ia3":
        return IA3Config(target_modules=list(cfg["target_modules"]), feedforward_modules=list(cfg["feedforward_modules"]),
                         task_type=TaskType.CAUSAL_LM)
    if method == "prefix":
        return PrefixTuningConfig(num_virtual_tokens=cfg["num_virtual_tokens"], prefix_projection=True,
                                  encoder_hidden_size=cfg["encoder_hidden_size"], task_type=TaskType.CAUSAL_LM)
    raise ValueError(f"no peft config for {method}")


def _houlsby(model, cfg: dict):
    """Bottleneck adapters after attention and after the MLP of every layer, as methods/_bottleneck_module.py
    inserts them (that module imports the pydantic method cards, which the GPU machine lacks)."""
    import torch

    acts = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU, "silu": torch.nn.SiLU, "tanh": torch.nn.Tanh}

    class Bottleneck(torch.nn.Module):
        def __init__(self, d: int, m: int, like: torch.Tensor):
            super().__init__()
            self.down = torch.nn.Linear(d, m, device=like.device, dtype=like.dtype)
            self.act = acts[cfg["activation"]]()
            self.up = torch.nn.Linear(m, d, device=like.device, dtype=like.dtype)
            with torch.no_grad():
                torch.nn.init.normal_(self.down.weight, std=cfg["init_std"])
                self.down.bias.zero_()
                self.up.weight.zero_()
                self.up.bias.zero_()

        def forward(self, h):
            return h + self.up(self.act(self.down(h)))

    def hook(module, args, output):
        if isinstance(output, tuple):  # attention returns (hidden, attn_weights, ...)
            return (module.bottleneck_adapter(output[0]), *output[1:])
        return module.bottleneck_adapter(output)

    d = model.config.hidden_size
    m = max(1, d // cfg["reduction_factor"])
    model.requires_grad_(False)
    for layer in model.model.layers:
        for block in (layer.self_attn, layer.mlp):
            block.add_module("bottleneck_adapter", Bottleneck(d, m, next(block.parameters())))
            block.register_forward_hook(hook)
            block.bottleneck_adapter.requires_grad_(True)
    return model


def build(run, device: str):
    """(model with the method applied, base parameter count, N for MFU).

    The base lives on ``device`` in bf16; qlora's has NF4 decoder linears (bench/campaign_qlora.py).
    """
    import torch
    from transformers import AutoModelForCausalLM

    from bench.campaign_plan import hf_config
    from bench.campaign_qlora import nf4_model, param_count

    if run.method == "qlora":
        model = nf4_model(run.dims, device)
    else:
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(hf_config(run.dims), dtype=torch.bfloat16,
                                                     attn_implementation="sdpa")
    total = sum(param_count(p) for p in model.parameters())  # tied weights are one parameter: counted once
    mfu_n = sum(param_count(m.weight) for m in model.modules() if isinstance(m, torch.nn.Linear))
    if run.grad_ckpt:  # transformers 5.2x renamed it; 5.17 (the GPU machine's) may have only the old name
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    if run.method == "full":
        model.requires_grad_(True)
    elif run.method == "adapter_houlsby":
        model = _houlsby(model, run.method_cfg)
    else:
        from peft import get_peft_model, prepare_model_for_kbit_training

        if run.method == "qlora":  # as methods/_quant.py: freeze, upcast the non-quantized weights to fp32
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        model = get_peft_model(model, _peft_config(run.method, run.method_cfg))
    return model, total, mfu_n


def train(model, run, device: str, hard_deadline: float) -> dict:
    """Warm-up + timed AdamW steps on random tokens; step times, losses and a gradient check."""
    import torch

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    params = [p for p in model.parameters() if p.requires_grad]
    # transformers' Trainer default (torch >= 2.8): fused AdamW, no weight decay
    opt = torch.optim.AdamW(params, lr=run.learning_rate, weight_decay=0.0, fused=True)
    gen = torch.Generator(device=device).manual_seed(run.seed)
    ids = torch.randint(0, run.dims["vocab"], (run.micro_batch, run.seq_len), device=device, generator=gen)
    times, losses, no_grad = [], [], None
    for i in range(run.warmup_steps + run.steps):
        if time.monotonic() > hard_deadline:
            raise Deadline(f"campaign deadline passed after {i} of {run.warmup_steps + run.steps} steps")
        sync()
        t0 = time.perf_counter()
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        if no_grad is None:  # every trainable tensor must get a gradient, or the method is not wired in
            no_grad = sum(1 for p in params if p.grad is None)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))  # also waits for the step
        sync()
        times.append(time.perf_counter() - t0)
    timed = times[run.warmup_steps:]
    return {"step_times_s": times, "losses": losses, "step_time_s": sum(timed) / len(timed),
            "trainable_tensors_without_grad": no_grad, "trainable_params": sum(p.numel() for p in params)}
