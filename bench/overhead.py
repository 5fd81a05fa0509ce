"""Harness overhead: the same SFT config through a child training run and through a bare loop.

    tunebench bench overhead --model tiny-llama --method lora --steps 20
    python -m bench.overhead minimal tiny-llama lora smoke 20 4 64     # the bare loop alone, JSON out

Both sides run in their own fresh process, one after the other, with torch's default thread
count, and see the same batches in the same order: the bare loop takes its batches from the
dataloader of a TRL SFTTrainer built with the harness's own config (bench/stack.py ``stage_hp``,
methods/_trl.py ``trl_args``: chat template, completion-only labels, batch size, max length,
data seed), and the same optimizer the Trainer builds (``create_optimizer``: AdamW with the
Trainer's weight decay and fused kernel) with the same gradient clipping (``max_grad_norm``),
fp32 on the same device. That trainer never trains: its fused-LM-head patch is removed again, so
the bare forward is the model's own (full logits, the library's cross-entropy).

Each side counts non-padding input tokens (the attention mask) and times forward, backward,
clipping and the optimizer step of each step after the first (warm-up); fetching a batch is
outside both windows. The harness side is a real child training run, ``python -m bench.entry``
(the objective's trainer, callbacks, memory meter; evaluation off), whose per-step tokens come
from its progress events, so ``same_tokens`` checks that both sides saw the same tokens. The
ratio harness/minimal tokens/s is what the harness costs (1.0 = free).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common.errors import UserError


def _harness_args(model: str, method: str, task: str, steps: int, batch_size: int, max_length: int) -> list[str]:
    return ["--stack", f"sft:{method}", "--model", model, "--task", task, "--max-steps", str(steps),
            "--hp", f"batch_size={batch_size}", "--hp", f"max_length={max_length}", "--hp", "eval_limit=0"]


def _epochs(dl):
    """The dataloader epoch after epoch, reseeded per epoch as the HF Trainer does."""
    epoch = 0
    while True:
        if hasattr(dl, "set_epoch"):
            dl.set_epoch(epoch)
        inner = getattr(getattr(dl, "batch_sampler", None), "batch_sampler", None)
        if hasattr(inner, "set_epoch"):
            inner.set_epoch(epoch)
        yield from dl
        epoch += 1


def minimal(model_name: str, method: str, task: str, steps: int, batch_size: int, max_length: int) -> dict:
    """The bare loop; returns tokens/s after the warm-up step and the tokens of every step."""
    import torch
    from trl import SFTConfig, SFTTrainer

    from bench import taskdata
    from bench.models import model_path
    from bench.stack import stage_hp
    from bench.train import load_model, load_tokenizer, quiet_libraries
    from common.stack import parse_stack
    from methods import objective, parameterization
    from methods._trl import dataset, trl_args
    from methods.context import StageContext
    from methods.sft import chat_records

    quiet_libraries()
    spec = parse_stack(f"sft:{method}", model_name, task,
                       hp={"max_steps": steps, "batch_size": batch_size, "max_length": max_length, "eval_limit": 0})
    st = spec.stages[0]
    hp = stage_hp(spec, st)
    par = parameterization(method)
    path = model_path(model_name)
    torch.manual_seed(hp.seed)
    tok = load_tokenizer(path)
    model = load_model(path, "causal_lm", {})
    torch.manual_seed(hp.seed)
    derived = par.run_defaults(hp) if par.run_defaults else {}
    model = par.apply(model, par.make_config({**derived, **st.method_cfg}))
    records = taskdata.load_records(task, "train", "prompt_completion", hp.train_limit)
    with tempfile.TemporaryDirectory(prefix="tb-minimal-") as tmp:
        ctx = StageContext(model=model, tokenizer=tok, train=records, eval=[], hp=hp,
                           config=objective("sft").make_config(st.cfg), out_dir=Path(tmp), parameterization=method)
        args = trl_args(SFTConfig, ctx, completion_only_loss=True, packing=False)
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset(chat_records(records)),
                             processing_class=tok)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        base.__dict__.pop("forward", None)  # undo TRL's fused-LM-head patch: the model's own forward
        dl = trainer.get_train_dataloader()
        opt = trainer.create_optimizer()
        params = [p for p in model.parameters() if p.requires_grad]
        device = next(model.parameters()).device
        model.train()
        it = _epochs(dl)
        per_step, tokens, secs, loss = [], 0, 0.0, None
        for step in range(steps):
            batch = next(it)
            input_ids, labels, mask = (batch[k].to(device) for k in ("input_ids", "labels", "attention_mask"))
            n = int(mask.sum())
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            if args.max_grad_norm and args.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            per_step.append(n)
            if step > 0:  # the first step is warm-up, as in the harness
                secs += time.perf_counter() - t0
                tokens += n
    return {"tokens_per_s": tokens / secs, "steps": steps, "lr": hp.learning_rate, "loss": float(loss.detach()),
            "tokens": per_step, "threads": torch.get_num_threads(), "optimizer": type(opt).__name__,
            "max_grad_norm": args.max_grad_norm}


def compare(model: str, method: str, task: str, steps: int, batch_size: int, max_length: int) -> dict:
    from bench.child import ChildRun, log_tail
    from bench.results import read_runs
    from common.stack import parse_stack

    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory(prefix="tb-overhead-") as tmp:
        db, out = Path(tmp) / "db", Path(tmp) / "out"
        t0 = time.perf_counter()
        events = Path(tmp) / "events.jsonl"
        args = [*_harness_args(model, method, task, steps, batch_size, max_length),
                "--db", str(db), "--out", str(out), "--run-id", "overhead", "--quiet", "--events", str(events)]
        h = ChildRun(args, spec=parse_stack(f"sft:{method}", model, task), run_id="overhead", db=db,
                     log=Path(tmp) / "harness.log", events=events, out=out, env=env).start()
        seen: list[dict] = []
        rc = h.wait(on_event=seen.append)
        harness_wall = time.perf_counter() - t0
        df = read_runs(db)
        if rc != 0 or df.is_empty() or df["tokens_per_s"][0] is None:
            reason = (log_tail(h.log_path, 1) or f"exit {rc}").removeprefix("error: ")
            raise UserError(f"the harness run failed: {reason}")
        t0 = time.perf_counter()
        m = subprocess.run([sys.executable, "-m", "bench.overhead", "minimal", model, method, task, str(steps),
                            str(batch_size), str(max_length)], capture_output=True, text=True, env=env)
        minimal_wall = time.perf_counter() - t0
        if m.returncode != 0:
            tail = (m.stderr.strip().splitlines() or [f"exit {m.returncode}"])[-1]
            raise UserError(f"the minimal loop failed: {tail}")
        bare = json.loads(m.stdout.strip().splitlines()[-1])
        harness_tokens = [e.get("tokens") for e in seen if e.get("event") == "step"]
    harness_tps = float(df["tokens_per_s"][0])
    return {"model": model, "method": method, "task": task, "steps": steps, "batch_size": batch_size,
            "max_length": max_length, "harness_tokens_per_s": harness_tps, "minimal_tokens_per_s": bare["tokens_per_s"],
            "ratio": harness_tps / bare["tokens_per_s"], "harness_wall_s": harness_wall, "minimal_wall_s": minimal_wall,
            "harness_step_time_s": df["step_time_s"][0], "tokens": sum(bare["tokens"][1:]),
            "same_tokens": harness_tokens == bare["tokens"], "threads": bare["threads"]}


if __name__ == "__main__":  # python -m bench.overhead minimal MODEL METHOD TASK STEPS BATCH MAXLEN
    if len(sys.argv) != 8 or sys.argv[1] != "minimal":
        sys.exit("usage: python -m bench.overhead minimal MODEL METHOD TASK STEPS BATCH MAXLEN")
    _, _, mdl, meth, tsk, n, b, length = sys.argv
    print(json.dumps(minimal(mdl, meth, tsk, int(n), int(b), int(length))))
