"""Standard tasks: a registry of ``bench/tasks/*.yaml`` and the records every trainer reads.

    tunebench data list
    tunebench data prepare --all            # builds TUNEBENCH_HOME/data/<task>/
    python -c "from bench.taskdata import load_records; print(load_records('smoke', 'train', 'text', 2))"

A task is one YAML file (source, licence, splits and seeds, formats, prompt, metric) plus, where
the source needs one, a builder ``bench/builders/<builder>.py`` exposing
``build(task, limit, progress) -> {split: {format: [records]}}``. ``smoke`` is generated in code on every
call; every other task reads the JSONL files ``prepare`` wrote (one per split and format) and
refuses to guess when they are missing.

Record formats (the keys are a contract with methods/ and the trainer) are pydantic models in
common/records.py: ``text`` {text}, ``prompt_completion`` {prompt, completion}, ``preference``
{prompt, chosen, rejected}, ``unpaired_preference`` {prompt, completion, label: bool},
``prompt_with_checker`` {prompt, answer}, ``mixture`` {task, prompt, completion}.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Callable

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from bench.home import data_dir
from common.errors import UserError, unknown
from common.files import MIB, check_file, read_json_object, read_text_file
from common.records import FORMATS, validate

TASKS_DIR = Path(__file__).parent / "tasks"
SPLITS = ("train", "test")
METRIC_KINDS = ("multiple_choice", "generate_number", "perplexity", "preference_ll", "completion_bpb")
MANIFEST = "manifest.json"
DATA_MAX = 1024 * MIB  # one prepared split file (the largest today is under 2 MiB)


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    package: str  # PyPI name ("python" for the interpreter's own stdlib, "code" for smoke)
    version: str = ""
    license: str
    files: list[str] = []
    extract: str  # how the builder turns the files into records, in words
    install: str = ""  # the exact command when the package is missing
    substitute: str = ""  # set when a named source could not be used, saying what replaced it


class Metric(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str  # what `evaluate` reports, e.g. acc, exact_match, word_perplexity
    kind: str  # one of METRIC_KINDS: how bench/evaluate.py asks lm-eval to score it
    higher_is_better: bool = True
    format: str  # the record format the test split is scored from
    max_gen_toks: int = 256


class Task(BaseModel):
    """One standard task, exactly as written in its YAML file."""

    model_config = ConfigDict(extra="forbid")
    name: str
    kind: str  # math, preference, classification, corpus, mixture, smoke
    description: str
    builder: str  # module in bench/builders
    generated: bool = False  # built in code on every call (smoke); no prepare step
    depends: list[str] = []  # tasks whose prepared records this one is built from
    source: list[Source]
    license: str  # licence of the prepared data as a whole
    seed: int
    splits: dict[str, int]  # requested records per split (the builder may produce fewer)
    formats: list[str]
    prompt: str = ""  # the template prompts are rendered with; {field} placeholders
    metric: Metric
    options: dict = {}  # builder-specific knobs, documented in the YAML
    path: Path | None = None

    def prepared_dir(self) -> Path:
        return data_dir() / self.name


def _load_yaml(path: Path) -> Task:
    try:
        raw = yaml.safe_load(read_text_file(path, "task file"))
    except yaml.YAMLError as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"task file {path} is not valid YAML: {first}") from None
    if not isinstance(raw, dict):
        raise UserError(f"task file {path} must hold a mapping, got {type(raw).__name__}")
    try:
        task = Task(**raw, path=path)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise UserError(f"task file {path}: {where}: {err['msg']}") from None
    if task.name != path.stem:
        raise UserError(f"task file {path}: name '{task.name}' must match the file name '{path.stem}'")
    bad = [f for f in task.formats if f not in FORMATS]
    if bad:
        raise UserError(f"task file {path}: unknown format {bad[0]} (accepted: {', '.join(FORMATS)})")
    if task.metric.kind not in METRIC_KINDS:
        raise UserError(f"task file {path}: unknown metric kind {task.metric.kind} (accepted: {', '.join(METRIC_KINDS)})")
    if task.metric.format not in task.formats:
        raise UserError(f"task file {path}: metric.format {task.metric.format} is not one of its formats")
    return task


def _tasks_dir() -> Path:
    # TUNEBENCH_TASKS_DIR lets tests point the registry at a folder with a deliberately broken file.
    return Path(os.environ.get("TUNEBENCH_TASKS_DIR", TASKS_DIR))


def _names() -> list[str]:
    return sorted(p.stem for p in _tasks_dir().glob("*.yaml"))


@functools.lru_cache(maxsize=None)
def _cached(path: str, mtime: float) -> Task:
    return _load_yaml(Path(path))


def get_task(name: str) -> Task:
    """The task named ``name``; UserError with the closest names if there is none."""
    path = _tasks_dir() / f"{name}.yaml"
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", str(name)) or not path.exists():
        raise unknown("task", name, _names())
    return _cached(str(path), path.stat().st_mtime)


def list_tasks() -> list[Task]:
    return [get_task(n) for n in _names()]


def _builder(task: Task):
    return importlib.import_module(f"bench.builders.{task.builder}")


def load_records(task: str, split: str, fmt: str, limit: int | None = None) -> list[dict]:
    """Records of ``task``'s ``split`` in format ``fmt`` (first ``limit`` if given)."""
    t = get_task(task)
    if fmt not in FORMATS:
        raise unknown("record format", fmt, FORMATS)
    if fmt not in t.formats:
        having = [x.name for x in list_tasks() if fmt in x.formats]
        raise UserError(
            f"task {task} has no {fmt} records (it offers {', '.join(t.formats)}); tasks with {fmt}: {', '.join(having)}"
        )
    if split not in t.splits:
        raise unknown(f"split of task {task}", split, t.splits)
    if t.generated:
        recs = _builder(t).build(split, fmt)
        return recs[:limit] if limit is not None else recs
    path = t.prepared_dir() / f"{split}.{fmt}.jsonl"
    if not (t.prepared_dir() / MANIFEST).exists() or not path.exists():
        raise UserError(f"task {task} is not prepared: run tunebench data prepare {task}")
    check_file(path, f"prepared data of task {task}", DATA_MAX, kind="JSON Lines")
    out = []
    try:
        with path.open(encoding="utf-8") as f:
            for line in f:
                if limit is not None and len(out) >= limit:
                    break
                out.append(json.loads(line))
    except (UnicodeDecodeError, ValueError) as e:
        raise UserError(f"prepared data {path} is damaged ({str(e).splitlines()[0]}); "
                        f"rebuild it: tunebench data prepare {task} --force") from None
    return out


