"""The results database: a directory of immutable parquet files, one per run record.

    tunebench db show --db DIR            # reads it (the db command of the CLI)
    python -m bench.results DIR           # prints the frame and any damaged files

Writing: ``write_record(db, record)`` validates the record against ``bench.schema``, writes it
to an unnamed file in the same directory (Linux ``O_TMPFILE``; elsewhere a hidden temp file),
fsyncs it, and hard-links it to ``<run_id>.parquet``. ``link`` fails if the name exists, so a
record is never overwritten and two writers of the same run id cannot both win; a SIGKILL at
any moment leaves either no file or a complete one (an unnamed file vanishes with its writer;
the fallback may leave a hidden ``.tmp`` file that readers ignore). ``tunebench bench stress``
measures this.

Reading: ``read_runs(db)`` reads every file on its own (one corrupt file breaks a glob scan,
see docs/platform-facts.md), reports damaged ones in one line each and returns the rest as one typed frame.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from bench.schema import SCHEMA, new_record
from common.errors import UserError

SUFFIX = ".parquet"
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]{0,199}$")
# A temp file older than this was left by a killed writer; clean_temps() may remove it.
STALE_TEMP_S = 3600

OnDamaged = Callable[[Path, str], None]


def warn_damaged(path: Path, message: str) -> None:
    first = message.strip().splitlines()[0] if message.strip() else "unreadable"
    sys.stderr.write(f"warning: skipped damaged result file {path}: {first[:200]}\n")


def record_path(db_dir: Path | str, run_id: str) -> Path:
    if not RUN_ID.match(run_id or ""):
        raise UserError(f"run id {run_id!r} is not a safe file name (letters, digits, _ . = -)")
    return Path(db_dir) / f"{run_id}{SUFFIX}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the data file itself is synced
    finally:
        os.close(fd)


def _publish(tmp: Path, target: Path) -> None:
    """Give ``tmp`` the name ``target`` atomically, refusing to replace an existing file."""
    try:
        os.link(tmp, target)  # atomic and no-clobber: EEXIST if another writer got there first
    except FileExistsError:
        raise
    except OSError:
        # Filesystems without hard links: check-then-rename (a same-id race is then possible,
        # but run ids are random or per-matrix-unique, so two writers never share one).
        if target.exists():
            raise FileExistsError(target)
        os.replace(tmp, target)
        return
    tmp.unlink()


def _write_frame_unnamed(frame: pl.DataFrame, target: Path) -> bool:
    """Write into an O_TMPFILE (no name until linked: a killed writer leaves nothing behind).

    Returns False where the OS or filesystem has no O_TMPFILE or /proc; the caller falls back.
    """
    try:
        fd = os.open(target.parent, os.O_TMPFILE | os.O_WRONLY, 0o644)
    except (AttributeError, OSError):
        return False
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        with os.fdopen(fd, "wb") as fh:
            frame.write_parquet(fh)
            fh.flush()
            os.fsync(fh.fileno())
            try:  # a dir fd makes os.link use linkat(AT_SYMLINK_FOLLOW), which names the open file
                os.link(f"/proc/self/fd/{fh.fileno()}", target.name, dst_dir_fd=dir_fd)
            except FileExistsError:  # another writer got there first
                raise
            except OSError:
                return False
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
    finally:
        os.close(dir_fd)
    return True


def _write_frame_atomic(frame: pl.DataFrame, target: Path) -> None:
    if _write_frame_unnamed(frame, target):
        return
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp", dir=target.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            frame.write_parquet(fh)
            fh.flush()
            os.fsync(fh.fileno())
        _publish(tmp, target)
        _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_record(db_dir: Path | str, record: dict) -> Path:
    """Write one run record as ``<db>/<run_id>.parquet`` atomically; never overwrites.

    Missing columns become null, unknown columns raise KeyError (``bench.schema.new_record``).
    Raises FileExistsError if that run id already has a file, UserError if the directory
    cannot be written (read-only, full disk), naming the directory and the cause.
    """
    rec = new_record(**record)
    db = Path(db_dir)
    target = record_path(db, rec["run_id"])
    frame = pl.DataFrame([rec], schema=SCHEMA)
    try:
        db.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise FileExistsError(f"result {target} already exists; records are immutable")
        _write_frame_atomic(frame, target)
    except FileExistsError:
        raise
    except OSError as e:
        raise UserError(f"cannot write result to {db}: {e.strerror or e}") from e
    return target


def record_files(db_dir: Path | str) -> list[Path]:
    """The published record files (hidden temp files of writers in flight are not listed)."""
    db = Path(db_dir)
    if not db.is_dir():
        return []
    return sorted(p for p in db.iterdir() if p.name.endswith(SUFFIX) and not p.name.startswith("."))


def run_ids(db_dir: Path | str) -> set[str]:
    return {p.name[: -len(SUFFIX)] for p in record_files(db_dir)}


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Cast a frame to the schema: missing columns null, extra columns dropped, schema order.

    Older files lack newer columns; those read as null rather than failing the whole DB.
    """
    cols = []
    for name, dtype in SCHEMA.items():
        if name in frame.columns:
            cols.append(pl.col(name).cast(dtype, strict=True))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(cols)


