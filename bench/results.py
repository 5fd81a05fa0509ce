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

Reading: ``read_runs(db)`` reads the files in batches (a batch that fails is split until the damaged
file is alone: one corrupt file breaks a glob scan, see docs/platform-facts.md), reports damaged ones
in one line each and returns the rest as one typed frame, sorted by file name.

The index (``<db>/_index/``, used from ``INDEX_MIN_FILES`` record files on): a cache of the rows of
the record files already read, as parquet segments with a ``_file`` column naming the record file
each row came from. A read lists the folder, takes the rows of the listed files from the segments,
reads only the files no segment covers, and appends those as a new segment; past
``INDEX_MAX_SEGMENTS`` segments it merges them into one. Segments are published like records (an
unnamed file, then a link) and only ever deleted after their replacement exists, so two processes
compacting at once leave two equivalent segments (rows are de-duplicated by ``_file``), and a
reader that loses a segment to a compaction lists again. The record files stay the source of
truth: rows of deleted files drop out, damaged files are never indexed (so they are reported on
every read), an unreadable segment is deleted, and deleting ``_index`` only costs one full scan.
Record files are immutable, so a file is identified by its name; a file altered in place after
being indexed is not re-read (``read_runs(db, index=False)`` reads every file).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import polars as pl

from bench.schema import SCHEMA, new_record
from common.errors import UserError

SUFFIX = ".parquet"
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]{0,199}$")
# A temp file older than this was left by a killed writer; clean_temps() may remove it.
STALE_TEMP_S = 3600
INDEX_DIR = "_index"        # not a record file: no .parquet suffix, and run ids start alphanumeric
INDEX_FORMAT = 1
INDEX_MIN_FILES = 256       # below this a full read is fast enough (and small DBs stay cache-free)
INDEX_MAX_SEGMENTS = 8      # more segments than this are merged into one
FILE_COL = "_file"          # the record file a row came from (index segments only)
_BATCH = 2048               # record files per batched read

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


def _write_frame_unnamed(frame: pl.DataFrame, target: Path, durable: bool = True, compression: str = "zstd") -> bool:
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
            frame.write_parquet(fh, compression=compression)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
            try:  # a dir fd makes os.link use linkat(AT_SYMLINK_FOLLOW), which names the open file
                os.link(f"/proc/self/fd/{fh.fileno()}", target.name, dst_dir_fd=dir_fd)
            except FileExistsError:  # another writer got there first
                raise
            except OSError:
                return False
        if durable:
            try:
                os.fsync(dir_fd)
            except OSError:
                pass
    finally:
        os.close(dir_fd)
    return True


def _write_frame_atomic(frame: pl.DataFrame, target: Path, durable: bool = True, compression: str = "zstd") -> None:
    if _write_frame_unnamed(frame, target, durable, compression):
        return
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp", dir=target.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            frame.write_parquet(fh, compression=compression)
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


def write_records(db_dir: Path | str, records: Iterable[dict], durable: bool = True) -> int:
    """Write many records, one immutable file each, exactly as ``write_record`` does; returns the count.

    Validates and types them as one frame (faster than one frame per record). ``durable=False``
    skips the fsyncs: only for scratch databases (``tunebench bench db-scale``) where a power cut
    may lose the lot; each file is still published complete or not at all.
    """
    recs = [new_record(**r) for r in records]
    db = Path(db_dir)
    targets = [record_path(db, r["run_id"]) for r in recs]
    frame = pl.DataFrame(recs, schema=SCHEMA)
    try:
        db.mkdir(parents=True, exist_ok=True)
        for i, target in enumerate(targets):
            _write_frame_atomic(frame.slice(i, 1), target, durable)
    except FileExistsError:
        raise
    except OSError as e:
        raise UserError(f"cannot write result to {db}: {e.strerror or e}") from e
    return len(targets)


def _list_db(db: Path) -> pl.Series:
    """Names in ``db`` that may be record files (``*.parquet``, not hidden: writers' temp files are).

    Not yet checked to be regular files: ``_regular`` does that (a stat each) for the files about
    to be read, so that a FIFO or device named *.parquet is reported, never opened.
    """
    try:
        names = os.listdir(db)
    except (FileNotFoundError, NotADirectoryError):
        names = []
    except OSError as e:
        raise UserError(f"cannot read results database {db}: {e.strerror or e}") from None
    listed = pl.Series(FILE_COL, names, dtype=pl.String)  # filtered in polars: 100k names in ~2 ms
    return listed.filter(listed.str.ends_with(SUFFIX) & ~listed.str.starts_with("."))


