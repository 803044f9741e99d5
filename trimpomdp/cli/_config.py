"""``--config FILE.toml`` for ``serve`` and ``run``: every long option is a key.

Keys are the long option names with ``_`` or ``-`` (``max_steps = 20``, ``"max-steps" = 20``),
optionally under a ``[serve]`` / ``[run]`` table. Values are TOML types (strings, numbers, booleans;
a list of strings for ``allowed_origins``; a table or JSON text for the JSON options such as
``engine_args``). An option given on the command line with a value
other than its default wins over the file. Unknown keys and wrong types are errors naming the
file and the key.
"""
from __future__ import annotations

import argparse
import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from trimpomdp.errors import InputError


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise InputError("config file not found", path=path, field="config") from None
    except IsADirectoryError:
        raise InputError("config file is a directory", path=path, field="config") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML ({exc})", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the config file ({exc})", path=path,
                         field="config") from None


def json_object(text: str | None, field: str) -> dict[str, Any] | None:
    """The JSON object of an option with ``metavar="JSON"`` (None when unset); else InputError."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InputError(f"must be a JSON object (not valid JSON: {exc}). Got {text!r} instead.",
                         field=field) from None
    if not isinstance(value, dict):
        raise InputError(f"must be a JSON object. Got {text!r} instead.", field=field)
    return value


def _convert(action: argparse.Action, value: Any, path: Path, key: str) -> Any:
    def fail(kind: str) -> InputError:
        return InputError(f"must be {kind}. Got {value!r} instead.", path=path, field=key)

    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                           argparse.BooleanOptionalAction)):
        if not isinstance(value, bool):
            raise fail("true or false")
        return value if not isinstance(action, argparse._StoreFalseAction) else not value
    typ = action.type
    if action.metavar == "JSON" and isinstance(value, dict):  # a table for a JSON option
        return json.dumps(value)
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
    elif typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("a number")
        value = float(value)
    elif typ is None or typ is str:
        if not isinstance(value, str):
            raise fail("a string")
    else:  # a custom parser (e.g. a comma list): accept a list of strings or the string form
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = ",".join(value)
        if not isinstance(value, str):
            raise fail("a string or a list of strings")
        try:
            value = cast(Any, typ)(value)
        except (ValueError, TypeError) as exc:
            raise fail(f"valid ({exc})") from None
    if action.choices is not None and value not in action.choices:
        raise InputError(f"must be one of {', '.join(map(str, action.choices))}. Got {value!r} "
                         "instead.", path=path, field=key)
    return value


def apply_config_file(args: argparse.Namespace, add_arguments: Callable[[Any], None],
                      command: str) -> None:
    """Fill ``args`` from ``args.config`` (in place) where the command line kept the default."""
    if not getattr(args, "config", None):
        return
    path = Path(args.config)
    doc = _read_toml(path)
    if isinstance(doc.get(command), dict):
        doc = {**{k: v for k, v in doc.items() if not isinstance(v, dict)}, **doc[command]}
    ref = argparse.ArgumentParser(add_help=False)
    add_arguments(ref)
    actions = {a.dest: a for a in ref._actions if a.option_strings and a.dest != "help"}
    for raw_key, value in doc.items():
        key = raw_key.replace("-", "_")
        action = actions.get(key)
        if isinstance(value, dict) and (action is None or action.metavar != "JSON"):
            continue  # another command's table
        if action is None or key == "config":
            raise InputError(f"unknown key for `trimpomdp {command}`; the keys are the long "
                             f"options: {', '.join(sorted(k for k in actions if k != 'config'))}.",
                             path=path, field=raw_key)
        if getattr(args, key, None) == action.default:
            setattr(args, key, _convert(action, value, path, raw_key))


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """``--help`` with each option's default, unless it is unset or the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if default in (None, False, (), argparse.SUPPRESS) or "default" in text or \
                not action.option_strings:
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"
