"""Append-only run log: one JSON line per finished problem, fsynced; safe to resume after a kill.

A run folder holds ``run.json`` (the run's settings, written once, atomically), ``runlog.jsonl``
(one record per finished problem, ``"status": "ok"`` or ``"failed"`` with a ``"reason"``) and
``summary.json`` (metrics, rewritten at the end of each run) and ``.lock`` (see
:func:`acquire_run_lock`: one process at a time may write a run folder).

Concurrency contract: a process that writes a run folder holds its lock for the whole time::

    with acquire_run_lock(out):            # RunLockedError (exit 2) if another process holds it
        check_run_config(out, config, keys)
        with RunLog(out / RUNLOG_NAME) as log:
            ...

The lock is re-entrant within a process (``RunLog`` and ``check_run_config`` take it too, so a
caller that forgets it is still protected) and is released by the kernel when the holder dies,
so a crashed run never leaves a stale lock behind.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import math
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from trimpomdp._io import atomic_write, read_json, write_json
from trimpomdp._validate import check_number
from trimpomdp.errors import InputError, RunLockedError

try:  # POSIX advisory locks; elsewhere an O_EXCL lock file with a pid
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

RUNLOG_NAME = "runlog.jsonl"
CONFIG_NAME = "run.json"
SUMMARY_NAME = "summary.json"
LOCK_NAME = ".lock"

_HELD: dict[str, tuple[int, int]] = {}  # realpath of folder -> (fd, depth) held by this process
_HELD_GUARD = threading.Lock()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _holder(lock_path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(lock_path.read_text(encoding="utf-8") or "{}")
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


class RunLock:
    """Exclusive, re-entrant (per process) lock on one run folder.

    ``wait`` seconds: how long to wait for another holder (0: fail at once). The lock file
    records the holder's pid, host and start time; a file left by a dead process is stale and
    is taken over (``stale_holder`` then tells whose it was).
    """

    def __init__(self, run_dir: str | os.PathLike[str], *, wait: float = 0.0) -> None:
        self.run_dir = Path(run_dir)
        self.wait = float(wait)
        self.lock_path = self.run_dir / LOCK_NAME
        self.stale_holder: dict[str, Any] | None = None
        self._key = ""
        self._held = False

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`~trimpomdp.errors.RunLockedError` (exit 2)."""
        if self._held:
            return self
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the run folder ({exc.strerror})", path=self.run_dir,
                             field="out") from None
        if not self.run_dir.is_dir():
            raise InputError("the run folder path is a file, not a folder", path=self.run_dir,
                             field="out")
        self._key = os.path.realpath(self.run_dir)
        with _HELD_GUARD:
            if self._key in _HELD:
                fd, depth = _HELD[self._key]
                _HELD[self._key] = (fd, depth + 1)
                self._held = True
                return self
            fd = self._lock_fd()
            _HELD[self._key] = (fd, 1)
        self._held = True
        return self

    def _lock_fd(self) -> int:
        deadline = time.monotonic() + max(0.0, self.wait)
        while True:
            fd = self._try_once()
            if fd is not None:
                return fd
            if time.monotonic() >= deadline:
                h = _holder(self.lock_path)
                who = (f"pid {h.get('pid')} on {h.get('host')}, since {h.get('started')}"
                       if h else "another process")
                raise RunLockedError(
                    f"this run folder is in use by another trimpomdp process ({who}); wait for "
                    "it to finish, or use another --out folder", path=self.run_dir, field="out")
            time.sleep(0.05)

    def _try_once(self) -> int | None:
        """An fd holding the lock, or None if another process holds it."""
        try:
            if fcntl is not None:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    os.close(fd)
                    if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        return None
                    raise
            else:  # pragma: no cover - no flock: pid file created exclusively
                try:
                    fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    h = _holder(self.lock_path)
                    pid = h.get("pid")
                    if isinstance(pid, int) and h.get("host") == socket.gethostname() \
                            and not _pid_alive(pid):
                        self.lock_path.unlink(missing_ok=True)
                        return self._try_once()
                    return None
        except OSError as exc:
            raise InputError(f"cannot lock the run folder ({exc.strerror})", path=self.run_dir,
                             field="out") from None
        prev = _holder(self.lock_path)
        if prev.get("pid") is not None:
            self.stale_holder = prev  # left by a process that died without releasing
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        os.fsync(fd)
        return fd

    def release(self) -> None:
        """Release (the outermost release of this process unlocks the folder)."""
        if not self._held:
            return
        self._held = False
        with _HELD_GUARD:
            fd, depth = _HELD[self._key]
            if depth > 1:
                _HELD[self._key] = (fd, depth - 1)
                return
            del _HELD[self._key]
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # an empty lock file = released cleanly
            if fcntl is None:  # pragma: no cover
                os.close(fd)
                self.lock_path.unlink(missing_ok=True)
                return
            os.close(fd)  # closing the last fd drops the flock

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._held

    def __enter__(self) -> RunLock:  # noqa: PYI034
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire_run_lock(run_dir: str | os.PathLike[str], *, wait: float = 0.0) -> RunLock:
    """Lock ``run_dir`` for this process (use as a context manager, or call ``release()``).

    Raises :class:`~trimpomdp.errors.RunLockedError` (an InputError: exit 2, one line naming the
    folder and the holder's pid) if another process holds it after ``wait`` seconds.
    """
    return RunLock(run_dir, wait=wait).acquire()


