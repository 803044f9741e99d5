"""`trimpomdp fit`: labelled observations (or step traces) -> observation model or TRIM model.

Options and the output path are checked before the data is read; the model is written
atomically and only if every number in it is finite.
"""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from trimpomdp._validate import check_number, check_output_path
from trimpomdp._version import __version__
from trimpomdp.data import every_prefix, read_labelled_observations, read_traces, release_prefixes
from trimpomdp.data.traces import sniff_kind
from trimpomdp.errors import DataWarning, InputError, located, one_line_warnings
from trimpomdp.fitting.model_fit import sha256_file
from trimpomdp.model import TrimModel, load_model
from trimpomdp.observation import BinnedObservationModel, ReflectedKDEObservationModel
from trimpomdp.observation.binned import grid_size
from trimpomdp.resources import default_model_path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="JSONL: labelled observations (min_prev, "
                   "current, state) or step traces with first-error labels")
    p.add_argument("--out", required=True, help="output model file (JSON)")
    p.add_argument("--method", choices=["binned", "kde"], default="binned",
                   help="histogram or reflected KDE (default: %(default)s)")
    p.add_argument("--bin-size", type=float, default=0.05, help="bin width; 1/bin-size must be "
                   "an integer (default: %(default)s)")
    p.add_argument("--alpha", type=float, default=1.0, help="additive smoothing per bin, binned "
                   "only (default: %(default)s)")
    p.add_argument("--labelling", choices=["release", "every-prefix"], default="release",
                   help="rule turning step traces into labelled observations (default: "
                   "%(default)s)")
    p.add_argument("--trim-model", action="store_true", help="write a full TRIM model (this "
                   "observation model; every other parameter carried over from --base, with a "
                   "warning) instead of the observation model; `trimpomdp fit-model` fits them all")
    p.add_argument("--base", default=None, help="with --trim-model: the TRIM model file whose "
                   "accuracies, hazard, reward and future tokens are carried over (default: the "
                   "bundled model)")


def check_args(args: argparse.Namespace) -> None:
    """Reject bad options and an unwritable --out before reading any data."""
    check_number(args.bin_size, "--bin-size", lo=0, hi=1, lo_open=True, field="bin_size")
    grid_size(args.bin_size)
    check_number(args.alpha, "--alpha", lo=0, field="alpha")
    out = check_output_path(args.out)
    if out.resolve() == Path(args.data).resolve():
        raise InputError("--out would overwrite the input data", path=out, field="out")
    if args.base is not None and not args.trim_model:
        raise InputError("--base is used only with --trim-model", field="base")


#: the TrimModel parameters ``fit --trim-model`` does not fit
CARRIED = ("p_weak", "p_strong", "hazard", "future_tokens", "max_steps", "reward")


def carried_over(base: TrimModel, path: Path) -> dict[str, object]:
    """Provenance of the parameters taken from ``base`` unchanged: which, their values, the
    file (with sha256) and that file's own provenance (which then describes only these)."""
    vals: dict[str, object] = {k: getattr(base, k) for k in CARRIED}
    vals["hazard"] = [float(h) for h in base.hazard]
    return {"from": str(path), "sha256": sha256_file(path), "model": base.name,
            "parameters": vals,
            "source_provenance": {k: v for k, v in base.provenance.items()
                                  if k != "observation_model"},
            "note": "not fitted from the data: fit them with `trimpomdp fit-model`"}


def run(args: argparse.Namespace) -> int:
    with one_line_warnings("trimpomdp fit"):
        check_args(args)
        with located(args.data):
            return _run(args)


def _run(args: argparse.Namespace) -> int:
    base_path = (Path(args.base) if args.base else default_model_path()) if args.trim_model \
        else None
    base = None
    if base_path is not None:  # a bad --base fails before the data is read
        with located(base_path):
            base = load_model(base_path)
    if sniff_kind(args.data) == "observations":
        data = read_labelled_observations(args.data)
    else:
        with warnings.catch_warnings():  # fit uses no token counts
            warnings.filterwarnings("ignore", message=".*have no 'tokens'", category=DataWarning)
            traces = read_traces(args.data)
        data = (release_prefixes if args.labelling == "release" else every_prefix)(traces)
    if args.method == "binned":
        est = BinnedObservationModel(bin_size=args.bin_size, alpha=args.alpha)
    else:
        est = ReflectedKDEObservationModel()
    est.fit(data.X, data.y)
    if base is not None and base_path is not None:
        carried = carried_over(base, base_path)
        warnings.warn(
            f"--trim-model fits only the observation model; p_weak={base.p_weak:g}, "
            f"p_strong={base.p_strong:g}, the hazard (max_steps={base.max_steps}), "
            f"future_tokens={base.future_tokens} and reward={base.reward:g} are carried over "
            f"from {base_path} ({base.name}); to fit them from your own traces use `trimpomdp "
            "fit-model --traces ...`", DataWarning, stacklevel=2)
        prov = {"source": "trimpomdp fit --trim-model", "trimpomdp_version": __version__,
                "fitted": {"observation_model": {
                    "method": args.method, "bin_size": args.bin_size,
                    "alpha": args.alpha if args.method == "binned" else None,
                    "labelling": args.labelling, "data": str(args.data),
                    "data_sha256": sha256_file(args.data), "n": len(data)}},
                "carried_over": carried}
        base.replace(obs_probs=est.bin_probs(args.bin_size), bin_size=args.bin_size,
                     name=f"fit:{Path(args.data).name}", provenance=prov).save(args.out)
    else:
        est.save(args.out)
    counts = [int((data.y == c).sum()) for c in range(3)]
    summary = {"out": args.out, "method": args.method, "n": len(data),
               "per_class": dict(zip(["S0", "S1", "S2"], counts))}
    if args.method == "binned":  # how much of each class's mass is the additive prior
        prior = args.alpha * round(1 / args.bin_size) ** 2
        summary["smoothing_share"] = {f"S{c}": round(prior / (n + prior), 4) if n + prior else 0.0
                                      for c, n in enumerate(counts)}
    print(json.dumps(summary))
    return 0
