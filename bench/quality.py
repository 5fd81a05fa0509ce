"""Cheap in-process quality figures every run records: task loss and general-text loss.

``task_loss`` is the mean token NLL of the *target* text on a task's test split, in the
stage's own record format (the completion given the chat-formatted prompt; the chosen answer
for preferences; the text for corpora). It works for every parameterization, including those
lm-eval cannot load (bottleneck adapters, BitFit), because it takes the live model object.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

TARGET = {
    "text": lambda r: ("", r["text"]),
    "prompt_completion": lambda r: (r["prompt"], r["completion"]),
    "mixture": lambda r: (r["prompt"], r["completion"]),
    "preference": lambda r: (r["prompt"], r["chosen"]),
    "unpaired_preference": lambda r: (r["prompt"], r["completion"]),
    "prompt_with_checker": lambda r: (r["prompt"], r["answer"]),
}


def _pairs(records: list[dict], fmt: str) -> list[tuple[str, str]]:
    if fmt == "unpaired_preference":
        records = [r for r in records if r["label"]]
    return [TARGET[fmt](r) for r in records]


@torch.no_grad()
def task_loss(model, tokenizer, records: list[dict], fmt: str, max_length: int = 512, batch_size: int = 8) -> float | None:
    """Mean NLL per target token. Items run ``batch_size`` at a time, right-padded and sorted by length
    (the pads are masked out of attention and loss, positions count from 0 as for one item alone):
    scoring a full test split one item per forward took a third of a CPU matrix run."""
    items = []
    for prompt, target in _pairs(records, fmt):
        if prompt:
            head = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                 add_generation_prompt=True)
            p_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
            t_ids = tokenizer(target + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        else:
            p_ids, t_ids = [], tokenizer(target, add_special_tokens=False)["input_ids"]
        ids = (p_ids + t_ids)[:max_length]
        if len(ids) >= 2:
            items.append((ids, ([-100] * len(p_ids) + t_ids)[:max_length]))
    if not items:
        return None
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    items.sort(key=lambda it: len(it[0]))
    total, count = 0.0, 0
    for i in range(0, len(items), max(1, batch_size)):
        batch = items[i:i + batch_size]
        width = len(batch[-1][0])
        x = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch], device=device)
        y = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch], device=device)
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch], device=device)
        logits = model(input_ids=x, attention_mask=mask).logits[:, -width:].float()  # soft prompts prepend positions
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), y[:, 1:].reshape(-1),
                                                ignore_index=-100, reduction="sum")
        total, count = total + nll.item(), count + int((y[:, 1:] != -100).sum())
    model.train(was)
    return total / count if count else None


def task_metric(model, tokenizer, task: str, limit: int) -> tuple[str, float] | None:
    """The task's own metric (lm-eval, bench/evaluate.py) on ``limit`` test items of a live model."""
    if limit <= 0:
        return None
    from bench.evaluate import evaluate

    res = evaluate(model, task, limit=limit, tokenizer=tokenizer)
    return res["metric"], res["value"]


def general_text_loss(model, limit: int = 32) -> float | None:
    """Held-out general-text loss (the forgetting probe); None when general-text is not prepared."""
    from bench.evaluate import general_loss
    from bench.taskdata import is_prepared

    if not is_prepared("general-text"):
        return None
    return general_loss(model, limit=limit)


def baseline(model_dir: Path, kind: str, task: str, limit: int, compute):
    """A before-training figure of an untouched model folder, computed once and cached.

    Every run of a matrix that starts from the same base on the same task would otherwise
    re-score the identical model (minutes of lm-eval on CPU). The key holds the folder, its
    config's mtime and the prepared task's checksum, so a rebuilt model or task misses.
    """
    from filelock import FileLock

    from bench.home import home
    from bench.metrics import config_hash
    from bench.taskdata import manifest

    cfg = Path(model_dir) / "config.json"
    key = config_hash({"model": str(Path(model_dir).resolve()), "mtime": cfg.stat().st_mtime_ns, "kind": kind,
                       "task": task, "limit": limit, "data": (manifest(task) or {}).get("sha256")})
    path = home() / "cache" / "baselines.json"
    path.parent.mkdir(parents=True, exist_ok=True)

    def read() -> dict:
        # A cache is disposable: anything but a readable JSON object in a regular file counts as empty
        # (and is replaced on the next write) rather than failing the run or hanging on a FIFO.
        if not path.is_file() or path.stat().st_size > 64 * 2**20:
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return {}
        return data if isinstance(data, dict) else {}

    hit = read().get(key)
    if hit is not None:
        return tuple(hit) if isinstance(hit, list) else hit
    value = compute()
    with FileLock(str(path) + ".lock"):
        data = read()
        data[key] = value
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    return value