class RunLog:
    """The ``runlog.jsonl`` of one run folder.

    Opening it repairs a torn last line (a kill during a write: that problem simply runs again);
    a malformed line anywhere else raises InputError naming the line.
    """

    def __init__(self, path: str | os.PathLike[str], *, lock: bool = True) -> None:
        self.path = Path(path)
        self._lock = RunLock(self.path.parent).acquire() if lock else None
        try:
            if self.path.is_dir():
                raise InputError("the run log path is a folder, not a file", path=self.path)
            self.records: list[dict[str, Any]] = self._load()
            self._ids = {r["problem_id"] for r in self.records}
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the object
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise

    def _load(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        *complete, tail = data.split(b"\n")
        records = []
        for i, raw in enumerate(complete, start=1):
            if raw.strip():
                records.append(parse_record(raw, self.path, i))
        if tail.strip():
            try:  # a final line without its newline: keep it if whole, else drop the torn write
                json.loads(tail)
                whole = True
            except (ValueError, RecursionError):
                whole = False
            if whole:
                records.append(parse_record(tail, self.path, len(complete) + 1))
                with open(self.path, "ab") as fh:
                    fh.write(b"\n")
            else:
                with open(self.path, "r+b") as fh:
                    fh.truncate(len(data) - len(tail))
                    os.fsync(fh.fileno())
        return _dedupe(records, self.path)

    @property
    def finished_ids(self) -> set[str]:
        """Problem ids that already have a record (ok or failed)."""
        return set(self._ids)

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one record as a line, flush and fsync; a second record for an id is refused."""
        pid = record.get("problem_id")
        if pid in self._ids:
            raise InputError(f"problem {pid!r} already has a record in the run log", path=self.path)
        try:
            line = json.dumps(record, ensure_ascii=False, allow_nan=False, default=_jsonable)
        except ValueError:  # NaN/inf somewhere: keep the record, as valid JSON, and say where
            fixed, where = _finite_copy(json.loads(json.dumps(record, default=_jsonable)))
            record = {**fixed, "non_finite_fields": where}
            line = json.dumps(record, ensure_ascii=False, allow_nan=False)
        self._fh.write(line + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._ids.add(pid)
        self.records.append(dict(record))

    def drop_failed(self) -> int:
        """Rewrite the log without failed records (atomically), so that they run again."""
        keep = [r for r in self.records if r.get("status") != "failed"]
        n = len(self.records) - len(keep)
        if n:
            self._fh.close()
            with atomic_write(self.path) as fh:
                for r in keep:
                    fh.write(json.dumps(r, ensure_ascii=False, default=_jsonable) + "\n")
            self.records = keep
            self._ids = {r["problem_id"] for r in keep}
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the object
        return n

    def close(self) -> None:
        """Close the file and release the folder lock."""
        self._fh.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> RunLog:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _dedupe(records: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    seen: set[str] = set()
    for r in records:
        if r["problem_id"] in seen:
            raise InputError(f"problem {r['problem_id']!r} appears twice in the run log",
                             path=path, field="problem_id")
        seen.add(r["problem_id"])
    return records


_COUNTS = ("n_steps", "n_regenerated", "empty_drafts")
_AMOUNTS = ("weak_tokens", "strong_tokens", "discarded_weak_tokens")


def parse_record(raw: bytes | str, path: str | os.PathLike[str], line: int) -> dict[str, Any]:
    """Decode and check one run-log line: an object with ``problem_id``, a ``status`` of 'ok' or
    'failed' (missing: failed) and, where present, finite non-negative numeric fields."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"run log line is not valid JSON ({getattr(exc, 'msg', exc)})",
                         path=path, line=line) from None
    if not isinstance(obj, dict):
        raise InputError(f"each run log line must be a JSON object. Got {type(obj).__name__} "
                         "instead.", path=path, line=line)
    pid = obj.get("problem_id")
    if pid is None:
        raise InputError("missing required field", path=path, line=line, field="problem_id")
    if isinstance(pid, bool) or not isinstance(pid, str | int):
        raise InputError(f"problem_id must be a string. Got {pid!r} instead.", path=path,
                         line=line, field="problem_id")
    if obj.get("status", "failed") not in ("ok", "failed"):
        raise InputError(f"status must be 'ok' or 'failed'. Got {obj['status']!r} instead.",
                         path=path, line=line, field="status")
    for k in _COUNTS + _AMOUNTS:
        if obj.get(k) is not None:
            check_number(obj[k], k, path=path, line=line, lo=0, integer=k in _COUNTS)
    c = obj.get("correct")
    if c is not None and not isinstance(c, bool) and not (type(c) is int and c in (0, 1)):
        raise InputError(f"correct must be true, false or null. Got {c!r} instead.",
                         path=path, line=line, field="correct")
    timing = obj.get("timing")
    if timing is not None:
        if not isinstance(timing, dict):
            raise InputError(f"timing must be an object of seconds. Got "
                             f"{type(timing).__name__} instead.", path=path, line=line,
                             field="timing")
        for k, v in timing.items():
            check_number(v, f"timing.{k}", path=path, line=line, lo=0)
    return obj


