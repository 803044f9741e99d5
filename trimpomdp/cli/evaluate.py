"""`trimpomdp evaluate`: policies in the simulator, or live run folders → metrics table + plot."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--policies", nargs="+", metavar="SPEC",
                     help="policy specs (as for simulate); points of one kind form one curve")
    src.add_argument("runs", nargs="*", default=[], metavar="RUN_DIR",
                     help="run folders of `trimpomdp run` (include weak and strong runs for PGR)")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="TRIM model file for POMDP specs (default: bundled)")
    p.add_argument("--out", default="results", help="output stem: writes STEM.md and STEM.json")
    p.add_argument("--plot", help="cost–accuracy plot file (.png/.svg/.pdf)")


def run(args: argparse.Namespace) -> int:
    if args.runs:
        return _runs(args)
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


def _runs(args: argparse.Namespace) -> int:
    import json

    from trimpomdp.evaluation.report import markdown_table, write_report
    from trimpomdp.evaluation.runs import evaluate_runs

    curves, ref, rows, summaries = evaluate_runs(args.runs)
    keys = ("policy", "problems", "failed", "accuracy", "strong_tokens_mean",
            "weak_tokens_mean", "regenerate_rate")
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for s in summaries:
        print("| " + " | ".join(f"{s[k]:.3f}" if isinstance(s[k], float) else str(s[k])
                                for k in keys) + " |")
    notes = ["live runs; failed problems count as wrong", "CPT = cheapest measured point"]
    if ref is None:
        notes.append("no weak-only and strong-only runs given: PGR/CPT/ΔIBC need both")
    else:
        print(markdown_table(rows))
    write_report(args.out, rows, title="Policy comparison (live runs)", notes=notes,
                 runs=summaries)
    if args.plot and ref is not None:
        import matplotlib

        matplotlib.use("Agg")
        from trimpomdp.evaluation.plots import plot_cost_accuracy, save

        save(plot_cost_accuracy(curves, ref, title="cost–accuracy (live runs)"), args.plot)
    print(json.dumps({"out": args.out, "runs": len(summaries)}))
    return 0
