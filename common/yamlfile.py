"""Reading user YAML files (stacks, matrices, constitutions) and KEY=VALUE flags into validated values.

Every failure — missing file, a FIFO, device, folder, binary or oversized file (``common.files``),
broken YAML, wrong shape, a bad field — is one UserError line naming the file and the field,
never a traceback or a hang.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from common.errors import UserError
from common.files import read_text_file


def first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "value"
    return f"'{loc}': {err['msg']}"


def read_yaml(path: str | Path, what: str) -> Any:
    text = read_text_file(path, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UserError(f"{what} {path} is not valid YAML: {str(e).splitlines()[0]}") from None


def load_validated(path: str | Path, cls: type[BaseModel], what: str, shape: str) -> BaseModel:
    """``cls(**yaml)`` with one-line errors; ``shape`` says what the mapping must hold."""
    data = read_yaml(path, what)
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} must be a mapping with {shape}")
    try:
        return cls(**data)
    except ValidationError as e:
        raise UserError(f"{what} {path}: {first_error(e)}") from None


def parse_kv(items: list[str], flag: str) -> dict:
    """``["r=16", "lr=2e-4"]`` from a repeatable ``--flag KEY=VALUE`` -> {"r": 16, "lr": 0.0002} (values as YAML)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} '{item}' must look like KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = value
    return out
