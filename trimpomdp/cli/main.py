"""``trimpomdp`` entry point: a table of subcommands, each imported only when it runs.

Each command module defines ``add_arguments(parser)`` and ``run(args) -> int``. A
:class:`~trimpomdp.errors.TrimpomdpError` becomes one line on stderr and exit code 2.

>>> main(["--version"])  # doctest: +ELLIPSIS
trimpomdp ...
0
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from trimpomdp._version import __version__
from trimpomdp.errors import TrimpomdpError, one_line_warnings

#: command name -> (module, one-line help). Modules load lazily: `solve` never imports torch.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("trimpomdp.cli.demo", "solve and simulate the bundled default model (quick tour)"),
    "fit": ("trimpomdp.cli.fit", "fit an observation model from labelled observations or traces"),
    "fit-em": ("trimpomdp.cli.fit_em", "fit a TRIM model from outcome-labelled traces by EM"),
    "traces": ("trimpomdp.cli.traces", "convert run folders into routed step traces (JSONL)"),
    "fit-model": ("trimpomdp.cli.fit_model", "fit every TRIM parameter from (routed) traces"),
    "assess": ("trimpomdp.cli.assess", "step- and solution-level assessment of a model's belief"),
    "solve": ("trimpomdp.cli.solve", "solve the TRIM POMDP for one λ (exact, whole policy)"),
    "act": ("trimpomdp.cli.act", "query a policy: action and Q-values at (step, tokens, belief)"),
    "sweep": ("trimpomdp.cli.sweep", "solve many λ (or a strong-token budget) into a policy set"),
    "export-pomdp": ("trimpomdp.cli.export_pomdp", "export a TRIM instance as a Cassandra .pomdp"),
    "explain": ("trimpomdp.cli.explain", "draw continue/regenerate regions on the belief simplex"),
    "simulate": ("trimpomdp.cli.simulate", "simulate a routing policy on the calibrated simulator"),
    "evaluate": ("trimpomdp.cli.evaluate", "metrics table and curves from run logs or policies"),
    "train-agg": ("trimpomdp.cli.train_agg", "train a TRIM-Agg PPO policy in the simulator"),
    "solve-pomdp": ("trimpomdp.cli.solve_pomdp", "solve any Cassandra .pomdp file"),
    "evaluate-pomdp": ("trimpomdp.cli.evaluate_pomdp", "simulate a policy on a .pomdp file"),
    "run": ("trimpomdp.cli.run", "live step-routed generation against model servers"),
    "serve": ("trimpomdp.cli.serve", "OpenAI-compatible server doing step-routed generation"),
}


#: optional dependency -> the extra that installs it
EXTRAS = {"torch": "train", "httpx": "live", "aiohttp": "live", "math_verify": "live",
          "transformers": "hf", "accelerate": "hf", "safetensors": "hf", "pomdp_py": "dev",
          "vllm": "hf"}


def _load(name: str) -> ModuleType:
    return importlib.import_module(COMMANDS[name][0])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="trimpomdp", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"trimpomdp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    module = None
    for name, (_, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        if name == chosen:
            try:
                module = _load(name)
            except ModuleNotFoundError as exc:
                if exc.name and exc.name.startswith("trimpomdp.cli"):
                    print(f"trimpomdp {name}: error: this command is not available in this "
                          "version", file=sys.stderr)
                    return 2
                root = (exc.name or "").split(".")[0]
                extra = EXTRAS.get(root, "live")
                print(f"trimpomdp {name}: error: missing dependency '{exc.name}' (install the "
                      f"extra: pip install 'trimpomdp[{extra}]')", file=sys.stderr)
                return 2
            module.add_arguments(p)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if module is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        with one_line_warnings(f"trimpomdp {args.command}"):
            return int(module.run(args) or 0)
    except TrimpomdpError as exc:
        print(f"trimpomdp {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an optional dependency imported on use
        extra = EXTRAS.get((exc.name or "").split(".")[0], "live")
        print(f"trimpomdp {args.command}: error: missing dependency '{exc.name}' (install the "
              f"extra: pip install 'trimpomdp[{extra}]')", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"trimpomdp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
