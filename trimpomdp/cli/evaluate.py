"""`trimpomdp evaluate`: policies in the simulator, or live run folders → metrics table + plot.

Every option and output path is checked before any simulation; the report (``STEM.md``,
``STEM.json``) and the plot are rendered in memory and written all-or-nothing, and only when
``--out`` / ``--plot`` are given (nothing lands in the current folder unasked).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from trimpomdp._io import write_files
from trimpomdp._validate import check_number, check_output_path
from trimpomdp.errors import InputError, one_line_warnings
from trimpomdp.evaluation.curves import evaluate_specs
from trimpomdp.evaluation.plots import plot_cost_accuracy, plot_format, render
from trimpomdp.evaluation.report import markdown_table, render_report, report_stem
from trimpomdp.evaluation.runs import evaluate_runs
from trimpomdp.model import load_model


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--policies", nargs="+", metavar="SPEC",
                     help="policy specs (as for simulate); points of one kind form one curve")
    src.add_argument("runs", nargs="*", default=[], metavar="RUN_DIR",
                     help="run folders of `trimpomdp run` (include weak and strong runs for PGR)")
    p.add_argument("--n", type=int, default=2000, help="simulated problems per policy "
                   "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="simulator seed (default: %(default)s)")
    p.add_argument("--model", help="TRIM model file for POMDP specs (default: bundled)")
    p.add_argument("--out", default=None, metavar="STEM", help="write STEM.md and STEM.json "
                   "(default: print the table only)")
    p.add_argument("--plot", help="cost–accuracy plot file (.png/.svg/.pdf/.eps/.ps/.jpg)")


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse bad options and unwritable outputs before any long work."""
    if args.policies:
        check_number(args.n, "--n", lo=1, integer=True, field="n")
        check_number(args.seed, "--seed", lo=0, integer=True, field="seed")
    targets = []
    if args.out is not None:
        stem = report_stem(args.out)
        if os.path.isdir(stem) or stem.endswith(("/", os.sep)):
            raise InputError("--out is a file stem (writes STEM.md and STEM.json), not a folder",
                             path=stem, field="out")
        for suf in (".md", ".json"):
            targets.append(check_output_path(stem + suf, option="--out"))
    if args.plot is not None:
        plot_format(args.plot)
        targets.append(check_output_path(args.plot, option="--plot"))
    if len({str(t.resolve()) for t in targets}) < len(targets):
        raise InputError("--plot must not be one of the report files of --out", path=args.plot,
                         field="plot")


def _plot_bytes(curves: Any, ref: Any, path: str, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = plot_cost_accuracy(curves, ref, title=title)
    try:
        return render(ax, plot_format(path))
    finally:
        plt.close(ax.figure)


def _write(args: argparse.Namespace, rows: list[dict[str, Any]], *, title: str,
           notes: list[str], plot: tuple[Any, Any, str] | None, **meta: Any) -> None:
    """Render the report and plot in memory, then write them all-or-nothing."""
    files: dict[str, str | bytes] = {}
    if args.out is not None:
        files.update(render_report(args.out, rows, title=title, notes=notes, **meta))
    if args.plot is not None and plot is not None:
        files[args.plot] = _plot_bytes(plot[0], plot[1], args.plot, plot[2])
    if files:
        write_files(files)


def run(args: argparse.Namespace) -> int:
    with one_line_warnings("trimpomdp evaluate"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    _check_outputs(args)
    if args.runs:
        return _runs(args)

    model = load_model(args.model)
    curves, ref, rows = evaluate_specs(args.policies, n=args.n, seed=args.seed, model=model)
    notes = [(f"simulator: calibrated, n={args.n}, seed={args.seed}; weak {ref.weak_accuracy:.3f}"
              f", strong {ref.strong_accuracy:.3f} ({ref.strong_tokens:.1f} tokens), oracle "
              f"{ref.oracle_accuracy:.3f}"), "CPT = cheapest measured point (— = not reached)"]
    _write(args, rows, title="Policy comparison (simulated)", notes=notes,
           plot=(curves, ref, "cost–accuracy (simulated)"), n=args.n, seed=args.seed,
           specs=list(args.policies))
    print(markdown_table(rows))
    return 0


def _runs(args: argparse.Namespace) -> int:
    curves, ref, rows, summaries = evaluate_runs(args.runs)
    notes = ["live runs; failed problems count as wrong", "CPT = cheapest measured point"]
    if ref is None:
        notes.append("no weak-only and strong-only runs given: PGR/CPT/ΔIBC need both")
        if args.plot:
            print("trimpomdp evaluate: warning: no plot written (--plot needs a weak-only and a "
                  "strong-only run)", file=sys.stderr)
    _write(args, rows, title="Policy comparison (live runs)", notes=notes,
           plot=None if ref is None else (curves, ref, "cost–accuracy (live runs)"),
           runs=summaries)
    keys = ("policy", "problems", "failed", "accuracy", "strong_tokens_mean",
            "weak_tokens_mean", "regenerate_rate")
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for s in summaries:
        print("| " + " | ".join(f"{s[k]:.3f}" if isinstance(s[k], float) else str(s[k])
                                for k in keys) + " |")
    if ref is not None:
        print(markdown_table(rows))
    print(json.dumps({"out": args.out, "runs": len(summaries)}))
    return 0
