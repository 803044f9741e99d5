"""`trimpomdp fit-em`: outcome-labelled traces -> TRIM model fitted by EM (no step labels).

Options, the base model and the output paths are checked before EM starts; outputs are
written atomically and only if every number in them is finite.
"""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from tqdm import tqdm

from trimpomdp._io import dumps_json, iter_jsonl, write_files
from trimpomdp._validate import check_number, check_output_path
from trimpomdp.builders import em_trim_model
from trimpomdp.data import read_score_dump, read_traces
from trimpomdp.errors import DataWarning, InputError, located, one_line_warnings
from trimpomdp.model import load_model
from trimpomdp.observation.em import LatentClassObservationModel


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--traces", required=True, help="step-trace JSONL(.gz) with 'scores' and "
                   "'correct', or a StrictPRMBench score dump (detected from the first line)")
    p.add_argument("--out", required=True, help="output TRIM model file (JSON, for `solve`)")
    p.add_argument("--base", default=None, help="TRIM model giving hazard, reward and the other "
                   "accuracy (default: the bundled default model)")
    p.add_argument("--role", choices=["weak", "strong"], default="weak", help="which accuracy "
                   "the fitted next-step accuracy replaces (the traces' model)")
    p.add_argument("--prm", default="qwen_prm", help="PRM name inside a score dump")
    p.add_argument("--m-step", choices=["histogram", "kde"], default="histogram",
                   help="M-step density (default: %(default)s)")
    p.add_argument("--bandwidth", default="cv", help="KDE bandwidth (score units, >= 0) or 'cv' "
                   "(default: %(default)s)")
    p.add_argument("--alpha", type=float, default=0.1, help="additive smoothing per bin "
                   "(default: %(default)s)")
    p.add_argument("--learn-epsilon", action="store_true", help="learn P(correct answer | an "
                   "error occurred) instead of fixing it at 0")
    p.add_argument("--n-init", type=int, default=8, help="random restarts (default: "
                   "%(default)s)")
    p.add_argument("--max-iter", type=int, default=500, help="EM iterations per restart "
                   "(default: %(default)s)")
    p.add_argument("--tol", type=float, default=1e-7, help="convergence tolerance on the "
                   "log-likelihood (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--obs-out", default=None, help="also save the observation model (JSON)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def check_args(args: argparse.Namespace) -> float | str:
    """Reject bad options and unwritable outputs before EM; returns the bandwidth."""
    check_number(args.alpha, "--alpha", lo=0, field="alpha")
    check_number(args.n_init, "--n-init", lo=1, integer=True, field="n_init")
    check_number(args.max_iter, "--max-iter", lo=1, integer=True, field="max_iter")
    check_number(args.tol, "--tol", lo=0, lo_open=True, field="tol")
    check_number(args.seed, "--seed", lo=0, integer=True, field="seed")
    bw: float | str = args.bandwidth
    if bw != "cv":
        try:
            bw = float(bw)
        except ValueError:
            raise InputError(f"--bandwidth must be a number or 'cv'. Got {bw!r} instead.",
                             field="bandwidth") from None
        check_number(bw, "--bandwidth", lo=0, field="bandwidth")
    out = check_output_path(args.out)
    if args.obs_out:
        obs = check_output_path(args.obs_out, option="--obs-out")
        if obs.resolve() == out.resolve():
            raise InputError("--obs-out must differ from --out", path=obs, field="obs_out")
    if Path(args.traces).resolve() in {out.resolve()}:
        raise InputError("--out would overwrite the input traces", path=out, field="out")
    return bw


def run(args: argparse.Namespace) -> int:
    with one_line_warnings("trimpomdp fit-em"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    bw = check_args(args)
    base = load_model(args.base)  # before EM: a bad --base must not waste the fit
    _, first = next(iter_jsonl(args.traces))
    dump = "step_scores" in first
    with warnings.catch_warnings():  # EM uses no token counts
        warnings.filterwarnings("ignore", message=".*(have no 'tokens'|nor 'step_chars')",
                                category=DataWarning)
        traces = read_score_dump(args.traces, prm=args.prm) if dump else read_traces(args.traces)
    est = LatentClassObservationModel(
        alpha=args.alpha, m_step=args.m_step, bandwidth=bw, learn_epsilon=args.learn_epsilon,
        epsilon=0.05 if args.learn_epsilon else 0.0, n_init=args.n_init, max_iter=args.max_iter,
        tol=args.tol, random_state=args.seed)
    with tqdm(desc="EM", unit="it", disable=args.no_progress) as bar:
        def step(restart: int, it: int, loglik: float) -> None:
            bar.update(1)
            bar.set_postfix(restart=restart, loglik=f"{loglik:.1f}")

        with located(args.traces):
            est.fit(traces, callback=step)
    model = em_trim_model(est, base, role=args.role, source=str(args.traces))
    if args.obs_out:

        # both files or neither
        write_files({args.out: dumps_json(model.to_dict(), args.out),
                     args.obs_out: dumps_json(est.to_dict(), args.obs_out)})
    else:
        model.save(args.out)
    print(json.dumps({"out": args.out, "format": "score_dump" if dump else "traces",
                      "n_traces": est.n_traces_, "n_steps": est.n_steps_,
                      f"p_{args.role}": round(est.p_, 6), "epsilon": round(est.epsilon_, 6),
                      "loglik": round(est.lower_bound_, 3), "n_iter": est.n_iter_,
                      "converged": est.converged_,
                      "bandwidth": est.bandwidth_.tolist()}))
    return 0
