"""`trimpomdp traces RUN_DIR... --out traces.jsonl`: run folders → routed step traces.

Each finished problem of each run folder becomes one trace (schema: :mod:`trimpomdp.data.schema`);
folders of different model pairs, PRMs or tasks are refused unless --allow-mixed. The output is
checked before reading and written atomically.
"""
from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

from trimpomdp._io import atomic_write
from trimpomdp._validate import check_output_path
from trimpomdp.data.traces import trace_to_dict, write_traces
from trimpomdp.errors import InputError, one_line_warnings
from trimpomdp.generation.runs_to_traces import STRONG_SCORES, run_folders_to_traces


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders written by "
                   "`trimpomdp run` (or their runlog.jsonl)")
    p.add_argument("--out", required=True, help="output step-trace JSONL (.jsonl or .jsonl.gz)")
    p.add_argument("--strong-scores", choices=STRONG_SCORES, default="auto", help="PRM scores "
                   "of the strong rewrites: as the run's router saw them (auto: only with "
                   "score_strong_steps), always (from the next step's rescoring) or never")
    p.add_argument("--allow-mixed", action="store_true", help="accept folders whose model "
                   "URLs, PRM or task differ")


def run(args: argparse.Namespace) -> int:
    with one_line_warnings("trimpomdp traces"):
        out = check_output_path(args.out)
        for r in args.runs:
            rp = Path(r)
            if rp.exists() and out.exists() and rp.resolve() == out.resolve():
                raise InputError("--out would overwrite an input", path=out, field="out")
        traces, report = run_folders_to_traces(args.runs, strong_scores=args.strong_scores,
                                               allow_mixed=args.allow_mixed)
        if str(out).endswith(".gz"):
            with atomic_write(out, "wb") as fh:
                fh.write(gzip.compress("".join(json.dumps(trace_to_dict(t)) + "\n"
                                               for t in traces).encode()))
        else:
            write_traces(out, traces)
        print(json.dumps({"out": str(out), **report}))
    return 0
