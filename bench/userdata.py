"""The user's own training data: read, detect its format, validate every row, carve a held-out split.

    tunebench data inspect mine.jsonl
    tunebench train --stack sft:lora --model smollm2-135m --data mine.jsonl --eval-fraction 0.1
    python -c "from bench.userdata import inspect_data; print(inspect_data('mine.jsonl'))"

Accepted: JSON Lines (``.jsonl``/``.ndjson``), JSON (``.json``, a list of objects), CSV/TSV, parquet,
or a ``datasets`` ``save_to_disk`` folder (a Dataset, or a DatasetDict whose ``train`` split is
trained and whose ``test``/``validation`` split, if any, is held out). The format is detected
from the columns (or stated with ``--format``): ``messages`` (a single-turn user -> assistant
chat) and ``prompt``/``completion`` give prompt_completion records, ``prompt``/``chosen``/
``rejected`` preference, ``prompt``/``completion``/``label`` unpaired_preference, ``text`` text,
``prompt``/``answer`` prompt_with_checker (numeric answers), ``task``/``prompt``/``completion``
mixture (common/records.py). Unambiguous spellings are mapped (``instruction`` -> prompt,
``response`` or ``output`` -> completion); columns that belong to no format (``id``, ``source``)
are ignored and reported. Every problem is one UserError line naming the file, the row (or
line) and the column.

The held-out split is a hash of each row's prompt (or text) with the seed, not a shuffle: adding
rows never moves an old row between splits, and rows sharing a prompt stay on one side.
The files are read by bench/datafiles.py. Nothing here imports torch; a tokenizer is only used
when one is passed in (``tokenizer_for`` loads a model's). Lengths are of the raw fields joined
by newlines (the longer reply of a pair), without the chat template's few tokens.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from bench.datafiles import ACCEPTED, RECORD_MAX, Table, read_any
from common.errors import UserError
from common.files import size_text
from common.records import FORMATS

MESSAGES = "messages"  # a chat layout, converted to prompt_completion
INPUT_FORMATS = (MESSAGES, *FORMATS)
ALIASES = {"instruction": "prompt", "response": "completion", "output": "completion"}
ROLES = ("system", "user", "assistant")
# Columns that hold text a model should see: never dropped silently when the format is detected
# (alpaca's ``input`` is part of the prompt); with a stated --format they are ignored and reported.
CONTENT = {"input", "context", "system", "history", "question", *ALIASES}
# What a stage may read besides its own format: each pair gives two unpaired rows (kto).
CONVERSIONS = {("preference", "unpaired_preference")}
LENGTH_SAMPLE = 5000  # rows tokenized for the length percentiles (every k-th row of a larger file)


def columns_of(fmt: str) -> tuple[str, ...]:
    return (MESSAGES,) if fmt == MESSAGES else tuple(FORMATS[fmt].model_fields)


def expected() -> str:
    return " | ".join(", ".join(columns_of(f)) for f in INPUT_FORMATS)


# ---- detecting the format from the columns -----------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """How a file's columns map onto one record format."""

    input_format: str  # one of INPUT_FORMATS (messages included)
    rename: dict[str, str]  # file column -> record field (only the columns that differ)
    ignored: tuple[str, ...]

    @property
    def format(self) -> str:
        return "prompt_completion" if self.input_format == MESSAGES else self.input_format

    def source(self, f: str) -> str:
        return next((c for c, t in self.rename.items() if t == f), f)