def _finite_copy(obj: Any, prefix: str = "") -> tuple[Any, list[str]]:
    """``obj`` with every NaN/inf replaced by None, and the fields where that happened."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None, [prefix or "value"]
    if isinstance(obj, dict):
        out, where = {}, []
        for k, v in obj.items():
            out[k], w = _finite_copy(v, f"{prefix}.{k}" if prefix else str(k))
            where += w
        return out, where
    if isinstance(obj, list):
        items = [_finite_copy(v, f"{prefix}[{i}]") for i, v in enumerate(obj)]
        return [v for v, _ in items], [f for _, w in items for f in w]
    return obj, []


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "label"):
        return obj.label
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def read_runlog(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Records of a run log file or run folder (read-only; no repair, no lock needed)."""
    p = Path(path)
    if p.is_dir():
        p = p / RUNLOG_NAME
    if not p.exists():
        raise InputError("run log not found (expected a run folder or a runlog.jsonl)", path=p)
    if p.is_dir():
        raise InputError("the run log path is a folder, not a file", path=p)
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"run log is not UTF-8 text (binary data at byte {exc.start})",
                         path=p) from None
    except OSError as exc:
        raise InputError(f"cannot read the run log ({exc.strerror})", path=p) from None
    out = [parse_record(raw, p, ln) for ln, raw in enumerate(text.splitlines(), start=1)
           if raw.strip()]
    return _dedupe(out, p)


def check_run_config(run_dir: Path, config: Mapping[str, Any], keys: Iterable[str]) -> None:
    """Write ``run.json`` on a first run; on resume refuse settings that differ in ``keys``."""
    path = Path(run_dir) / CONFIG_NAME
    with RunLock(run_dir):
        if not path.exists():
            write_json(path, dict(config))
            return
        old = read_json(path)
    if not isinstance(old, dict):
        raise InputError(f"run settings must be a JSON object. Got {type(old).__name__} instead.",
                         path=path)
    for k in keys:
        if old.get(k) != config.get(k):
            raise InputError(f"this run folder was started with {k}={old.get(k)!r}; resuming with "
                             f"{k}={config.get(k)!r} would mix two runs. Use a new --out folder "
                             "or the same settings.", path=path, field=k)


def summarize(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Accuracy, token means, routing rate and time shares of a run log."""
    recs = list(records)
    ok = [r for r in recs if r.get("status") == "ok"]
    n = len(ok)

    def mean(key: str) -> float | None:
        vals = [float(r[key]) for r in ok if r.get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    graded = [r for r in ok if r.get("correct") is not None]
    steps = sum(int(r.get("n_steps", 0)) for r in ok)
    regen = sum(int(r.get("n_regenerated", 0)) for r in ok)
    timing: dict[str, float] = {}
    for r in ok:
        for k, v in (r.get("timing") or {}).items():
            timing[k] = timing.get(k, 0.0) + float(v)
    total = timing.get("total_s", 0.0)
    out: dict[str, Any] = {
        "problems": len(recs), "ok": n, "failed": len(recs) - n,
        "failure_reasons": sorted({str(r.get("reason")) for r in recs if r.get("status") != "ok"}),
        "accuracy": (sum(bool(r["correct"]) for r in graded) / len(graded)) if graded else None,
        "answered": sum(1 for r in ok if r.get("answer") is not None),
        "strong_tokens_mean": mean("strong_tokens"),
        "weak_tokens_mean": mean("weak_tokens"),
        "discarded_weak_tokens_mean": mean("discarded_weak_tokens"),
        "steps_mean": (steps / n) if n else None,
        "regenerate_rate": (regen / steps) if steps else None,
        "timing_s": timing,
    }
    if total > 0:
        out["time_share"] = {k[:-2]: v / total for k, v in timing.items()
                             if k.endswith("_s") and k != "total_s"}
    for k, v in list(out.items()):
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = None
    return out
