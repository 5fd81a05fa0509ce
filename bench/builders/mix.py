"""instruct-mix: a weighted multi-task mixture with per-task templates.

    tunebench data prepare instruct-mix

Components (weights in ``bench/tasks/instruct-mix.yaml``):
- ``gsm-symbolic`` and ``wiki-topics``: their prepared prompt_completion records, which carry
  each task's own template;
- ``pydocs``: "What does `json.dumps(obj, ...)` in Python's `json` module do?" -> the first
  paragraph of its docstring, from pydocs-dapt's module split (test questions come from the
  held-out packages only).
Each split draws round(weight * size) records per component (seeded), then interleaves them
in a seeded order. Components are disjoint across splits, so the mixture is too.
"""
from __future__ import annotations

import random

from bench.builders import pydocs


def pydocs_qa(task, split: str) -> list[dict]:
    from bench.taskdata import get_task

    src = get_task("pydocs-dapt")
    mods = pydocs.split_modules(src.seed, src.options["test_fraction"])[split]
    out = []
    for module, path in mods:
        for name, sig, doc in pydocs.entries(path):
            if not name:  # the module docstring answers no "what does X do" question
                continue
            first = doc.split("\n\n")[0].strip()
            if len(first) < 20 or len(first) > task.options["pydocs_max_chars"]:
                continue
            prompt = task.prompt.format(name=f"{module}.{name}", signature=sig, module=module)
            out.append({"prompt": prompt, "completion": " " + " ".join(first.split())})
    return out


def build(task, limit: int | None = None, progress=None) -> dict:
    from bench.taskdata import load_records

    weights = task.options["weights"]
    out = {}
    for split, size in task.splits.items():
        pools = {}
        for comp in sorted(weights):
            pools[comp] = pydocs_qa(task, split) if comp == "pydocs" else load_records(comp, split, "prompt_completion")
            if progress:
                progress(f"{split} {comp}: {len(pools[comp])}")
        mixed = []
        for comp, pool in pools.items():
            pool = list(pool)
            random.Random(f"{task.seed}-{split}-{comp}").shuffle(pool)
            mixed += [{"task": comp, **r} for r in pool[: round(weights[comp] * size)]]
        random.Random(f"{task.seed}-{split}").shuffle(mixed)
        out[split] = {
            "mixture": mixed,
            "prompt_completion": [{"prompt": r["prompt"], "completion": r["completion"]} for r in mixed],
        }
    return out
