"""Atomic file writing and versioned JSON envelopes.

Outputs are written to a temporary file in the target folder and renamed, so a crash never
leaves a half-written file behind.
"""
from __future__ import annotations

import gzip
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from trimpomdp.errors import InputError

SCHEMA_VERSION = 1


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; rename it over ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=1)
        fh.write("\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON (or .json.gz) file; a missing or malformed file raises InputError."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read file ({exc})", path=path) from None
    if not text.strip():
        raise InputError("file is empty; expected a JSON document", path=path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not valid JSON ({exc.msg}); the file may be truncated", path=path, line=exc.lineno
        ) from None


def envelope(kind: str, payload: dict[str, Any], **meta: Any) -> dict[str, Any]:
    """Wrap ``payload`` in a versioned envelope ``{"kind", "schema_version", ...}``."""
    from trimpomdp import __version__

    return {"kind": kind, "schema_version": SCHEMA_VERSION, "trimpomdp_version": __version__,
            **meta, **payload}


def check_envelope(doc: Any, kind: str, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check that ``doc`` is an envelope of ``kind`` with a schema version we can read."""
    if not isinstance(doc, dict):
        raise InputError(f"expected a JSON object of kind '{kind}'. Got {type(doc).__name__} "
                         "instead.", path=path)
    if doc.get("kind") != kind:
        raise InputError(f"expected a file of kind '{kind}'. Got {doc.get('kind')!r} instead.",
                         path=path, field="kind")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise InputError(
            f"schema_version must be {SCHEMA_VERSION}. Got {doc.get('schema_version')!r} instead "
            "(file written by another trimpomdp version?).", path=path, field="schema_version")
    return doc


def open_text(path: str | os.PathLike[str]) -> IO[str]:
    """Open a text file, transparently decompressing ``.gz``; missing files raise InputError."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rt", encoding="utf-8")
        return open(path, encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSONL(.gz) file.

    Raises InputError naming the line for non-JSON lines, non-object lines and empty files.
    """
    n = 0
    with open_text(path) as fh:
        try:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"line is not valid JSON ({exc.msg})", path=path,
                                     line=lineno) from None
                if not isinstance(obj, dict):
                    raise InputError(f"each line must be a JSON object. Got "
                                     f"{type(obj).__name__} instead.", path=path, line=lineno)
                n += 1
                yield lineno, obj
        except (EOFError, gzip.BadGzipFile, OSError) as exc:
            raise InputError(f"cannot read compressed file ({exc}); truncated?", path=path) from None
    if n == 0:
        raise InputError("file is empty; expected at least one JSON line", path=path)