def detect(path: Path, columns: list[str], fmt: str | None = None, where: str = "row 1") -> Layout:
    """The layout of ``columns`` (auto-detected, or the stated ``fmt``); a UserError says what is expected."""
    cols = set(columns)
    rename = {a: t for a, t in ALIASES.items()
              if a in cols and t not in cols and sum(1 for b, u in ALIASES.items() if b in cols and u == t) == 1}
    named = {rename.get(c, c) for c in cols}
    known = {f for name in INPUT_FORMATS for f in columns_of(name)} | CONTENT
    if fmt is not None:
        if fmt not in INPUT_FORMATS:
            raise UserError(f"unknown --format '{fmt}' (accepted: {', '.join(INPUT_FORMATS)})")
        missing = [c for c in columns_of(fmt) if c not in named]
        if missing:
            raise UserError(f"data {path} {where}: format {fmt} needs columns {', '.join(columns_of(fmt))}; "
                            f"the file has {sorted(cols)} (missing {', '.join(missing)})")
        return _layout(fmt, rename, named)
    fits = [f for f in INPUT_FORMATS if set(columns_of(f)) <= named]
    best = [f for f in fits if not any(set(columns_of(f)) < set(columns_of(g)) for g in fits)]
    if not best:
        raise UserError(f"data {path} {where}: columns {sorted(cols)} match no format; expected one of: {expected()} "
                        "(or pass --format)")
    if len(best) > 1:
        raise UserError(f"data {path} {where}: columns {sorted(cols)} fit more than one format ({', '.join(best)}); "
                        "pass --format or drop the extra columns")
    stray = sorted((named - set(columns_of(best[0]))) & known)
    if stray:
        raise UserError(f"data {path} {where}: columns {sorted(cols)} look like {best[0]} but also hold {stray}, "
                        f"which {best[0]} would drop; merge them into the used columns, drop them, or pass --format "
                        f"{best[0]} to ignore them")
    return _layout(best[0], rename, named)


def _layout(fmt: str, rename: dict[str, str], named: set[str]) -> Layout:
    used = set(columns_of(fmt))
    keep = {a: t for a, t in rename.items() if t in used}
    inverse = {t: a for a, t in keep.items()}
    ignored = tuple(sorted(inverse.get(c, c) for c in named - used))
    return Layout(fmt, keep, ignored)


# ---- one row -> one validated record -----------------------------------------------------------


def _bool(value: Any, typed: bool) -> Any:
    """CSV has no types: its label column is text, true/false (or 1/0)."""
    if not typed and isinstance(value, str):
        return {"true": True, "false": False, "1": True, "0": False}.get(value.strip().lower(), value)
    return value


def _messages(value: Any) -> dict:
    """A single-turn chat as {prompt, completion}; a ValueError (one phrase) for anything else."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"must be a non-empty list of {{role, content}} messages, got {type(value).__name__}")
    for i, m in enumerate(value, 1):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or "role" not in m:
            raise ValueError(f"message {i} must be an object with a role and a string content")
        if m["role"] not in ROLES:
            raise ValueError(f"message {i} has role {m['role']!r} (accepted: {', '.join(ROLES)})")
    roles = [m["role"] for m in value]
    if roles != ["user", "assistant"]:
        why = ("a system message would be dropped; fold it into the user message" if "system" in roles
           else "multi-turn chats are not trained" if len(roles) > 2
           else "it must be a user then an assistant message")
        raise ValueError(f"roles {roles}: only single-turn [user, assistant] chats map to prompt/completion ({why})")
    return {"prompt": value[0]["content"], "completion": value[1]["content"]}


def to_record(path: Path, where: str, row: dict, layout: Layout, typed: bool) -> dict:
    """``row`` as one record of ``layout.format``, or one UserError line naming the row and column."""
    fmt = layout.format
    if layout.input_format == MESSAGES:
        try:
            rec = _messages(row.get(MESSAGES))
        except ValueError as e:
            raise UserError(f"data {path} {where} column 'messages': {e}") from None
    else:
        rec = {f: row.get(layout.source(f)) for f in columns_of(fmt)}
        if "label" in rec:
            rec["label"] = _bool(rec["label"], typed)
    for f, v in rec.items():
        if isinstance(v, str) and len(v) > RECORD_MAX:
            raise UserError(f"data {path} {where} column '{layout.source(f)}': {size_text(len(v))} of text, "
                            f"over the {size_text(RECORD_MAX)} a record may hold")
    try:
        FORMATS[fmt](**rec)
    except ValidationError as e:
        err = e.errors()[0]
        f = str(err["loc"][0]) if err["loc"] else "?"
        col = MESSAGES if layout.input_format == MESSAGES else layout.source(f)
        got = rec.get(f)
        shown = "null" if got is None else repr(got)[:40] if not isinstance(got, str) else repr(got[:40])
        wanted = "true or false" if f == "label" else "a non-empty string"
        raise UserError(f"data {path} {where} column '{col}': must be {wanted}, got {shown}") from None
    if fmt == "prompt_with_checker":
        from bench.builders.gsm import NUMBER

        if not NUMBER.fullmatch(rec["answer"].strip()):
            raise UserError(f"data {path} {where} column '{layout.source('answer')}': {rec['answer'][:40]!r} is not "
                            "a number (prompt/answer rows are rewarded by comparing the completion's last number)")
    return rec


def records_of(path: Path, table: Table, layout: Layout) -> list[dict]:
    """Every row validated; rows whose columns differ from the first row's are refused (one format per file)."""
    first_where, first = table.rows[0]
    out = []
    for where, row in table.rows:
        if set(row) != set(first):
            raise UserError(f"data {path} {where}: columns {sorted(row)} differ from {first_where}'s {sorted(first)} "
                            "(mixed formats; one format per file)")
        out.append(to_record(path, where, row, layout, table.typed))
    return out


