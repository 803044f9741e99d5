"""The small shared enums: the hidden correctness class and the routing action.

Their one home; :mod:`trimpomdp.data.schema` and everything above re-use them.
"""
from __future__ import annotations

from enum import IntEnum
from numbers import Integral

from trimpomdp.errors import InputError

STATE_NAMES = ("S0", "S1", "S2")


class Correctness(IntEnum):
    """Hidden correctness class of a partial solution (release order S0, S1, S2)."""

    S0 = 0  #: every step so far correct
    S1 = 1  #: an earlier step is wrong (unrecoverable)
    S2 = 2  #: only the latest step is wrong (recoverable by regenerating it)

    @classmethod
    def parse(cls, value: object) -> Correctness:
        """Accept 'S0'/'S1'/'S2' (any case) or 0/1/2; anything else raises InputError."""
        if isinstance(value, str) and value.strip().upper() in cls.__members__:
            return cls[value.strip().upper()]
        if isinstance(value, Integral) and not isinstance(value, bool) and 0 <= int(value) <= 2:
            return cls(int(value))
        raise InputError(f"state must be one of 'S0', 'S1', 'S2'. Got {value!r} instead.",
                         field="state")


class RouteAction(IntEnum):
    """Router decision for the current step."""

    CONTINUE = 0  #: keep the weak model's draft
    REGENERATE = 1  #: have the strong model rewrite this step

    @property
    def label(self) -> str:
        """'continue' or 'regenerate'."""
        return self.name.lower()


__all__ = ["STATE_NAMES", "Correctness", "RouteAction"]
