"""Reading a user's data file into raw rows, each tagged with where it came from ("line 7", "row 3").

    python -c "from bench.datafiles import read_any; print(read_any(__import__('pathlib').Path('mine.jsonl')))"

JSON Lines, JSON (a list of objects), CSV/TSV, parquet and ``datasets`` save_to_disk folders.
Only the file's shape is checked here (odd files via common/files.py, encoding, line length,
ragged CSV, damaged parquet/arrow, duplicated or missing splits); what the columns mean is
bench/userdata.py's job. Each fault is one UserError line naming the file and the line or row.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from common.errors import UserError
from common.files import MIB, check_file, read_text_file, size_text

DATA_MAX = 4096 * MIB  # one data file
RECORD_MAX = 16 * MIB  # one line / one value: a longer "record" is a file that lost its line breaks
SPLIT_NAMES = {"train": ("train",), "eval": ("test", "validation", "eval")}
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
            ".parquet": "parquet", ".pq": "parquet"}
ACCEPTED = "accepted: .jsonl, .json (a list of objects), .csv, .tsv, .parquet or a datasets save_to_disk folder"


@dataclass
class Table:
    """The raw rows of one file (or split), each with where it came from ("line 7", "row 3")."""

    kind: str
    rows: list[tuple[str, dict]]
    typed: bool = True  # False for CSV: every value is a string


def kind_of(path: Path) -> str:
    if path.is_dir():
        return "datasets"
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"data {path}: unknown file type '{path.suffix or path.name}' ({ACCEPTED})")
    return kind


def _lines(path: Path, what: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 text file, refusing an over-long line, NUL bytes or bad UTF-8."""
    check_file(path, what, DATA_MAX, kind="data")
    with open(path, "rb") as f:
        for n, raw in enumerate(iter(lambda: f.readline(RECORD_MAX + 1), b""), 1):
            if len(raw) > RECORD_MAX:
                raise UserError(f"{what} {path} line {n}: longer than {size_text(RECORD_MAX)} "
                                "(one record per line; was the file written without line breaks?)")
            if b"\0" in raw:
                raise UserError(f"{what} {path} line {n}: binary (NUL bytes), not text")
            try:
                yield n, raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise UserError(f"{what} {path} line {n}: not UTF-8 (bad byte at column {e.start + 1}); "
                                "save the file as UTF-8") from None


def read_jsonl(path: Path) -> Table:
    rows = []
    for n, line in _lines(path, "data"):
        if not line.strip():
            continue
        try:
            row = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as e:
            raise UserError(f"data {path} line {n} column {e.colno}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"data {path} line {n}: a JSON {type(row).__name__}, not an object with columns")
        rows.append((f"line {n}", row))
    return Table("jsonl", rows)


def read_json(path: Path) -> Table:
    text = read_text_file(path, "data", DATA_MAX, kind="JSON")
    try:
        data = json.loads(text)
    except ValueError as e:
        if "Extra data" in str(e):  # one object per line in a .json file
            return read_jsonl(path)
        raise UserError(f"data {path}: not valid JSON ({e})") from None
    if not isinstance(data, list):
        raise UserError(f"data {path}: a JSON {type(data).__name__}, not a list of objects "
                        "(accepted: [{...}, {...}] or one object per line)")
    for i, row in enumerate(data, 1):
        if not isinstance(row, dict):
            raise UserError(f"data {path} row {i}: a JSON {type(row).__name__}, not an object with columns")
    return Table("json", [(f"row {i}", row) for i, row in enumerate(data, 1)])


def read_csv(path: Path, delimiter: str) -> Table:
    csv.field_size_limit(RECORD_MAX)
    lines = _lines(path, "data")
    where = {"line": 0}

    def text():  # csv.reader pulls lines; remember the last one for messages
        for n, line in lines:
            where["line"] = n
            yield line

    reader = csv.reader(text(), delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None:
            raise UserError(f"data {path} is empty: no header row and no rows")
        if len(set(header)) != len(header) or any(not h.strip() for h in header):
            raise UserError(f"data {path} line 1: the header has blank or repeated column names: {header}")
        rows = []
        for i, values in enumerate(reader, 1):
            if not values:
                continue
            if len(values) != len(header):
                raise UserError(f"data {path} row {i} (line {where['line']}): {len(values)} fields, but the header "
                                f"has {len(header)} columns {header}")
            rows.append((f"row {i} (line {where['line']})", dict(zip(header, values))))
    except csv.Error as e:
        raise UserError(f"data {path} line {where['line']}: not valid CSV ({e})") from None
    if not rows:  # a header alone: report its columns so a wrong file is recognisable
        raise UserError(f"data {path} is empty: a header {header} and no rows")
    return Table("csv", rows, typed=False)


def read_parquet(path: Path) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_file(path, "data", DATA_MAX, kind="parquet")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"data {path}: not a readable parquet file ({first})") from None
    return Table("parquet", [(f"row {i}", row) for i, row in enumerate(table.to_pylist(), 1)])


def _saved_rows(ds) -> list[tuple[str, dict]]:
    return [(f"row {i}", row) for i, row in enumerate(ds.to_list(), 1)]


def read_saved(path: Path) -> dict[str, Table]:
    """A datasets save_to_disk folder: {"train": Table} or {"train": ..., "eval": ...}."""
    marks = ("dataset_dict.json", "state.json")
    if not any((path / m).is_file() for m in marks):
        found = sorted(p.name for p in path.iterdir())[:6]
        raise UserError(f"data {path} is a folder but not a datasets save_to_disk folder (no {' or '.join(marks)}; "
                        f"it holds {found or 'nothing'}) ({ACCEPTED})")
    for f in path.rglob("*"):  # a FIFO or device inside would hang the arrow reader
        if not f.is_dir():
            check_file(f, "data file", DATA_MAX, kind="arrow")
    import datasets

    datasets.disable_progress_bars()
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # datasets raises many kinds for a damaged folder
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"data {path}: not a readable datasets folder ({type(e).__name__}: {first})") from None
    if not isinstance(ds, datasets.DatasetDict):
        return {"train": Table("datasets", _saved_rows(ds))}
    names = {role: [n for n in wanted if n in ds] for role, wanted in SPLIT_NAMES.items()}
    if not names["train"]:
        raise UserError(f"data {path}: the DatasetDict has splits {sorted(ds)}, none named 'train' "
                        "(accepted: train, plus optionally test/validation/eval)")
    if len(names["eval"]) > 1:
        raise UserError(f"data {path}: splits {names['eval']} are all held-out splits; keep one")
    out = {"train": Table("datasets", _saved_rows(ds["train"]))}
    if names["eval"]:
        out["eval"] = Table("datasets", [(f"{names['eval'][0]} {w}", r) for w, r in _saved_rows(ds[names["eval"][0]])])
    return out


def read_any(path: Path) -> dict[str, Table]:
    kind = kind_of(path)
    if kind == "datasets":
        return read_saved(path)
    reader = {"jsonl": read_jsonl, "json": read_json, "parquet": read_parquet,
              "csv": lambda p: read_csv(p, ","), "tsv": lambda p: read_csv(p, "\t")}[kind]
    return {"train": reader(path)}