# ---- the held-out split ------------------------------------------------------------------------


def key_of(rec: dict) -> str:
    """What the split hashes: the prompt (so a prompt's rows stay together) or the text."""
    return json.dumps([rec.get("task"), rec.get("prompt", rec.get("text"))], ensure_ascii=False)


def held_out(rec: dict, seed: int, fraction: float) -> bool:
    h = hashlib.sha256(f"{seed}\0{key_of(rec)}".encode()).digest()
    return int.from_bytes(h[:8], "big") < fraction * 2 ** 64


def canonical(rec: dict) -> str:
    return json.dumps(rec, sort_keys=True, ensure_ascii=False)


def check_overlap(path: Path, train: list[tuple[str, dict]], held: list[tuple[str, dict]]) -> None:
    """A given held-out split must not repeat a training row: say which rows do."""
    seen = {canonical(r): w for w, r in train}
    dup = [(w, seen[canonical(r)]) for w, r in held if canonical(r) in seen]
    if dup:
        more = f" and {len(dup) - 1} more" if len(dup) > 1 else ""
        raise UserError(f"data {path}: held-out {dup[0][0]} repeats train {dup[0][1]}{more}; "
                        "a held-out split must not be trained on (remove the duplicates)")


# ---- the public API ----------------------------------------------------------------------------


@dataclass
class UserData:
    """Validated records of one data source, split into train and held-out eval."""

    path: Path
    kind: str
    layout: Layout
    columns: list[str]
    train: list[dict]
    eval: list[dict]
    splits_given: bool  # the held-out split came from the folder (not carved by hash)
    sha256: str

    @property
    def format(self) -> str:
        return self.layout.format

    @property
    def label(self) -> str:
        """The ``task`` a result record names: the file and a short content hash."""
        return f"data:{self.path.name}@{self.sha256[:8]}"


def _resolve(path: str | Path) -> Path:
    p = Path(os.path.expanduser(str(path)))
    if not p.exists():
        raise UserError(f"data {p} does not exist ({ACCEPTED})")
    return p.resolve()


@functools.lru_cache(maxsize=8)
def _load(path: Path, mtime: int, size: int, fmt: str | None, seed: int, eval_fraction: float) -> UserData:
    tables = read_any(path)
    train_t = tables["train"]
    if not train_t.rows:
        raise UserError(f"data {path} is empty: no rows ({ACCEPTED})")
    layout = detect(path, list(train_t.rows[0][1]), fmt, train_t.rows[0][0])
    train = records_of(path, train_t, layout)
    if "eval" in tables and tables["eval"].rows:
        ev_t = tables["eval"]
        if set(ev_t.rows[0][1]) != set(train_t.rows[0][1]):
            raise UserError(f"data {path}: the held-out split's columns {sorted(ev_t.rows[0][1])} differ from "
                            f"train's {sorted(train_t.rows[0][1])}")
        ev = records_of(path, ev_t, layout)
        check_overlap(path, list(zip((w for w, _ in train_t.rows), train)), list(zip((w for w, _ in ev_t.rows), ev)))
        given = True
    else:
        side = [held_out(r, seed, eval_fraction) for r in train]
        ev = [r for r, out in zip(train, side) if out]
        train = [r for r, out in zip(train, side) if not out]
        given = False
        if not train:
            raise UserError(f"data {path}: all {len(ev)} rows fell into the held-out split; "
                            "lower --eval-fraction or add rows")
    digest = hashlib.sha256()
    for r in [*train, *ev]:
        digest.update(canonical(r).encode() + b"\n")
    return UserData(path, train_t.kind, layout, list(train_t.rows[0][1]), train, ev, given, digest.hexdigest())


