"""Reading a file a user named, safely: one UserError line instead of a traceback or a hang.

Every reader of a user-supplied file (stack, matrix, constitution and task YAML, model
config.json, prepared data) goes through ``read_text_file`` (or ``check_file`` where it streams
the file itself). The file is ``stat``-ed before it is opened, so a FIFO, a device such as
/dev/zero, a socket or a folder is refused without ever blocking or reading forever; a regular
file over ``max_bytes``, one with NUL bytes (binary) or one that is not UTF-8 is refused too.
Each message names the file, what is wrong, and what is accepted.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from common.errors import UserError

MIB = 1024 * 1024
CONFIG_MAX = 10 * MIB  # YAML/JSON configuration files: stacks, matrices, constitutions, tasks, config.json


def size_text(n: int) -> str:
    return f"{n / MIB:g} MiB" if n >= MIB else f"{n} bytes"


def file_kind(mode: int) -> str | None:
    """'a folder', 'a FIFO (named pipe)', ... for anything that is not a regular file; None for one."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def check_file(path: str | Path, what: str, max_bytes: int = CONFIG_MAX, kind: str = "YAML") -> os.stat_result:
    """``stat`` the file (never opening it): it exists, is a regular file, and is at most ``max_bytes``."""
    accepted = f"accepted: a UTF-8 {kind} text file of at most {size_text(max_bytes)}"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise UserError(f"cannot read {what} {path}: {getattr(e, 'strerror', None) or e}") from None
    bad = file_kind(st.st_mode)
    if bad:
        raise UserError(f"{what} {path} is {bad}, not a file ({accepted})")
    if st.st_size > max_bytes:
        raise UserError(f"{what} {path} is {size_text(st.st_size)}, over the limit ({accepted})")
    return st


def read_text_file(path: str | Path, what: str, max_bytes: int = CONFIG_MAX, kind: str = "YAML") -> str:
    """The text of a small user file, or one UserError line naming it and what is accepted."""
    check_file(path, what, max_bytes, kind)
    accepted = f"accepted: a UTF-8 {kind} text file of at most {size_text(max_bytes)}"
    try:
        # O_NONBLOCK: if the path was swapped for a FIFO after the stat, opening it still returns at once.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror or e}") from None
    try:
        bad = file_kind(os.fstat(fd).st_mode)
        if bad:
            raise UserError(f"{what} {path} is {bad}, not a file ({accepted})")
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(fd, min(MIB, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if total > max_bytes:
        raise UserError(f"{what} {path} is over {size_text(max_bytes)} ({accepted})")
    data = b"".join(chunks)
    if b"\0" in data:
        raise UserError(f"{what} {path} is binary (it holds NUL bytes), not text ({accepted})")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{what} {path} is not UTF-8 text (bad byte at offset {e.start}) ({accepted})") from None


def read_json_object(path: str | Path, what: str, max_bytes: int = CONFIG_MAX) -> dict:
    """A small JSON file holding one object (e.g. an HF config.json), read with ``read_text_file``'s checks."""
    try:
        data = json.loads(read_text_file(path, what, max_bytes, kind="JSON"))
    except ValueError as e:
        raise UserError(f"{what} {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} must hold a JSON object, not {type(data).__name__}")
    return data
