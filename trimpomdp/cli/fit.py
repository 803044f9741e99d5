"""`trimpomdp fit`: labelled observations (or step traces) -> observation model or TRIM model."""
from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="JSONL: labelled observations (min_prev, "
                   "current, state) or step traces with first-error labels")
    p.add_argument("--out", required=True, help="output model file (JSON)")
    p.add_argument("--method", choices=["binned", "kde"], default="binned")
    p.add_argument("--bin-size", type=float, default=0.05)
    p.add_argument("--alpha", type=float, default=1.0, help="additive smoothing (binned)")
    p.add_argument("--labelling", choices=["release", "every-prefix"], default="release",
                   help="rule turning step traces into labelled observations")
    p.add_argument("--trim-model", action="store_true", help="write a full TRIM model (the "
                   "default model with this observation model) instead of the observation model")


def run(args: argparse.Namespace) -> int:
    from trimpomdp.data import every_prefix, read_labelled_observations, read_traces
    from trimpomdp.data import release_prefixes
    from trimpomdp.data.traces import sniff_kind
    from trimpomdp.observation import BinnedObservationModel, ReflectedKDEObservationModel

    if sniff_kind(args.data) == "observations":
        data = read_labelled_observations(args.data)
    else:
        traces = read_traces(args.data)
        data = (release_prefixes if args.labelling == "release" else every_prefix)(traces)
    if args.method == "binned":
        est = BinnedObservationModel(bin_size=args.bin_size, alpha=args.alpha)
    else:
        est = ReflectedKDEObservationModel()
    est.fit(data.X, data.y)
    if args.trim_model:
        from trimpomdp.model import load_model

        base = load_model()
        base.replace(obs_probs=est.bin_probs(args.bin_size), bin_size=args.bin_size,
                     name=f"fit:{args.data}", provenance={**base.provenance,
                     "observation_model": f"{args.method} fit on {args.data}"}).save(args.out)
    else:
        est.save(args.out)
    counts = [int((data.y == c).sum()) for c in range(3)]
    print(json.dumps({"out": args.out, "method": args.method, "n": len(data),
                      "per_class": dict(zip(["S0", "S1", "S2"], counts))}))
    return 0
