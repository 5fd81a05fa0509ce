"""How long a run's sequences really are: its task's train records tokenized the way its objective
builds them, and the length a batch of them is padded to.

Runs pad each batch to its longest sequence, usually well below max_length, so memory checks
against measured runs (bench/trace_check.py, the CPU peak-RSS model) trace or estimate at the
expected padded length of the run's own batches, not at the max_length a user states.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache

from common.errors import UserError


@lru_cache(maxsize=None)
def _tokenizer(model: str):
    # transformers' own loader: bench.train would import the whole training stack just to count tokens
    from transformers import AutoTokenizer

    from bench.models import model_path

    return AutoTokenizer.from_pretrained(model_path(model))


@lru_cache(maxsize=None)
def lengths(model: str, task: str, obj: str, generated: int | None, limit: int | None) -> tuple[int, ...]:
    """Tokens of each training sequence the objective builds from the task's train records: chat-formatted
    prompt + answer + eos (preference pairs: the longer answer; ``generated``: the answer is the run's own
    generation of that many tokens, as rlaif's pairs and distill's teacher outputs; objectives that
    generate during training: the prompt alone, the caller adds the rollout)."""
    from bench.taskdata import load_records
    from methods import objective

    tok, card = _tokenizer(model), objective(obj).card

    def n(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    def head(prompt: str) -> int:
        return n(tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True))

    out = []
    for r in load_records(task, "train", card.data, limit):
        if card.data == "text":
            out.append(n(r["text"]))
        elif card.memory.generates:
            out.append(head(r["prompt"]))
        elif generated:
            out.append(head(r["prompt"]) + 1 + generated)
        elif card.data == "preference":
            out.append(head(r["prompt"]) + 1 + max(n(r["chosen"]), n(r["rejected"])))
        else:
            out.append(head(r["prompt"]) + 1 + n(r["completion"]))
    return tuple(out)


def draws(objective: str, cfg: dict, micro_batch: int) -> int:
    """Distinct train records padded together in one batch: ``micro_batch``, but an objective that
    generates while it trains pads differently: GRPO's batch is ``num_generations`` completions of each
    prompt, and PPO pads a whole rollout's prompts together."""
    from methods import objective as objective_of

    if not objective_of(objective).card.memory.generates:
        return micro_batch
    if cfg.get("rollout_batch"):
        return int(cfg["rollout_batch"])
    if cfg.get("num_generations"):
        return max(1, micro_batch // int(cfg["num_generations"]))
    return micro_batch


def padded_seq(rec: dict, objective: str, seq_len: int, micro_batch: int, batches: int = 1) -> int | None:
    """The length a batch of the run's data is padded to: the expected longest of the records
    ``batches`` batches draw (``draws``) from its task's train records (``batches`` > 1: the longest
    over that many batches), capped at ``seq_len`` (exact over all draws); ``seq_len`` where
    sequences are packed. None when the task's records are not available here."""
    from bench.taskdata import get_task

    h = json.loads(rec.get("hyperparams") or "{}")
    cfg = h.get("cfg", {})
    if cfg.get("packing"):
        return seq_len
    try:
        get_task(rec["task"])
        generated = cfg.get("max_new_tokens")  # trains on generated answers (rlaif, distill)
        ls = lengths(rec["model"], rec["task"], objective, generated, h.get("hp", {}).get("train_limit"))
    except (UserError, OSError):
        return None
    return expected_longest([min(x, seq_len) for x in ls], draws(objective, cfg, micro_batch) * batches)


def expected_longest(lengths: list[int], b: int) -> int | None:
    """The mean, over every draw of ``b`` distinct items, of its longest length (rounded); None if
    fewer than ``b``. The i-th shortest is the longest of comb(i+1, b) - comb(i, b) of the draws."""
    lengths = sorted(lengths)
    if len(lengths) < b:
        return None
    total = math.comb(len(lengths), b)
    return round(sum(x * (math.comb(i + 1, b) - math.comb(i, b)) for i, x in enumerate(lengths)) / total)