def read_file(path: Path) -> pl.DataFrame:
    """One record file as a typed frame; raises on anything damaged or foreign."""
    frame = pl.read_parquet(path)
    if "run_id" not in frame.columns or "status" not in frame.columns:
        raise ValueError("not a tunebench result (no run_id/status column)")
    if frame.height == 0:
        raise ValueError("empty file")
    return conform(frame)


def empty_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def read_runs(db_dir: Path | str, on_damaged: OnDamaged | None = None) -> pl.DataFrame:
    """Every readable record in ``db_dir`` as one typed frame (empty frame if none).

    Each damaged file (truncated, garbage, wrong columns) is passed to ``on_damaged(path,
    message)`` -- by default one warning line on stderr -- and skipped; the rest still reads.
    """
    report = on_damaged or warn_damaged
    files = record_files(db_dir)

    def load(path: Path):
        try:
            return read_file(path), None
        except Exception as e:  # any failure means this one file is unusable, not the DB
            return None, f"{type(e).__name__}: {e}"

    # Reading is I/O plus parquet decoding in Rust (GIL released): a few threads help on big DBs.
    with ThreadPoolExecutor(max_workers=min(4, max(1, len(files)))) as pool:
        loaded = list(pool.map(load, files))
    frames = []
    for path, (frame, err) in zip(files, loaded):
        if err is not None:
            report(path, err)
        else:
            frames.append(frame)
    if not frames:
        return empty_frame()
    return conform(pl.concat(frames, how="diagonal_relaxed"))


def merge(src_dirs: Iterable[Path | str], db_dir: Path | str,
          on_damaged: OnDamaged | None = None) -> tuple[int, int]:
    """Copy records from each source (a results dir, or a parquet file of many rows such as a
    ``db export``) into ``db_dir``, skipping run ids it already has. Returns (added, duplicates).

    Damaged source files are reported and skipped; nothing in ``db_dir`` is ever replaced.
    """
    report = on_damaged or warn_damaged
    db = Path(db_dir)
    try:
        db.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create results dir {db}: {e.strerror or e}") from e
    have = run_ids(db)
    added = dupes = 0
    for src in map(Path, src_dirs):
        if not src.exists():
            raise UserError(f"merge source {src} does not exist")
        if src.resolve() == db.resolve():
            continue
        if src.is_dir():
            for path in record_files(src):
                rid = path.name[: -len(SUFFIX)]
                if rid in have:
                    dupes += 1
                    continue
                try:
                    read_file(path)  # validate before copying: never import a damaged file
                except Exception as e:
                    report(path, f"{type(e).__name__}: {e}")
                    continue
                target = record_path(db, rid)
                try:
                    _copy_atomic(path, target)
                except FileExistsError:
                    dupes += 1
                    continue
                have.add(rid)
                added += 1
        else:
            try:
                frame = read_file(src)
            except Exception as e:
                report(src, f"{type(e).__name__}: {e}")
                continue
            for row in frame.iter_rows(named=True):
                if row["run_id"] in have:
                    dupes += 1
                    continue
                try:
                    write_record(db, row)
                except FileExistsError:
                    dupes += 1
                    continue
                have.add(row["run_id"])
                added += 1
    return added, dupes


def _copy_atomic(src: Path, target: Path) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        _publish(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def clean_temps(db_dir: Path | str, older_than_s: float = STALE_TEMP_S) -> int:
    """Remove temp files left by killed writers (only old ones: a young one may be in flight)."""
    db = Path(db_dir)
    if not db.is_dir():
        return 0
    now, n = time.time(), 0
    for p in db.glob(".*.tmp"):
        try:
            if now - p.stat().st_mtime > older_than_s:
                p.unlink()
                n += 1
        except FileNotFoundError:
            pass
    return n


if __name__ == "__main__":  # python -m bench.results DIR
    from bench.home import default_db

    with pl.Config(tbl_cols=12, tbl_rows=50):
        print(read_runs(sys.argv[1] if len(sys.argv) > 1 else default_db()))
