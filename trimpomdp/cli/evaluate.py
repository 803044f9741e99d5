"""`trimpomdp evaluate`: simulate several policies on the same problems → table + plot."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policies", nargs="+", required=True, metavar="SPEC",
                   help="policy specs (as for simulate); points of one kind form one curve")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="TRIM model file for POMDP specs (default: bundled)")
    p.add_argument("--out", default="results", help="output stem: writes STEM.md and STEM.json")
    p.add_argument("--plot", help="cost–accuracy plot file (.png/.svg/.pdf)")


def run(args: argparse.Namespace) -> int:
    from trimpomdp.evaluation.curves import evaluate_specs
    from trimpomdp.evaluation.report import markdown_table, write_report
    from trimpomdp.model import load_model

    curves, ref, rows = evaluate_specs(args.policies, n=args.n, seed=args.seed,
                                       model=load_model(args.model))
    notes = [(f"simulator: calibrated, n={args.n}, seed={args.seed}; weak {ref.weak_accuracy:.3f}"
              f", strong {ref.strong_accuracy:.3f} ({ref.strong_tokens:.1f} tokens), oracle "
              f"{ref.oracle_accuracy:.3f}"), "CPT = cheapest measured point (— = not reached)"]
    write_report(args.out, rows, title="Policy comparison (simulated)", notes=notes,
                 n=args.n, seed=args.seed, specs=list(args.policies))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        from trimpomdp.evaluation.plots import plot_cost_accuracy, save

        save(plot_cost_accuracy(curves, ref, title="cost–accuracy (simulated)"), args.plot)
    print(markdown_table(rows))
    return 0
