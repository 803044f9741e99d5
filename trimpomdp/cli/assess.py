"""`trimpomdp assess MODEL TRACES...`: how well a TRIM model's belief predicts step and answer
correctness on step traces (see :mod:`trimpomdp.evaluation.assess`).

Prints a table (or ``--json``); ``--out DIR`` also writes ``assessment.json`` and reliability
diagrams. ``--train-problems K`` splits the problems (``--split-seed``) and adds held-out
baselines fitted on the K training problems (min score, last score, logistic regression).
``--write-model FILE`` fits the calibrated-score model (quantile score transform + current-score
EM, :mod:`trimpomdp.evaluation.score_model`) on the training problems (all traces without
``--train-problems``) and writes it as a TRIM model file that carries its score transform, for
``solve``, ``simulate``, ``run`` and ``serve``; with a split it joins the held-out table.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from trimpomdp._io import atomic_write, dumps_json
from trimpomdp._validate import check_number, check_output_path
from trimpomdp.errors import InputError, one_line_warnings
from trimpomdp.evaluation.assess import (
    assess,
    heldout_comparison,
    load_step_traces,
    plot_reliability,
    split_problems,
)
from trimpomdp.evaluation.score_model import CalibratedScoreModel
from trimpomdp.model import TrimModel, load_model
from trimpomdp.observation.grid import grid_size

DENSITIES = ("continuous", "binned")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="TRIM model file (JSON), or 'default' for the "
                   "bundled model")
    p.add_argument("traces", metavar="TRACES", nargs="+", help="step-trace JSONL(.gz) files or "
                   "StrictPRMBench score dumps (detected from the first line)")
    p.add_argument("--lambda", dest="lam", type=float, default=0.25, help="λ of the policy whose "
                   "regenerate decisions are scored (default: %(default)s)")
    p.add_argument("--density", choices=DENSITIES, default="continuous", help="observation "
                   "density of the Bayes filter (default: %(default)s)")
    p.add_argument("--prm", default="qwen_prm", help="PRM name inside a score dump (default: "
                   "%(default)s)")
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples of problems "
                   "(default: %(default)s)")
    p.add_argument("--bins", type=int, default=10, help="calibration bins (default: "
                   "%(default)s)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: %(default)s)")
    p.add_argument("--train-problems", type=int, default=None, help="split the problems: fit the "
                   "baselines on this many, assess everything on the rest")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the problem split "
                   "(default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--out", default=None, help="folder for assessment.json and reliability PNGs")
    p.add_argument("--write-model", metavar="FILE", default=None, help="fit the calibrated-score "
                   "TRIM model (score transform + EM) on the training traces and write it here; "
                   "MODEL supplies p_strong, hazard and the horizon")
    p.add_argument("--grid", type=float, default=0.025, help="bin size of the written model's "
                   "transformed-score grid (default: %(default)s)")
    p.add_argument("--knots", type=int, default=200, help="quantiles of the written model's score "
                   "transform (default: %(default)s)")
    p.add_argument("--smoothing", type=float, default=0.1, help="additive smoothing per bin of "
                   "the written model's densities (default: %(default)s)")
    p.add_argument("--learn-epsilon", action="store_true", help="fit the written model with a "
                   "learned P(correct answer | an error occurred); the file keeps the densities "
                   "and p of that fit (the POMDP itself has no ε)")


def _clean(obj: Any) -> Any:
    """NaN / infinity -> None, numpy scalars -> Python numbers (JSON-ready)."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def check_args(args: argparse.Namespace) -> Path | None:
    """Reject bad options (and an unusable --out) before any work; returns the output folder."""
    check_number(args.lam, "--lambda", lo=0, field="lambda")
    check_number(args.n_boot, "--n-boot", lo=1, integer=True, field="n_boot")
    check_number(args.bins, "--bins", lo=2, integer=True, field="bins")
    check_number(args.seed, "--seed", lo=0, integer=True, field="seed")
    check_number(args.split_seed, "--split-seed", lo=0, integer=True, field="split_seed")
    if args.train_problems is not None:
        check_number(args.train_problems, "--train-problems", lo=1, integer=True,
                     field="train_problems")
    if args.write_model is not None:
        check_number(args.knots, "--knots", lo=2, hi=100_000, integer=True, field="knots")
        check_number(args.smoothing, "--smoothing", lo=0, hi=1e6, field="smoothing")
        try:
            grid_size(args.grid)
            ok = 0.005 <= args.grid <= 0.5
        except InputError:
            ok = False
        if not ok:
            raise InputError(f"--grid must be a bin size in [0.005, 0.5] that divides 1 into "
                             f"equal bins (e.g. 0.025). Got {args.grid!r} instead.", field="grid")
        check_output_path(args.write_model, option="--write-model")
    if args.out is None:
        return None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError("--out must be a folder. Got an existing file instead.", path=out,
                         field="out")
    check_output_path(out / "assessment.json")
    return out


