"""`trimpomdp fit-model --traces FILE... --out MODEL.json`: every TRIM parameter from traces.

Observation model, weak and strong next-step accuracies (EM over routed traces), hazard (with
censoring), future tokens and horizon; prints the fitted values with standard errors and writes
a model file with provenance (inputs' sha256, counts, log-likelihood) that `solve`, `sweep`,
`simulate`, `run` and `serve --model` load. Options and the output path are checked first.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import warnings
from pathlib import Path

from tqdm import tqdm

from trimpomdp._io import iter_jsonl
from trimpomdp._validate import check_number, check_output_path
from trimpomdp.data import read_score_dump, read_traces
from trimpomdp.data.schema import StepTrace
from trimpomdp.errors import DataWarning, InputError, located, one_line_warnings
from trimpomdp.fitting.emission import EMISSIONS
from trimpomdp.fitting.model_fit import fit_trim_model
from trimpomdp.generation.runs_to_traces import run_folders_to_traces


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--traces", required=True, nargs="+", metavar="FILE", help="step-trace "
                   "JSONL(.gz) files (routed or not; `trimpomdp traces` writes them from run "
                   "folders), StrictPRMBench score dumps, or run folders")
    p.add_argument("--out", required=True, help="output TRIM model file (JSON)")
    p.add_argument("--p-strong", type=float, default=None, help="strong next-step accuracy to "
                   "use when no step was regenerated (it is not identifiable then)")
    p.add_argument("--max-steps", type=int, default=None, help="horizon (default: the longest "
                   "trace, or the step limit of censored ones)")
    p.add_argument("--emission", choices=list(EMISSIONS), default="auto", help="E-step "
                   "likelihood of the scores given the class: joint = P(min previous score, "
                   "score | class), the POMDP's own and fit-em's; score = P(score | class); "
                   "conditional = P(score | class, min previous score) (score and conditional "
                   "are proper likelihoods, joint counts the minimum again at every step). "
                   "auto (default): joint when no step was regenerated (= fit-em), score "
                   "otherwise (docs/own_model.md)")
    p.add_argument("--alpha", type=float, default=0.1, help="additive smoothing per bin")
    p.add_argument("--n-init", type=int, default=8, help="EM random restarts")
    p.add_argument("--max-iter", type=int, default=500, help="EM iterations per restart")
    p.add_argument("--tol", type=float, default=1e-7, help="EM tolerance (log-likelihood per "
                   "step)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples for standard "
                   "errors of every fitted part (0: observed information only)")
    p.add_argument("--name", default=None, help="model name (default: fitted:<first input>)")
    p.add_argument("--prm", default="qwen_prm", help="PRM name inside a score dump")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def check_args(args: argparse.Namespace) -> Path:
    """Reject bad options and an unwritable output before any reading or fitting."""
    if args.p_strong is not None:
        check_number(args.p_strong, "--p-strong", lo=0, hi=1, field="p_strong")
    if args.max_steps is not None:
        check_number(args.max_steps, "--max-steps", lo=2, integer=True, field="max_steps")
    check_number(args.alpha, "--alpha", lo=0, field="alpha")
    check_number(args.n_init, "--n-init", lo=1, integer=True, field="n_init")
    check_number(args.max_iter, "--max-iter", lo=1, integer=True, field="max_iter")
    check_number(args.tol, "--tol", lo=0, lo_open=True, field="tol")
    check_number(args.seed, "--seed", lo=0, integer=True, field="seed")
    check_number(args.bootstrap, "--bootstrap", lo=0, integer=True, field="bootstrap")
    out = check_output_path(args.out)
    for t in args.traces:
        tp = Path(t)
        if tp.exists() and out.exists() and tp.resolve() == out.resolve():
            raise InputError("--out would overwrite an input", path=out, field="out")
    return out


def read_inputs(paths: list[str], prm: str) -> list[StepTrace]:
    """Traces from every input: trace files, score dumps (detected) and run folders."""
    traces: list[StepTrace] = []
    folders = [p for p in paths if Path(p).is_dir()]
    if folders:
        traces += run_folders_to_traces(folders)[0]
    for p in paths:
        if Path(p).is_dir():
            continue
        _, first = next(iter_jsonl(p))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*nor 'step_chars'", category=DataWarning)
            traces += read_score_dump(p, prm=prm) if "step_scores" in first else read_traces(p)
    return traces


def run(args: argparse.Namespace) -> int:
    with one_line_warnings("trimpomdp fit-model"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    out = check_args(args)
    traces = read_inputs(list(args.traces), args.prm)
    src = args.traces[0] if len(args.traces) == 1 else f"{args.traces[0]} (+{len(args.traces) - 1})"
    with tqdm(desc="EM", unit="it", disable=args.no_progress) as bar:
        def step(restart: int, it: int, loglik: float) -> None:
            bar.update(1)
            bar.set_postfix(restart=restart, loglik=f"{loglik:.1f}")

        where = located(args.traces[0]) if len(args.traces) == 1 else contextlib.nullcontext()
        with where:
            rep = fit_trim_model(traces, sources=args.traces, p_strong=args.p_strong,
                                 max_steps=args.max_steps, emission=args.emission,
                                 alpha=args.alpha, n_init=args.n_init, max_iter=args.max_iter,
                                 tol=args.tol, random_state=args.seed, bootstrap=args.bootstrap,
                                 name=args.name or f"fitted:{Path(src.split(' ')[0]).name}",
                                 callback=step)
    rep.model.save(out)
    f = rep.summary["fitted"]
    print(json.dumps({"out": str(out), "name": rep.model.name, **rep.summary["counts"],
                      "p_weak": f["p_weak"], "p_strong": f["p_strong"], "hazard": f["hazard"],
                      "future_tokens": f["future_tokens"], "loglik": round(rep.summary["loglik"], 3),
                      "emission": f["observation_model"]["emission"],
                      "n_iter": rep.summary["n_iter"], "converged": rep.summary["converged"]}))
    return 0