def checker(task: str) -> Callable[[str, str], float]:
    """The verifiable reward of a ``prompt_with_checker`` task: (completion, answer) -> 0.0 or 1.0."""
    t = get_task(task)
    if "prompt_with_checker" not in t.formats:
        having = [x.name for x in list_tasks() if "prompt_with_checker" in x.formats]
        raise UserError(f"task {task} has no checker; tasks with one: {', '.join(having)}")
    mod = _builder(t)
    return mod.check_number


# ---- prepare ---------------------------------------------------------------------------------


def _dump(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in records).encode("utf-8")


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def manifest(name: str) -> dict | None:
    """The prepared task's manifest (sizes, per-file and overall sha256), or None."""
    p = get_task(name).prepared_dir() / MANIFEST
    if not p.exists():
        return None
    return read_json_object(p, f"manifest of task {name} (rebuild: tunebench data prepare {name} --force)")


def recipe_sha(t: Task) -> str:
    """Hash of what a build depends on in this repo: the task YAML and its builder's source."""
    h = hashlib.sha256(t.path.read_bytes())
    h.update(Path(_builder(t).__file__).read_bytes())
    return h.hexdigest()


def prepare(name: str, force: bool = False, limit: int | None = None, progress=None) -> dict:
    """Build task ``name`` (and what it depends on) into TUNEBENCH_HOME/data/<name>/.

    Idempotent: a task prepared from the same YAML, builder and ``limit`` is left alone unless
    ``force``; a changed YAML or builder rebuilds it. Deterministic: the same inputs give
    byte-identical files (fixed seeds, sorted sources). Atomic: every file is written to a temp
    file and renamed, the manifest last, under a lock, so readers never see half a task.
    ``limit`` caps records per split (tests use it to keep a full build to seconds).
    """
    from filelock import FileLock

    t = get_task(name)
    if t.generated:
        sizes = {s: len(_builder(t).build(s, t.formats[0])) for s in t.splits}
        return {"name": name, "sizes": sizes, "sha256": _smoke_sha(t), "limit": None, "files": {}}
    for dep in t.depends:
        prepare(dep, limit=limit, progress=progress)
    recipe = recipe_sha(t)
    out = t.prepared_dir()
    out.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        old = manifest(name)
        if old and not force and old.get("limit") == limit and old.get("recipe") == recipe:
            return old
        built = _builder(t).build(t, limit, progress=(lambda msg: progress(name, msg)) if progress else None)
        files, sizes = {}, {}
        for split in t.splits:
            for fmt in t.formats:
                recs = built[split][fmt]
                if limit is not None:
                    recs = recs[:limit]
                validate(recs, fmt, f"{name}/{split}.{fmt}")
                data = _dump(recs)
                fname = f"{split}.{fmt}.jsonl"
                _atomic_write(out / fname, data)
                files[fname] = hashlib.sha256(data).hexdigest()
                if fmt == t.formats[0]:  # sizes count the primary format (unpaired has 2 per pair)
                    sizes[split] = len(recs)
                if progress:
                    progress(name, f"wrote {fname}")
        digest = hashlib.sha256("".join(f"{k} {v}\n" for k, v in sorted(files.items())).encode()).hexdigest()
        man = {"name": name, "sizes": sizes, "sha256": digest, "limit": limit, "files": files, "recipe": recipe}
        # The manifest is written last: its presence is what marks the task as prepared.
        _atomic_write(out / MANIFEST, (json.dumps(man, indent=1, sort_keys=True) + "\n").encode())
    return man


def _smoke_sha(t: Task) -> str:
    h = hashlib.sha256()
    for split in t.splits:
        for fmt in t.formats:
            h.update(_dump(_builder(t).build(split, fmt)))
    return h.hexdigest()


def is_prepared(name: str) -> bool:
    t = get_task(name)
    return t.generated or manifest(name) is not None