def _fmt(v: dict[str, float] | None, digits: int = 4) -> str:
    if v is None or v.get("value") is None:
        return "—"
    f = f"{{:.{digits}f}}"
    val = v["value"]
    if val is None or not math.isfinite(val):
        return "—"
    lo, hi = v.get("lo"), v.get("hi")
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return f.format(val)
    return f"{f.format(val)} [{f.format(lo)}, {f.format(hi)}]"


def _text(summary: dict[str, Any]) -> str:
    lines = [(f"model {summary['model']} · {summary['solutions']} solutions, "
             f"{summary['problems']} problems, {summary['steps']} steps · "
             f"{summary['with_outcome']} with outcome, {summary['with_step_labels']} with step "
             f"labels · {int(summary['level'] * 100)}% intervals: {summary['n_boot']} problem "
             "resamples")]
    sol = summary.get("solution")
    if sol:
        lines.append("solution level: final P(S0) vs correct answer")
        for k in ("auroc", "brier", "log_loss", "ece", "auroc_min_score", "auroc_last_score",
                  "auroc_minus_min_score"):
            lines.append(f"  {k:<28} {_fmt(sol[k])}")
    st = summary.get("step")
    if st:
        lines.append("step level: P(S0) vs prefix correct")
        for k in ("auroc", "brier", "log_loss", "ece", "auroc_min_so_far", "auroc_current_score",
                  "auroc_minus_min_so_far"):
            lines.append(f"  {k:<28} {_fmt(st[k])}")
    tg = summary.get("targeting")
    if tg:
        lines.append(f"first-error targeting at λ = {summary['lambda']:g} "
                     f"({int(tg['regenerations']['value'])} regenerations; TRIM-Thr matched at "
                     f"k = {_fmt({'value': tg['thr_threshold']['value']})})")
        for k in ("pomdp_precision", "thr_precision", "pomdp_recall", "thr_recall",
                  "recall_diff", "pomdp_first_before", "thr_first_before", "pomdp_first_at",
                  "thr_first_at"):
            lines.append(f"  {k:<28} {_fmt(tg[k])}")
    ho = summary.get("heldout")
    if ho:
        lines.append(f"held out: {ho['test_solutions']} solutions of {ho['test_problems']} "
                     f"problems (baselines fitted on {ho['train_problems']}); best baseline: "
                     f"{ho['best_baseline']}")
        lines.append(f"  {'score':<16} {'AUROC':<26} {'Brier':<8} {'log-loss':<9} "
                     "AUROC − best baseline")
        for name, m in ho["scores"].items():
            lines.append(f"  {name:<16} {_fmt(m['auroc']):<26} {_fmt({'value': m['brier']['value']}):<8} "
                         f"{_fmt({'value': m['log_loss']['value']}):<9} "
                         f"{_fmt(m['auroc_minus_best_baseline'])}")
        for name, v in ho["step_loglik"].items():
            lines.append(f"  per-step log-likelihood ({name}): {v:.4f}")
    return "\n".join(lines)


