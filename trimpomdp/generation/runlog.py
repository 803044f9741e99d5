"""Append-only run log: one JSON line per finished problem, fsynced; safe to resume after a kill.

A run folder holds ``run.json`` (the run's settings, written once, atomically), ``runlog.jsonl``
(one record per finished problem, ``"status": "ok"`` or ``"failed"`` with a ``"reason"``) and
``summary.json`` (metrics, rewritten at the end of each run).
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from trimpomdp._io import atomic_write, read_json, write_json
from trimpomdp.errors import InputError

RUNLOG_NAME = "runlog.jsonl"
CONFIG_NAME = "run.json"
SUMMARY_NAME = "summary.json"


class RunLog:
    """The ``runlog.jsonl`` of one run folder.

    Opening it repairs a torn last line (a kill during a write: that problem simply runs again);
    a malformed line anywhere else raises InputError naming the line.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: list[dict[str, Any]] = self._load()
        self._ids = {r["problem_id"] for r in self.records}
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the object

    def _load(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        *complete, tail = data.split(b"\n")
        records = []
        for i, raw in enumerate(complete, start=1):
            if raw.strip():
                records.append(self._parse(raw, i))
        if tail.strip():
            try:  # a final line without its newline: keep it if whole, else drop the torn write
                records.append(self._parse(tail, len(complete) + 1))
                with open(self.path, "ab") as fh:
                    fh.write(b"\n")
            except InputError:
                with open(self.path, "r+b") as fh:
                    fh.truncate(len(data) - len(tail))
                    os.fsync(fh.fileno())
        return _dedupe(records, self.path)

    def _parse(self, raw: bytes, line: int) -> dict[str, Any]:
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise InputError(f"run log line is not valid JSON ({exc})", path=self.path,
                             line=line) from None
        if not isinstance(obj, dict) or "problem_id" not in obj:
            raise InputError("each run log line must be an object with 'problem_id'",
                             path=self.path, line=line)
        return obj

    @property
    def finished_ids(self) -> set[str]:
        """Problem ids that already have a record (ok or failed)."""
        return set(self._ids)

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one record as a line, flush and fsync; a second record for an id is refused."""
        pid = record.get("problem_id")
        if pid in self._ids:
            raise InputError(f"problem {pid!r} already has a record in the run log", path=self.path)
        line = json.dumps(record, ensure_ascii=False, allow_nan=False, default=_jsonable)
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
        self._fh.close()

    def __enter__(self) -> RunLog:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _dedupe(records: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    seen: set[str] = set()
    for i, r in enumerate(records):
        if r["problem_id"] in seen:
            raise InputError(f"problem {r['problem_id']!r} appears twice in the run log",
                             path=path, field="problem_id")
        seen.add(r["problem_id"])
    return records


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "label"):
        return obj.label
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def read_runlog(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Records of a run log file or run folder (read-only; no repair)."""
    p = Path(path)
    if p.is_dir():
        p = p / RUNLOG_NAME
    if not p.exists():
        raise InputError("run log not found (expected a run folder or a runlog.jsonl)", path=p)
    out = []
    for ln, raw in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if raw.strip():
            try:
                out.append(json.loads(raw))
            except ValueError:
                raise InputError("run log line is not valid JSON", path=p, line=ln) from None
    return _dedupe(out, p)


def check_run_config(run_dir: Path, config: Mapping[str, Any], keys: Iterable[str]) -> None:
    """Write ``run.json`` on a first run; on resume refuse settings that differ in ``keys``."""
    path = run_dir / CONFIG_NAME
    if not path.exists():
        write_json(path, dict(config))
        return
    old = read_json(path)
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