def load_user_data(path: str | Path, format: str | None = None, seed: int = 0,
                   eval_fraction: float = 0.1) -> UserData:
    """Read, detect (or check ``format``), validate every row, and split; one UserError line on any fault."""
    if not 0 <= eval_fraction < 1:
        raise UserError(f"--eval-fraction must be in [0, 1), got {eval_fraction}")
    p = _resolve(path)
    st = p.stat()
    return _load(p, st.st_mtime_ns, st.st_size, format, seed, float(eval_fraction))


def convert(records: list[dict], have: str, want: str) -> list[dict]:
    """Records of format ``have`` as ``want`` (same, or preference -> unpaired_preference)."""
    if have == want:
        return records
    if (have, want) == ("preference", "unpaired_preference"):
        return [x for r in records for x in ({"prompt": r["prompt"], "completion": r["chosen"], "label": True},
                                             {"prompt": r["prompt"], "completion": r["rejected"], "label": False})]
    raise ValueError(f"{have} -> {want}")


def readable_as(have: str) -> list[str]:
    return [have, *(w for h, w in CONVERSIONS if h == have)]


# ---- lengths (what the estimate needs) -------------------------------------------------------


def record_text(rec: dict) -> str:
    """The text one training example holds (the longer reply of a pair)."""
    if "chosen" in rec:
        return rec["prompt"] + "\n" + max(rec["chosen"], rec["rejected"], key=len)
    return "\n".join(str(rec[k]) for k in ("prompt", "completion", "answer", "text") if k in rec)


def percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return 0
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil
    return sorted_values[int(rank) - 1]