def _write_model(args: argparse.Namespace, base: TrimModel, train: Any) -> TrimModel:
    """Fit the calibrated-score model on ``train`` and save it (atomically) as a TRIM model."""
    if not train.has_outcome.any():
        raise InputError("--write-model needs training traces with a final-answer outcome "
                         "('correct'). Got none.", field="correct")
    est = CalibratedScoreModel(n_types=1, bin_size=float(args.grid), n_knots=int(args.knots),
                               alpha=float(args.smoothing),
                               learn_epsilon=bool(args.learn_epsilon)).fit(train)
    src = ", ".join(str(t) for t in args.traces)
    model = est.trim_model(base, name=f"calibrated-score-em ({Path(args.traces[0]).name})")
    prov = {**model.provenance, "fitted_by": "trimpomdp assess --write-model",
            "traces": src, "train_solutions": int(train.n),
            "train_problems": None if args.train_problems is None else int(args.train_problems),
            "split_seed": int(args.split_seed), "prm": args.prm,
            "smoothing": float(args.smoothing),
            "epsilon": float(est.em_.epsilon_) if args.learn_epsilon else None}
    model = model.replace(provenance=prov)
    model.save(args.write_model)
    return model


def run(args: argparse.Namespace) -> int:
    with one_line_warnings("trimpomdp assess"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    out = check_args(args)
    model = load_model(None if args.model == "default" else args.model)
    data = load_step_traces(args.traces, prm=args.prm)
    heldout = None
    train = data
    if args.train_problems is not None:
        if not data.has_outcome.any():
            raise InputError("--train-problems needs traces with a final-answer outcome "
                             "('correct'). Got none.", field="correct")
        tr, te = split_problems(data, args.train_problems, seed=args.split_seed)
        train, data = data.subset(tr), data.subset(te)
    written = None if args.write_model is None else _write_model(args, model, train)
    if args.train_problems is not None:
        models = {"model": model} if written is None else {"model": model, "written": written}
        heldout = heldout_comparison(train, data, models, density=args.density,
                                     n_boot=args.n_boot, seed=args.seed, n_bins=args.bins)
    res = assess(model, data, lam=args.lam, density=args.density, n_boot=args.n_boot,
                 seed=args.seed, n_bins=args.bins)
    summary = dict(res.summary)
    if written is not None:
        summary["written_model"] = {"path": str(args.write_model), "name": written.name,
                                    "p_weak": written.p_weak, "bin_size": written.bin_size,
                                    "train_solutions": train.n}
    if heldout is not None:
        summary["heldout"] = heldout
    summary = _clean(summary)
    if out is not None:
        text = dumps_json(summary, out / "assessment.json")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figs = {}
        for name, (y, p) in res.reliability_data().items():
            fig, ax = plt.subplots(figsize=(4.6, 4.4))
            what = "P(S0) per step vs prefix correct" if name == "step" else \
                "final P(S0) vs correct answer"
            plot_reliability(y, p, n_bins=args.bins, ax=ax, label=model.name[:40],
                             title=f"reliability: {what}")
            fig.tight_layout()
            figs[out / f"reliability_{name}.png"] = fig
        with atomic_write(out / "assessment.json") as fh:
            fh.write(text)
        for path, fig in figs.items():
            with atomic_write(path, "wb") as fh:
                fig.savefig(fh, format="png", dpi=120)
            plt.close(fig)
        summary["files"] = [str(out / "assessment.json"), *map(str, figs)]
    text = json.dumps(summary, indent=1) if args.json else _text(summary)
    if written is not None and not args.json:
        text += (f"\nwrote {args.write_model}: {written.name}, p_weak {written.p_weak:.4f}, "
                 f"grid {written.bin_size:g} on transformed scores ({train.n} training solutions)")
    print(text)
    return 0
