"""Harness overhead: the same SFT config through a child training run and through a bare loop.

    tunebench bench overhead --model tiny-llama --method lora --steps 20
    python -m bench.overhead minimal tiny-llama lora smoke 20 4 64     # the bare loop alone, JSON out

Both sides run in their own fresh process, one after the other, on the same records, chat
template, completion-only labels, batch size, max length, AdamW learning rate and fp32 on the
same device, and count non-padding input tokens after the first (warm-up) step. The harness
side is a real child training run, ``python -m bench.entry`` (TRL SFTTrainer, callbacks, memory meter, evaluation off);
the bare side is the loop below: tokenize, forward, backward, step. The ratio
harness/minimal tokens/s is what the harness costs (1.0 = free).
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


def _batches(tok, records: list[dict], batch_size: int, max_length: int):
    """Chat-formatted prompt+completion, labels only on the completion (as TRL's SFT does)."""
    import torch

    rows = []
    for r in records:
        prompt = tok.apply_chat_template([{"role": "user", "content": r["prompt"]}], tokenize=False,
                                         add_generation_prompt=True)
        full = tok.apply_chat_template([{"role": "user", "content": r["prompt"]},
                                        {"role": "assistant", "content": r["completion"]}], tokenize=False)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        ids = tok(full, add_special_tokens=False)["input_ids"][:max_length]
        labels = [-100] * min(len(p_ids), len(ids)) + ids[len(p_ids):]
        rows.append((ids, labels))
    i = 0
    while True:
        chunk = [rows[(i + k) % len(rows)] for k in range(batch_size)]
        i += batch_size
        width = max(len(ids) for ids, _ in chunk)
        pad = tok.pad_token_id
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in chunk])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in chunk])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in chunk])
        yield input_ids, labels, mask


def minimal(model_name: str, method: str, task: str, steps: int, batch_size: int, max_length: int) -> dict:
    """The bare loop; returns tokens/s after the warm-up step."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench import taskdata
    from bench.models import model_path
    from methods import parameterization

    torch.manual_seed(0)
    path = model_path(model_name)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    par = parameterization(method)
    model = par.apply(model, par.make_config({})).to(device)
    model.train()
    lr = par.card.default_lr
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    records = taskdata.load_records(task, "train", "prompt_completion", None)
    it = _batches(tok, records, batch_size, max_length)
    tokens, secs = 0, 0.0
    for step in range(steps):
        input_ids, labels, mask = (t.to(device) for t in next(it))
        t0 = time.perf_counter()
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if step > 0:  # the first step is warm-up, as in the harness
            secs += time.perf_counter() - t0
            tokens += int(mask.sum())
    return {"tokens_per_s": tokens / secs, "steps": steps, "lr": lr, "loss": float(loss)}


def compare(model: str, method: str, task: str, steps: int, batch_size: int, max_length: int) -> dict:
    from bench.child import ChildRun, log_tail
    from bench.results import read_runs
    from common.stack import parse_stack

    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory(prefix="tb-overhead-") as tmp:
        db, out = Path(tmp) / "db", Path(tmp) / "out"
        t0 = time.perf_counter()
        args = ["--stack", f"sft:{method}", "--model", model, "--task", task, "--max-steps", str(steps),
                "--hp", f"batch_size={batch_size}", "--hp", f"max_length={max_length}", "--hp", "eval_limit=0",
                "--db", str(db), "--out", str(out), "--run-id", "overhead", "--quiet"]
        h = ChildRun(args, spec=parse_stack(f"sft:{method}", model, task), run_id="overhead", db=db,
                     log=Path(tmp) / "harness.log", out=out, env=env).start()
        rc = h.wait()
        harness_wall = time.perf_counter() - t0
        df = read_runs(db)
        if rc != 0 or df.is_empty() or df["tokens_per_s"][0] is None:
            raise UserError(f"the harness run failed: {log_tail(h.log_path, 1) or f'exit {rc}'}")
        t0 = time.perf_counter()
        m = subprocess.run([sys.executable, "-m", "bench.overhead", "minimal", model, method, task, str(steps),
                            str(batch_size), str(max_length)], capture_output=True, text=True, env=env)
        minimal_wall = time.perf_counter() - t0
        if m.returncode != 0:
            tail = (m.stderr.strip().splitlines() or [f"exit {m.returncode}"])[-1]
            raise UserError(f"the minimal loop failed: {tail}")
        bare = json.loads(m.stdout.strip().splitlines()[-1])
    harness_tps = float(df["tokens_per_s"][0])
    return {"model": model, "method": method, "task": task, "steps": steps, "batch_size": batch_size,
            "max_length": max_length, "harness_tokens_per_s": harness_tps, "minimal_tokens_per_s": bare["tokens_per_s"],
            "ratio": harness_tps / bare["tokens_per_s"], "harness_wall_s": harness_wall, "minimal_wall_s": minimal_wall,
            "harness_step_time_s": df["step_time_s"][0]}


if __name__ == "__main__":  # python -m bench.overhead minimal MODEL METHOD TASK STEPS BATCH MAXLEN
    if len(sys.argv) != 8 or sys.argv[1] != "minimal":
        sys.exit("usage: python -m bench.overhead minimal MODEL METHOD TASK STEPS BATCH MAXLEN")
    _, _, mdl, meth, tsk, n, b, length = sys.argv
    print(json.dumps(minimal(mdl, meth, tsk, int(n), int(b), int(length))))