def _regular(db: Path, names: list[str]) -> tuple[list[str], list[str]]:
    """(regular files, the rest: FIFOs, devices, folders, dangling links) among ``names``."""
    good, odd = [], []
    for n in names:
        try:
            ok = stat.S_ISREG(os.stat(db / n).st_mode)
        except OSError:
            ok = False
        (good if ok else odd).append(n)
    return good, odd


def record_files(db_dir: Path | str) -> list[Path]:
    """The published record files: regular files only (hidden temp files of writers in flight, and
    FIFOs or devices named *.parquet, are not listed; ``read_runs`` reports the latter)."""
    db = Path(db_dir)
    return sorted(db / n for n in _regular(db, _list_db(db).to_list())[0])


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


def _read_files(db: Path, names: list[str], report: OnDamaged) -> list[pl.DataFrame]:
    """Frames (schema columns + ``FILE_COL``) of the readable files among ``names``; each damaged
    file goes to ``report`` and is skipped, exactly as reading it alone with ``read_file`` would."""
    out: list[pl.DataFrame] = []
    prefix = len(str(db)) + 1
    cols = [*SCHEMA, FILE_COL]

    def alone(name: str) -> None:
        path = db / name
        try:
            frame = read_file(path)
        except Exception as e:  # any failure means this one file is unusable, not the DB
            report(path, f"{type(e).__name__}: {e}")
            return
        out.append(frame.with_columns(pl.lit(name).alias(FILE_COL)))

    def batch(chunk: list[str]) -> None:
        if len(chunk) <= 4:
            for name in chunk:
                alone(name)
            return
        try:
            frame = pl.scan_parquet([str(db / n) for n in chunk], schema=SCHEMA, missing_columns="insert",
                                    extra_columns="ignore", include_file_paths=FILE_COL).collect()
        except Exception:  # a damaged or differently typed file in the chunk: split until it is alone
            half = len(chunk) // 2
            batch(chunk[:half])
            batch(chunk[half:])
            return
        frame = frame.with_columns(pl.col(FILE_COL).str.slice(prefix)).select(cols)
        # Files with no rows, or rows without run_id/status (foreign or odd files), get read_file's verdict.
        bad = frame.filter(pl.col("run_id").is_null() | pl.col("status").is_null())[FILE_COL].unique()
        seen = set(frame[FILE_COL].unique().to_list()) - set(bad.to_list())
        if len(seen) < len(chunk):
            frame = frame.filter(pl.col(FILE_COL).is_in(pl.Series(list(seen), dtype=pl.String).implode()))
            for name in chunk:
                if name not in seen:
                    alone(name)
        if frame.height:
            out.append(frame)

    for i in range(0, len(names), _BATCH):
        batch(names[i: i + _BATCH])
    return out


def _index_tag() -> str:
    """Segments are tied to the schema: a schema change starts a fresh index."""
    spec = repr([(k, str(v)) for k, v in SCHEMA.items()] + [INDEX_FORMAT])
    return f"v{INDEX_FORMAT}-{hashlib.sha1(spec.encode()).hexdigest()[:12]}"


def _segments(db: Path) -> list[Path]:
    tag = _index_tag()
    try:
        with os.scandir(db / INDEX_DIR) as entries:
            return sorted(Path(e.path) for e in entries
                          if e.name.startswith(tag + "-") and e.name.endswith(SUFFIX))
    except OSError:
        return []


def _segment_ok(frame: pl.DataFrame) -> bool:
    return frame.schema == pl.Schema({**SCHEMA, FILE_COL: pl.String()})


def _load_index(db: Path) -> tuple[pl.DataFrame | None, list[Path]]:
    """The index rows (de-duplicated by file) and the segments they came from."""
    for _attempt in range(3):
        segs = _segments(db)
        if not segs:
            return None, []
        try:
            frame = pl.read_parquet([str(p) for p in segs])
            if _segment_ok(frame):
                break
        except Exception:
            pass
        # One by one: drop damaged segments (a cache: losing one costs only speed); list again if
        # a compaction removed one while we read.
        frames, kept, vanished = [], [], False
        for seg in segs:
            try:
                part = pl.read_parquet(seg)
                if not _segment_ok(part):
                    raise ValueError("not an index segment")
                frames.append(part)
                kept.append(seg)
            except Exception:
                if seg.exists():
                    seg.unlink(missing_ok=True)
                else:
                    vanished = True
        if not vanished:
            segs = kept
            frame = pl.concat(frames) if frames else None
            break
    else:
        return None, []
    if frame is None:
        return None, segs
    if len(segs) > 1:
        frame = frame.unique(subset=FILE_COL, keep="first", maintain_order=True)
    return frame, segs