@dataclass
class DataInfo:
    """What ``tunebench data inspect`` prints and the wizard shows; lengths feed the estimate."""

    path: str
    kind: str
    input_format: str  # as found in the file (messages included)
    format: str  # the record format it trains as (common/records.py)
    rows: int
    train_rows: int
    eval_rows: int
    splits_given: bool
    columns: list[str]
    ignored_columns: list[str]
    renamed: dict[str, str]
    length_unit: str  # "tokens", or "chars/4" (an approximation: no tokenizer given)
    length_p50: int
    length_p90: int
    length_p99: int
    length_max: int
    length_rows: int  # rows measured (all; with a tokenizer, every k-th row of a large file)
    train_tokens: int  # length summed over the train split (scaled up from the measured rows): Request.tokens per epoch
    objectives: list[str] = field(default_factory=list)  # objectives that can train on it
    sha256: str = ""

    def suggested_max_length(self) -> int:
        """A --hp max_length that keeps 99% of the examples whole: p99 rounded up to 64."""
        return max(64, -(-self.length_p99 // 64) * 64)

    def as_dict(self) -> dict:
        from dataclasses import asdict

        return {**asdict(self), "suggested_max_length": self.suggested_max_length()}


def lengths(records: list[dict], tokenizer: Callable | None = None) -> tuple[list[int], str]:
    """Sorted lengths: characters / 4 of every record, or tokens of every k-th (at most LENGTH_SAMPLE)."""
    if tokenizer is None:
        return sorted(-(-len(record_text(r)) // 4) for r in records), "chars/4"
    step = max(1, -(-len(records) // LENGTH_SAMPLE))
    texts = [record_text(r) for r in records[::step]]
    return sorted(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts), "tokens"


def tokenizer_for(model: str):
    """The tokenizer of a model name or HF folder (bench/models.py), to count lengths in its tokens."""
    from transformers import AutoTokenizer

    from bench.models import model_path

    return AutoTokenizer.from_pretrained(model_path(model))


def inspect_data(path: str | Path, format: str | None = None, tokenizer: Callable | None = None,
                 seed: int = 0, eval_fraction: float = 0.1) -> DataInfo:
    """Detect and validate ``path`` and measure its example lengths (see DataInfo)."""
    from methods import OBJECTIVES

    ud = load_user_data(path, format, seed, eval_fraction)
    all_recs = ud.train + ud.eval
    train_lens, unit = lengths(ud.train, tokenizer)
    lens = sorted(train_lens + lengths(ud.eval, tokenizer)[0])
    fits = sorted(n for n, o in OBJECTIVES.items() if o.data in readable_as(ud.format))
    return DataInfo(
        path=str(ud.path), kind=ud.kind, input_format=ud.layout.input_format, format=ud.format, rows=len(all_recs),
        train_rows=len(ud.train), eval_rows=len(ud.eval), splits_given=ud.splits_given, columns=ud.columns,
        ignored_columns=list(ud.layout.ignored), renamed=dict(ud.layout.rename), length_unit=unit,
        length_p50=percentile(lens, 50), length_p90=percentile(lens, 90), length_p99=percentile(lens, 99),
        length_max=lens[-1] if lens else 0, length_rows=len(lens),
        train_tokens=round(sum(train_lens) * len(ud.train) / len(train_lens)), objectives=fits, sha256=ud.sha256,
    )


# ---- stages (bench/train.py and bench/entry.py) ------------------------------------------------


@dataclass
class StageData:
    """One stage's inputs from user data, in the objective's own format."""

    label: str
    train: list[dict]
    eval: list[dict]
    checker: Callable[[str, str], float] | None


def stage_source(spec, st):
    """The DataSource a stage reads, or None when it reads a standard task (stage data > stage task > stack)."""
    if st.data is not None:
        return st.data
    if st.task is not None:
        return None
    return spec.data


def task_label(spec, st) -> str | None:
    """What a stage's record names as its task: the standard task, or ``data:<file>@<sha8>`` for user
    data (just ``data:<file>`` if the file can no longer be read, e.g. after a crash mid-run)."""
    source = stage_source(spec, st)
    if source is None:
        return st.task or spec.task
    try:
        return load_user_data(source.path, source.format, 0, source.eval_fraction).label
    except (UserError, OSError):
        return f"data:{Path(source.path).name}"


def stage_data(source, obj, hp, label: str) -> StageData:
    """Load ``source`` for a stage whose objective is ``obj``; a UserError names what does not fit."""
    ud = load_user_data(source.path, source.format, hp.seed, source.eval_fraction)
    if obj.data not in readable_as(ud.format):
        want = " or ".join(", ".join(columns_of(f)) for f in INPUT_FORMATS
                           if f == obj.data or (f == MESSAGES and obj.data == "prompt_completion"))
        raise UserError(f"stage {label} trains on {obj.data} records (columns {want}); data {ud.path} holds "
                        f"{ud.format} records (columns {', '.join(ud.columns)})")
    if hp.metric_limit:
        raise UserError(f"stage {label}: metric_limit needs a standard task's metric; on your own data the "
                        "held-out loss is measured (drop --hp metric_limit)")
    if "teacher" in obj.card.needs and not hp.teacher:
        raise UserError(f"stage {label}: on your own data give the teacher: --hp teacher=MODEL "
                        "(the automatic teacher is trained on a standard task)")
    train = convert(ud.train, ud.format, obj.data)
    ev = convert(ud.eval, ud.format, obj.data)
    checker = None
    if "checker" in obj.card.needs:
        from bench.builders.gsm import check_number

        checker = check_number
    # copies: the loaded data is cached and shared by every stage that reads the same file
    return StageData(ud.label, list(train[:hp.train_limit] if hp.train_limit else train), ev[:hp.eval_limit], checker)


def check_stack_data(spec) -> None:
    """Every stage's user data loaded and checked against its objective, before any model loads."""
    from bench.stack import stage_hp
    from methods import objective

    for st in spec.stages:
        source = stage_source(spec, st)
        if source is not None:
            stage_data(source, objective(st.objective), stage_hp(spec, st), st.label)
