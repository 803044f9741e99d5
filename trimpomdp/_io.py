"""Atomic file writing and versioned JSON envelopes.

Outputs are written to a temporary file in the target folder and renamed, so a crash never
leaves a half-written file behind.
"""
from __future__ import annotations

import contextlib
import errno
import gzip
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from trimpomdp._validate import check_finite_output
from trimpomdp._version import __version__
from trimpomdp.errors import InputError

SCHEMA_VERSION = 1


def _tmp_prefix(name: str) -> str:
    # keep the temporary name within NAME_MAX even for long target names
    return f".{name[:64]}."


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _write_error(path: Path, exc: OSError) -> InputError:
    if getattr(exc, "errno", None) == errno.ENAMETOOLONG:
        short = str(path)
        short = short if len(short) <= 120 else short[:60] + "…" + short[-60:]
        return InputError("cannot write the file: its name is too long for the file system",
                          path=short)
    if isinstance(exc, IsADirectoryError) or _is_dir(path):
        return InputError("cannot write the file: the path is a directory", path=path)
    if isinstance(exc, (NotADirectoryError, FileExistsError)):
        return InputError("cannot write the file: a parent of the path is a regular file, not a "
                          "folder", path=path)
    return InputError(f"cannot write the file ({exc.strerror or exc})", path=path)


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; rename it over ``path`` only on success.

    File-system failures (a directory at ``path``, a parent that is a file, a full disk, a
    too-long name) raise InputError naming ``path``; no partial file is left behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if _is_dir(path):
            raise IsADirectoryError(21, "Is a directory", str(path))
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path.name), suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from None
        raise


def dumps_json(obj: Any, path: str | os.PathLike[str] | None = None) -> str:
    """``obj`` as indented JSON text; NaN or infinity anywhere raises InputError naming the field."""
    try:
        return json.dumps(obj, indent=1, allow_nan=False) + "\n"
    except ValueError:
        check_finite_output(obj, path)
        raise


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically; non-finite numbers are refused."""
    text = dumps_json(obj, path)
    with atomic_write(path) as fh:
        fh.write(text)


def _read_failure(path: Path, exc: BaseException) -> InputError:
    """InputError for a file that cannot be opened or decoded."""
    if isinstance(exc, FileNotFoundError):
        return InputError("file not found", path=path)
    if isinstance(exc, IsADirectoryError) or _is_dir(path):
        return InputError("is a directory; expected a file", path=path)
    if isinstance(exc, PermissionError):
        return InputError("cannot read file (permission denied)", path=path)
    if isinstance(exc, UnicodeDecodeError):
        hint = ""
        try:
            with open(path, "rb") as fh:
                if fh.read(2) == b"\x1f\x8b":
                    hint = "; it is gzip-compressed: name it *.gz"
        except OSError:
            pass
        return InputError(f"not a UTF-8 text file (binary data at byte {exc.start}){hint}",
                          path=path)
    if isinstance(exc, (EOFError, gzip.BadGzipFile)):
        return InputError(f"cannot read compressed file ({exc}); truncated or not gzip?",
                          path=path)
    return InputError(f"cannot read file ({getattr(exc, 'strerror', None) or exc})", path=path)


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON (or .json.gz) file; a missing or malformed file raises InputError."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise _read_failure(path, exc) from None
    if not text.strip():
        raise InputError("file is empty; expected a JSON document", path=path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not valid JSON ({exc.msg}); the file may be truncated", path=path, line=exc.lineno
        ) from None
    except RecursionError:
        raise InputError("JSON is nested too deeply", path=path) from None


def envelope(kind: str, payload: dict[str, Any], **meta: Any) -> dict[str, Any]:
    """Wrap ``payload`` in a versioned envelope ``{"kind", "schema_version", ...}``."""

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
    """Open a text file, transparently decompressing ``.gz``; unreadable paths raise InputError."""
    path = Path(path)
    try:
        if _is_dir(path):
            raise IsADirectoryError(21, "Is a directory", str(path))
        if path.suffix == ".gz":
            return gzip.open(path, "rt", encoding="utf-8")
        return open(path, encoding="utf-8")
    except OSError as exc:
        raise _read_failure(path, exc) from None


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSONL(.gz) file.

    Raises InputError naming the line for non-JSON lines, non-object lines, binary data and
    empty files.
    """
    n = 0
    lineno = 0
    p = Path(path)
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
                except RecursionError:
                    raise InputError("line is JSON nested too deeply", path=path,
                                     line=lineno) from None
                if not isinstance(obj, dict):
                    raise InputError(f"each line must be a JSON object. Got "
                                     f"{type(obj).__name__} instead.", path=path, line=lineno)
                n += 1
                yield lineno, obj
        except (EOFError, gzip.BadGzipFile, OSError, UnicodeDecodeError) as exc:
            err = _read_failure(p, exc)
            raise InputError(err.reason, path=path, line=lineno + 1) from None
    if n == 0:
        raise InputError("file is empty; expected at least one JSON line", path=path)


def write_files(files: Mapping[str, str | bytes] | Mapping[os.PathLike[str], str | bytes]
                ) -> None:
    """Write several files all-or-nothing: every one goes to a temporary file first and they are
    renamed only once all were written; on any failure none of them is left behind."""
    staged: list[tuple[str, Path]] = []
    done: list[Path] = []
    try:
        for target, content in files.items():
            path = Path(target)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if _is_dir(path):
                    raise IsADirectoryError(21, "Is a directory", str(path))
                fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path.name), suffix=".tmp",
                                           dir=path.parent)
            except OSError as exc:
                raise _write_error(path, exc) from None
            staged.append((tmp, path))
            data = content.encode("utf-8") if isinstance(content, str) else content
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o666 & ~umask)
            except OSError as exc:
                raise _write_error(path, exc) from None
        for tmp, path in staged:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise _write_error(path, exc) from None
            done.append(path)
    except BaseException:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        for path in done:  # a rename failed after others succeeded: take those back too
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        raise
