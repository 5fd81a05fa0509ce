"""math-prefs: correct vs wrong math solutions, paired (DPO family) and unpaired (KTO).

    tunebench data prepare math-prefs

Two sources:
- ``champ-dataset`` (MIT): competition problems with a reference solution, and model answers
  (GPT-3.5/4, PaLM 2) whose first wrong step is marked by annotators. chosen = the reference
  solution, rejected = an annotated model answer that contains a marked mistake. Problems are
  split train/test by problem id, so a test problem never appears in train.
- gsm-symbolic (prepared first): chosen = the worked solution, rejected = the same solution with
  its final result replaced by a wrong number (in the last step and the final line). Train
  pairs come from gsm-symbolic's train split, test pairs from its test split.

Unpaired: every pair gives a desirable (label true) and an undesirable (label false) record.
"""
from __future__ import annotations

import importlib.util
import json
import random
import re
from pathlib import Path

from bench.builders.gsm import NUMBER, _norm


def _champ_file() -> Path:
    from common.errors import UserError

    spec = importlib.util.find_spec("champ_dataset")
    if spec is None:
        raise UserError("math-prefs needs the PyPI package champ-dataset: pip install --no-deps champ-dataset==1.0.0")
    return Path(list(spec.submodule_search_locations)[0]) / "dataset_files" / "v0.json"


def champ_pairs(prompt: str, max_chars: int) -> dict[str, list[dict]]:
    """{problem id: [pair, ...]} for every annotated model answer with a marked mistake and at
    most ``max_chars`` characters (a few run to 15k; they would dominate scoring time)."""
    problems = json.loads(_champ_file().read_text(encoding="utf-8"))["problems"]
    out: dict[str, list] = {}
    for pid in sorted(problems):
        p = problems[pid]
        steps = " ".join(s["_text"].strip() for s in p["solution"]["steps"])
        chosen = f" {steps}\nThe answer is {p['_answer'].strip()}"
        for key in sorted(p.get("fws_annotations", {})):
            ann = p["fws_annotations"][key]
            if ann.get("start_idx") is None or len(ann["text"]) > max_chars:  # no marked mistake, or too long
                continue
            rejected = " " + ann["text"].strip()
            out.setdefault(pid, []).append({"prompt": prompt.format(question=p["_text"].strip()),
                                            "chosen": chosen, "rejected": rejected})
    return out


def corrupt(solution: str, rng: random.Random) -> str | None:
    """The solution with its final number replaced by a plausible wrong one, or None."""
    m = re.search(r"The answer is (.+)\.$", solution)
    if not m:
        return None
    final = _norm(m.group(1))
    try:
        v = float(final)
    except ValueError:
        return None
    delta = rng.choice([-3, -2, -1, 1, 2, 3, 10])
    wrong = v * 2 if v != 0 and rng.random() < 0.25 else v + delta
    wrong_s = _norm(str(wrong))
    if wrong_s == final:
        return None
    body = solution[: m.start()]
    # Replace the last occurrence of the answer in the worked steps too, so the error is in a step.
    nums = [x for x in NUMBER.finditer(body) if _norm(x.group(0)) == final]
    if nums:
        x = nums[-1]
        body = body[: x.start()] + wrong_s + body[x.end():]
    return f"{body}The answer is {wrong_s}."


def gsm_pairs(split: str, rng: random.Random, n: int) -> list[dict]:
    from bench.taskdata import load_records

    out = []
    for r in load_records("gsm-symbolic", split, "prompt_completion"):
        if len(out) >= n:
            break
        bad = corrupt(r["completion"], rng)
        if bad:
            out.append({"prompt": r["prompt"], "chosen": r["completion"], "rejected": bad})
    return out


def build(task, limit: int | None = None, progress=None) -> dict:
    opt = task.options
    rng = random.Random(task.seed)
    champ = champ_pairs(task.prompt, opt["champ_max_chars"])
    ids = sorted(champ)
    rng.shuffle(ids)
    n_test_ids = round(len(ids) * opt["champ_test_fraction"])
    test_ids, train_ids = sorted(ids[:n_test_ids]), sorted(ids[n_test_ids:])
    if progress:
        progress("champ pairs")
    split_pairs = {}
    for split, pids in (("train", train_ids), ("test", test_ids)):
        pairs = [pair for pid in pids for pair in champ[pid]]
        pairs += gsm_pairs(split, random.Random(task.seed + len(split)), opt[f"gsm_{split}_pairs"])
        random.Random(task.seed).shuffle(pairs)
        split_pairs[split] = pairs[: task.splits[split]]
    out = {}
    for split, pairs in split_pairs.items():
        unpaired = []
        for p in pairs:
            unpaired.append({"prompt": p["prompt"], "completion": p["chosen"], "label": True})
            unpaired.append({"prompt": p["prompt"], "completion": p["rejected"], "label": False})
        out[split] = {"preference": pairs, "unpaired_preference": unpaired}
    return out
