"""The built-in ``smoke`` task family: tiny, deterministic, generated in code, for tests.

One task provides every record format: ``text`` (cpt), ``prompt_completion`` (sft),
``preference`` (dpo/ipo/orpo/simpo/rm), ``unpaired_preference`` (kto),
``prompt_with_checker`` (grpo/ppo: the answer is checked by ``check_number``) and
``mixture`` (multitask: two tasks with their own templates, tagged by ``task``). Each record is
built as its common/records.py model, so a builder bug fails here, not inside a trainer.
"""
from __future__ import annotations

import random
import re

from common.records import (FORMATS, Mixture, Preference, PromptCompletion, PromptWithChecker, Record, Text,
                            UnpairedPreference)

SIZES = {"train": 64, "test": 16}
SEEDS = {"train": 1234, "test": 5678}


def _problems(split: str) -> list[tuple[int, int]]:
    rng = random.Random(SEEDS[split])
    seen, out = set(), []
    # Train and test draw from disjoint operand ranges so splits never overlap.
    lo, hi = (0, 19) if split == "train" else (20, 29)
    while len(out) < SIZES[split]:
        a, b = rng.randint(lo, hi), rng.randint(0, 9)
        if (a, b) not in seen:
            seen.add((a, b))
            out.append((a, b))
    return out


def check_number(completion: str, answer: str) -> float:
    """Verifiable reward: 1.0 if the first number in the completion equals the answer."""
    m = re.search(r"-?\d+", completion)
    return float(m is not None and m.group(0) == str(answer).strip())


def _record(fmt: str, i: int, a: int, b: int) -> Record:
    q, s, wrong = f"What is {a} + {b}?", a + b, a + b + 1 + (i % 3)
    if fmt == "text":
        return Text(text=f"{a} + {b} = {s}. The sum of {a} and {b} is {s}.")
    if fmt == "prompt_completion":
        return PromptCompletion(prompt=q, completion=f"{s}")
    if fmt == "preference":
        return Preference(prompt=q, chosen=f"{s}", rejected=f"{wrong}")
    if fmt == "unpaired_preference":
        good = i % 2 == 0
        return UnpairedPreference(prompt=q, completion=f"{s if good else wrong}", label=good)
    if fmt == "prompt_with_checker":
        return PromptWithChecker(prompt=q, answer=str(s))
    # mixture: addition and copying, each with its own template
    if i % 2:
        return Mixture(task="add", prompt=q, completion=f"{s}")
    return Mixture(task="copy", prompt=f"Repeat: {a} {b}", completion=f"{a} {b}")


def build(split: str, fmt: str) -> list[dict]:
    if fmt not in FORMATS:
        raise ValueError(fmt)
    return [_record(fmt, i, a, b).row() for i, (a, b) in enumerate(_problems(split))]