def _write_segment(db: Path, frame: pl.DataFrame) -> Path | None:
    """Publish ``frame`` as a new segment; None where the index cannot be written (read-only DB)."""
    folder = db / INDEX_DIR
    target = folder / f"{_index_tag()}-{time.time_ns():020d}-{os.getpid()}-{os.urandom(4).hex()}{SUFFIX}"
    try:
        folder.mkdir(exist_ok=True)
        # A cache: no fsync (a torn segment is detected and dropped); lz4 reads ~3x faster than zstd.
        _write_frame_atomic(frame.sort(FILE_COL, maintain_order=True), target, durable=False, compression="lz4")
    except Exception:  # read-only DB, full disk, ...: reads go on without the cache
        return None
    return target


def read_runs(db_dir: Path | str, on_damaged: OnDamaged | None = None, index: bool | None = None) -> pl.DataFrame:
    """Every readable record in ``db_dir`` as one typed frame (empty frame if none), in file-name order.

    Each damaged file (truncated, garbage, wrong columns, not a regular file) is passed to
    ``on_damaged(path, message)`` -- by default one warning line on stderr -- and skipped; the rest
    still reads. ``index``: use and update ``<db>/_index`` (None: from ``INDEX_MIN_FILES`` files on;
    False: read every file, touching nothing). The frame is the same either way.
    """
    report = on_damaged or warn_damaged
    db = Path(db_dir)
    listed = _list_db(db)
    if not len(listed):
        return empty_frame()
    if not (index if index is not None else len(listed) >= INDEX_MIN_FILES):
        good, odd = _regular(db, listed.sort().to_list())
        _report_odd(db, odd, report)
        return _finish(_read_files(db, good, report))
    idx, segs = _load_index(db)
    stale = 0
    if idx is not None:
        new = listed.filter(~listed.is_in(idx[FILE_COL].implode()))
        if idx.height != len(listed) - len(new):  # some indexed files were deleted: drop their rows
            stale = idx.height
            idx = idx.filter(pl.col(FILE_COL).is_in(listed.implode()))
            stale -= idx.height
        new = new.sort().to_list()
    else:
        new = listed.sort().to_list()
    # Only the files no segment covers are read (and checked to be regular files: indexed ones were).
    good, odd = _regular(db, new)
    _report_odd(db, odd, report)
    fresh = _read_files(db, good, report) if good else []
    parts = ([idx] if idx is not None and idx.height else []) + fresh
    whole = pl.concat(parts) if len(parts) > 1 else parts[0] if parts else None
    wrote = []
    if fresh:
        seg = _write_segment(db, pl.concat(fresh))
        wrote = [seg] if seg else []
    if whole is not None and (len(segs) + len(wrote) > INDEX_MAX_SEGMENTS or stale > max(64, whole.height // 10)):
        _compact(db, whole, segs + wrote)
    return _finish([whole] if whole is not None else [])


def _report_odd(db: Path, odd: list[str], report: OnDamaged) -> None:
    for name in odd:
        report(db / name, "not a regular file")


def _compact(db: Path, whole: pl.DataFrame, old: list[Path]) -> None:
    """Replace the segments ``old`` by one holding ``whole``: publish the new one first, then delete
    the old ones, so every moment has a complete index (possibly with duplicate rows)."""
    if _write_segment(db, whole.sort(FILE_COL)) is None:
        return
    for seg in old:
        try:
            seg.unlink(missing_ok=True)
        except OSError:
            pass


def compact_index(db_dir: Path | str, on_damaged: OnDamaged | None = None) -> int:
    """Bring the index up to date and merge it into one segment; returns the rows indexed."""
    db = Path(db_dir)
    read_runs(db, on_damaged=on_damaged, index=True)
    idx, segs = _load_index(db)
    if idx is None:
        return 0
    if len(segs) > 1:
        _compact(db, idx, segs)
    return idx.height


def _finish(frames: list[pl.DataFrame]) -> pl.DataFrame:
    if not frames:
        return empty_frame()
    frame = pl.concat(frames) if len(frames) > 1 else frames[0]
    if not frame[FILE_COL].is_sorted():  # a compacted index is stored sorted: no sort on the common path
        frame = frame.sort(FILE_COL, maintain_order=True)
    return frame.drop(FILE_COL)


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
            for name in sorted(_regular(src, _list_db(src).to_list())[1]):
                report(src / name, "not a regular file")
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
        elif not src.is_file():
            raise UserError(f"merge source {src} is neither a results folder nor a parquet file")
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
