"""Task profiles for ``trimpomdp run`` and ``serve``: prompts, step separator, end rule, answer
extraction and grading, horizon, chat-template switches (see :mod:`trimpomdp.tasks.profile`)."""
from __future__ import annotations

from trimpomdp.tasks.profile import BUILTIN, TaskProfile, load_profile

__all__ = ["BUILTIN", "TaskProfile", "load_profile"]
