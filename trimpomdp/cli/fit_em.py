"""`trimpomdp fit-em`: outcome-labelled traces -> TRIM model fitted by EM (no step labels)."""
from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--traces", required=True, help="step-trace JSONL(.gz) with 'scores' and "
                   "'correct', or a StrictPRMBench score dump (detected from the first line)")
    p.add_argument("--out", required=True, help="output TRIM model file (JSON, for `solve`)")
    p.add_argument("--base", default=None, help="TRIM model giving hazard, reward and the other "
                   "accuracy (default: the bundled default model)")
    p.add_argument("--role", choices=["weak", "strong"], default="weak", help="which accuracy "
                   "the fitted next-step accuracy replaces (the traces' model)")
    p.add_argument("--prm", default="qwen_prm", help="PRM name inside a score dump")
    p.add_argument("--m-step", choices=["histogram", "kde"], default="histogram")
    p.add_argument("--bandwidth", default="cv", help="KDE bandwidth (score units) or 'cv'")
    p.add_argument("--alpha", type=float, default=0.1, help="additive smoothing per bin")
    p.add_argument("--learn-epsilon", action="store_true", help="learn P(correct answer | an "
                   "error occurred) instead of fixing it at 0")
    p.add_argument("--n-init", type=int, default=8, help="random restarts")
    p.add_argument("--max-iter", type=int, default=500)
    p.add_argument("--tol", type=float, default=1e-7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--obs-out", default=None, help="also save the observation model (JSON)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from trimpomdp._io import iter_jsonl
    from trimpomdp.data import read_score_dump, read_traces
    from trimpomdp.errors import InputError
    from trimpomdp.model import load_model
    from trimpomdp.observation.em import LatentClassObservationModel

    _, first = next(iter_jsonl(args.traces))
    dump = "step_scores" in first
    traces = read_score_dump(args.traces, prm=args.prm) if dump else read_traces(args.traces)
    bw = args.bandwidth
    if bw != "cv":
        try:
            bw = float(bw)
        except ValueError:
            raise InputError(f"--bandwidth must be a number or 'cv'. Got {bw!r} instead.",
                             field="bandwidth") from None
    est = LatentClassObservationModel(
        alpha=args.alpha, m_step=args.m_step, bandwidth=bw, learn_epsilon=args.learn_epsilon,
        epsilon=0.05 if args.learn_epsilon else 0.0, n_init=args.n_init, max_iter=args.max_iter,
        tol=args.tol, random_state=args.seed)
    with tqdm(desc="EM", unit="it", disable=args.no_progress) as bar:
        def step(restart: int, it: int, loglik: float) -> None:
            bar.update(1)
            bar.set_postfix(restart=restart, loglik=f"{loglik:.1f}")

        est.fit(traces, callback=step)
    base = load_model(args.base)
    est.to_trim_model(base, role=args.role, source=str(args.traces)).save(args.out)
    if args.obs_out:
        est.save(args.obs_out)
    print(json.dumps({"out": args.out, "format": "score_dump" if dump else "traces",
                      "n_traces": est.n_traces_, "n_steps": est.n_steps_,
                      f"p_{args.role}": round(est.p_, 6), "epsilon": round(est.epsilon_, 6),
                      "loglik": round(est.lower_bound_, 3), "n_iter": est.n_iter_,
                      "converged": est.converged_,
                      "bandwidth": est.bandwidth_.tolist()}))
    return 0
