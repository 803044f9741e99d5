"""Exception types raised by trimpomdp.

Every error a user can cause is a :class:`TrimpomdpError`; the CLI turns these into one line and
exit code 2.
"""
from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike
from typing import TextIO


class TrimpomdpError(Exception):
    """Base class of every error trimpomdp raises on purpose."""


class InputError(TrimpomdpError, ValueError):
    """Bad user input: a file, a field or an argument that is not what was expected.

    Carries the location (``path:line: field``) so the message points at the exact place.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | PathLike[str] | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.reason = message
        loc = ""
        if self.path is not None:
            loc = self.path + (f":{line}" if line is not None else "") + ": "
        elif line is not None:
            loc = f"line {line}: "
        if field is not None:
            loc += f"field '{field}': "
        super().__init__(loc + message)


class NotFittedError(TrimpomdpError, AttributeError):
    """An estimator was used before ``fit``."""


class SolverError(TrimpomdpError, RuntimeError):
    """A solver or belief update could not produce a valid result (e.g. zero evidence)."""


class BackendError(TrimpomdpError, RuntimeError):
    """A model server or PRM backend failed or is unreachable."""


class RunLockedError(InputError):
    """A run folder is in use by another process (its lock is held)."""


class DataWarning(UserWarning):
    """Input data was accepted but may not mean what the user expects (e.g. missing tokens)."""


@contextmanager
def one_line_warnings(prog: str) -> Iterator[None]:
    """Within the block, print each warning as one line ``PROG: warning: message`` on stderr."""
    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        text = " ".join(str(message).split())
        print(f"{prog}: warning: {text}", file=file or sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


@contextmanager
def located(path: str | PathLike[str]) -> Iterator[None]:
    """Within the block, an InputError that names no file is re-raised naming ``path``
    (dataset-level errors such as "a class has no observations" then say which file)."""
    try:
        yield
    except InputError as exc:
        if exc.path is not None:
            raise
        raise type(exc)(exc.reason, path=path, line=exc.line, field=exc.field) from None
