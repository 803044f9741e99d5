"""Head-to-head in the calibrated simulator: TRIM-Thr vs TRIM-POMDP (both belief modes) vs
TRIM-Agg (and TRIM-Seq) vs query-level baselines, all on the same problems and draws.

    python benchmarks/head_to_head.py [--n 2000] [--seed 2026] [--agg-iterations 100]
        [--calibration sim/calibration_math500_paired.json] [--boot 200]
        [--calibration-boot 10] [--boot-learned]

Writes ``benchmarks/results/head_to_head.{md,json,png}``; trained checkpoints are cached in
``benchmarks/results/ckpt/`` per calibration (delete to retrain). Also compares the simulated
TRIM-POMDP (release rule) with the release's measured TRIM-POMDP rows at the same λ. The
release rule is reproduced step for step (:mod:`trimpomdp.sim.release_rule`), and every policy
runs in the release's loop: a regenerated step's strong text is re-scored, its PRM score enters
the min / product of previous scores (``observe_regenerated``). Every
figure of the simulated table is simulated; intervals are 90 % percentile intervals over
bootstrap resamples of the simulated problems (simulation noise only; the calibration
uncertainty of the simulator is in ``benchmarks/results/sim_validation.md``). The step oracle
(regenerate exactly the wrong drafts on correct prefixes) is the limit line.

Calibration uncertainty (``--calibration-boot K``): the whole comparison is re-run on each of the
first K simulators refitted on bootstrap resamples of the measured TRIM-Thr rows
(``benchmarks/results/sim_validation.json``, ``bootstrap.params``), each on its own scenario, and
each metric, and the paired difference of TRIM-POMDP (both rules) minus TRIM-Thr, gets a 90 %
percentile interval over the refits: the spread of what the simulator would say had the Thr
curve been measured again. ``--boot-learned`` retrains TRIM-Agg per refit too (PPO, ~20 s per
λ); TRIM-Seq is left out of it (cost).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")

from trimpomdp import load_model
from trimpomdp._io import atomic_write, write_json
from trimpomdp.data.trim_release import read_release_results
from trimpomdp.evaluation.curves import point_from_run, references_from_runs
from trimpomdp.evaluation.metrics import CurvePoint, metrics_row
from trimpomdp.evaluation.plots import plot_cost_accuracy, save
from trimpomdp.evaluation.report import markdown_table
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.resources import resource_path
from trimpomdp.routing.router import StepRouter
from trimpomdp.routing.spec import make_router, pomdp_router
from trimpomdp.sim import PAIRED_CALIBRATION_FILE, RunResult, load_simulator, simulate, step_oracle
from trimpomdp.sim.release_rule import OBSERVE_STRONG_SCORES, release_factory
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver

OUT = Path(__file__).resolve().parent / "results"
THR = [0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]
LAMS = [0.02, 0.05, 0.1, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 1.2, 2.0]
AGG_LAMS = [0.01, 0.03, 0.05, 0.1, 0.15, 0.2, 0.23, 0.26, 0.3, 0.4, 0.55, 0.75]
SEQ_LAMS = [0.03, 0.05, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.4, 0.55]
BOOT_AGG_LAMS = [0.03, 0.1, 0.2, 0.26, 0.4]
QUERY = [0.05, 0.2, 0.5, 0.8, 0.9, 0.95, 0.99]
RANDOM = [0.03, 0.06, 0.1, 0.15, 0.2, 0.3, 0.45]


def subset(res: RunResult, idx) -> RunResult:
    return RunResult(policy=res.policy, correct=res.correct[idx],
                     strong_tokens=res.strong_tokens[idx], weak_kept=res.weak_kept[idx],
                     weak_discarded=res.weak_discarded[idx], strong_calls=res.strong_calls[idx],
                     steps=res.steps[idx])


def fmt_iv(v, lo, hi, digits=3):
    if v is None:
        return "—"
    if lo is None or hi is None:
        return f"{v:.{digits}f}"
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def learned(kind: str, lam: float, iters: int, sim, tag: str = "", init=None) -> object:
    """A PPO policy for ``lam`` (cached in ckpt/), warm-started from ``init`` if given."""
    from trimpomdp.routing.learned import load_learned_rule
    from trimpomdp.training.ppo import PPOConfig, train_ppo

    start = None if init is None else {"kind": kind, "lam": float(init.w.lam)}
    path = OUT / "ckpt" / f"{kind}_lam{lam:g}_it{iters}{tag}{'' if init is None else '_warm'}.json"
    if path.exists():
        pol = load_learned_rule(path, expect=kind)
        if pol.w.info.get("init_from") == start:
            return pol
    pol = train_ppo(kind, lam, simulator=sim, config=PPOConfig(lam=lam, iterations=iters,
                                                                seed=1), init=init)
    pol.save(path)
    return pol


def learned_chain(kind: str, lams, iters: int, sim, tag: str) -> dict:
    """Policies for ascending ``lams``, each warm-started from the previous λ's (the smallest
    from scratch): from scratch PPO collapses to weak-only at high λ."""
    out, prev = {}, None
    for lam in sorted(lams):
        prev = out[lam] = learned(kind, lam, iters, sim, tag, init=prev)
    return out


CURVE_NAMES = ("TRIM-Thr", "TRIM-POMDP (release rule)", "TRIM-POMDP (Bayes filter)", "TRIM-Agg",
               "TRIM-Seq", "query-level (first-step PRM)", "random (matched cost)",
               "step oracle (limit)")
METRIC_KEYS = ("cpt50", "cpt80", "cpt95", "delta_ibc_mean", "delta_ibc_best", "acc_at_10pct",
               "acc_at_20pct")
#: paired differences reported under calibration uncertainty (POMDP rule - TRIM-Thr)
DIFF_KEYS = ("cpt50", "cpt80", "delta_ibc_mean", "acc_at_20pct")


def evaluate(sc, policies, *, seed: int, agg=None, seq=None):
    """Every policy on scenario ``sc`` in the release's loop: (runs, sorted curves, references)."""
    def run(router):
        return simulate(router, sc, observe_regenerated=OBSERVE_STRONG_SCORES)

    refs = {s: run(make_router(s, record=False)) for s in ("weak", "strong", "oracle")}
    ref = references_from_runs(refs["weak"], refs["strong"], refs["oracle"])
    runs: dict[str, list[tuple[RunResult, float]]] = {}
    curves: dict[str, list[CurvePoint]] = {k: [] for k in CURVE_NAMES}

    def add(key, res, param):
        runs.setdefault(key, []).append((res, param))
        curves[key].append(point_from_run(res, param))

    for k in THR:
        add("TRIM-Thr", run(make_router(f"thr:{k}", record=False)), k)
    for lam, pol in policies.items():
        add("TRIM-POMDP (release rule)", run(release_factory(pol)), lam)
        add("TRIM-POMDP (Bayes filter)", run(pomdp_router(pol, belief="filter", record=False)),
            lam)
    for key, rules in (("TRIM-Agg", agg or {}), ("TRIM-Seq", seq or {})):
        for lam, rule in rules.items():
            add(key, run(StepRouter(rule, record=False)), lam)
    for k in QUERY:
        add("query-level (first-step PRM)", run(make_router(f"query:{k}", record=False)), k)
    for q in RANDOM:
        add("random (matched cost)", run(make_router(f"random:{q}", record=False, seed=seed)), q)
    add("step oracle (limit)", step_oracle(sc), None)
    curves = {k: sorted(v, key=lambda p: p.strong_tokens) for k, v in curves.items() if v}
    return runs, curves, refs, ref


def _num(v):
    return np.nan if v is None else float(v)


def calibration_uncertainty(base_sim, policies, args, tag: str) -> dict:
    """The comparison on each bootstrap-refitted simulator (see the module docstring)."""
    from trimpomdp._io import read_json
    from trimpomdp.sim.fitting import shape_kwargs

    doc = read_json(OUT / "sim_validation.json")
    params = list(doc.get("bootstrap", {}).get("params", []))[: args.calibration_boot]
    if not params:
        raise SystemExit("no bootstrap refits in benchmarks/results/sim_validation.json: run "
                         "benchmarks/sim_validation.py first")
    per: dict[str, dict[str, list[float]]] = {}
    diffs: dict[str, dict[str, list[float]]] = {}
    t0 = time.time()
    for i, prm in enumerate(params):
        bsim = base_sim.with_shape(**shape_kwargs(prm))
        bsc = bsim.scenario(args.boot_n, 30_000 + i)
        agg = None
        if args.boot_learned:
            h = hashlib.sha256(json.dumps(prm, sort_keys=True).encode()).hexdigest()[:8]
            agg = learned_chain("agg", BOOT_AGG_LAMS, args.agg_iterations, bsim,
                                f"{tag}_refit{h}")
        _, curves, _, ref = evaluate(bsc, policies, seed=args.seed + i, agg=agg)
        rows = {name: metrics_row(name, pts, ref) for name, pts in curves.items()}
        for name, r in rows.items():
            for k in METRIC_KEYS:
                per.setdefault(name, {}).setdefault(k, []).append(_num(r[k]))
        for name in ("TRIM-POMDP (release rule)", "TRIM-POMDP (Bayes filter)", "TRIM-Agg"):
            if name not in rows:
                continue
            for k in DIFF_KEYS:
                diffs.setdefault(name, {}).setdefault(k, []).append(
                    _num(rows[name][k]) - _num(rows["TRIM-Thr"][k]))
        print(f"calibration refit {i + 1}/{len(params)} done ({time.time() - t0:.0f} s)",
              flush=True)

    def iv(v):
        a = np.array(v, float)
        ok = a[np.isfinite(a)]
        if ok.size < 0.9 * a.size or not ok.size:
            return {"median": None, "lo": None, "hi": None, "reached": int(ok.size)}
        return {"median": float(np.median(ok)), "lo": float(np.quantile(ok, 0.05)),
                "hi": float(np.quantile(ok, 0.95)), "reached": int(ok.size)}

    return {"refits": len(params), "n": args.boot_n, "learned": bool(args.boot_learned),
            "metrics": {n: {k: iv(v) for k, v in m.items()} for n, m in per.items()},
            "diffs": {n: {k: {**iv(v), "better": int(np.sum(
                (np.array(v) < 0) if k.startswith("cpt") else (np.array(v) > 0)))}
                for k, v in m.items()} for n, m in diffs.items()},
            "seconds": time.time() - t0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--agg-iterations", type=int, default=100)
    ap.add_argument("--seq-iterations", type=int, default=120)
    ap.add_argument("--no-seq", action="store_true")
    ap.add_argument("--no-learned", action="store_true",
                    help="skip TRIM-Agg and TRIM-Seq (no PPO training)")
    ap.add_argument("--calibration", default=PAIRED_CALIBRATION_FILE)
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--calibration-boot", type=int, default=10,
                    help="bootstrap-refitted simulators to re-run the comparison on (0: none)")
    ap.add_argument("--boot-n", type=int, default=1000, help="problems per refit")
    ap.add_argument("--boot-learned", action="store_true",
                    help="retrain TRIM-Agg on every refit (PPO)")
    args = ap.parse_args()
    # checkpoints trained with the release's bookkeeping (strong scores booked, "_obs")
    tag = "_" + Path(args.calibration).stem + "_obs"
    if not args.no_learned or args.boot_learned:
        import torch

        torch.set_num_threads(1)
    t0 = time.time()
    model, sim = load_model(), load_simulator(calibration=args.calibration)
    sc = sim.scenario(args.n, args.seed)
    solver = FiniteHorizonSolver()
    policies = {lam: solver.solve(TrimPOMDP(model=model, lam=lam)) for lam in LAMS}
    agg = seq = None
    if not args.no_learned:
        agg = learned_chain("agg", AGG_LAMS, args.agg_iterations, sim, tag)
        if not args.no_seq:
            seq = learned_chain("seq", SEQ_LAMS, args.seq_iterations, sim, tag)
    runs, curves, refs, ref = evaluate(sc, policies, seed=args.seed, agg=agg, seq=seq)
    pomdp_vs_release = []
    rows = [metrics_row(name, pts, ref) for name, pts in curves.items()]
    # 90 % intervals over bootstrap resamples of the simulated problems (same resample for all)
    rng = np.random.default_rng(args.seed)
    keys = METRIC_KEYS
    boot: dict[str, dict[str, list[float]]] = {r["policy"]: {k: [] for k in keys} for r in rows}
    for _ in range(args.boot):
        idx = rng.integers(0, sc.n, sc.n)
        bref = references_from_runs(subset(refs["weak"], idx), subset(refs["strong"], idx),
                                    subset(refs["oracle"], idx))
        for name, rs in runs.items():
            pts = sorted((point_from_run(subset(r, idx), p) for r, p in rs),
                         key=lambda p: p.strong_tokens)
            m = metrics_row(name, pts, bref)
            for k in keys:
                boot[name][k].append(m[k] if m[k] is not None else np.nan)
    for r in rows:
        for k in keys:
            v = np.array(boot[r["policy"]][k], float)
            ok = v[np.isfinite(v)]
            r[f"{k}_lo"], r[f"{k}_hi"] = ((float(np.quantile(ok, 0.05)),
                                           float(np.quantile(ok, 0.95)))
                                          if ok.size >= 0.9 * max(1, v.size) else (None, None))
    calib = (calibration_uncertainty(sim, policies, args, tag)
             if args.calibration_boot and args.calibration == PAIRED_CALIBRATION_FILE else None)
    # measured release curves, and the simulated POMDP vs the release's measured POMDP rows
    rel = resource_path("data", "trim_release")
    thr_meas = [CurvePoint(policy="thr", accuracy=r["accuracy"],
                           strong_tokens=r["avg_target_tokens_per_question"],
                           param=r["threshold"])
                for r in read_release_results(rel / "thr_results_math500_summary.jsonl")]
    pomdp_meas = [CurvePoint(policy="pomdp", accuracy=r["accuracy"],
                             strong_tokens=r["avg_target_tokens_per_question"],
                             param=r["cost_per_token"])
                  for r in read_release_results(rel / "pomdp_results_math500_summary.jsonl")]
    sim_rel = {p.param: p for p in curves["TRIM-POMDP (release rule)"]}
    sim_fil = {p.param: p for p in curves["TRIM-POMDP (Bayes filter)"]}
    for m in pomdp_meas:
        s, f = sim_rel.get(m.param), sim_fil.get(m.param)
        pomdp_vs_release.append({
            "lam": m.param, "acc_meas": m.accuracy, "tokens_meas": m.strong_tokens,
            "acc_sim_release_rule": s.accuracy if s else None,
            "tokens_sim_release_rule": s.strong_tokens if s else None,
            "acc_sim_filter": f.accuracy if f else None,
            "tokens_sim_filter": f.strong_tokens if f else None})
    ax = plot_cost_accuracy(curves, ref, title=f"SIMULATED MATH-500 ({Path(args.calibration).stem}),"
                                               f" n={args.n}, seed {args.seed}",
                            measured={"TRIM-Thr": thr_meas, "TRIM-POMDP": pomdp_meas})
    ax.figure.set_size_inches(8, 5.5)
    save(ax, OUT / "head_to_head.png")
    import matplotlib.pyplot as plt

    from trimpomdp.evaluation.plots import plot_belief_trajectories

    pol = solver.solve(TrimPOMDP(model=model, lam=0.25))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    few = sc.subset(list(range(12)))
    for a, belief in zip(axes, ("filter", "release")):
        make = (release_factory(pol, record=True) if belief == "release"
                else pomdp_router(pol, belief=belief))
        tr = simulate(make, few, keep_traces=True,
                      observe_regenerated=OBSERVE_STRONG_SCORES).traces
        plot_belief_trajectories(tr, ax=a, title=f"TRIM-POMDP λ=0.25, {belief} belief")
    save(fig, OUT / "belief_trajectories.png")
    from trimpomdp.evaluation.metrics import References
    from trimpomdp.evaluation.metrics import metrics_row as mrow

    mref = References(weak_accuracy=0.364, strong_accuracy=0.73, strong_tokens=494.84)
    meas_rows = [mrow("TRIM-Thr (measured, release)", [p for p in thr_meas if 0 < p.param < 1],
                      mref),
                 mrow("TRIM-POMDP (measured, release)", pomdp_meas, mref)]
    lines = [(f"# Head-to-head (SIMULATED: calibrated simulator `{args.calibration}`, n = {args.n} "
              f"problems per point, seed {args.seed}, common random numbers)"), "",
             ("Every figure in the first table is simulated; [lo, hi] = 90 % interval over "
              f"{args.boot} bootstrap resamples of the simulated problems (simulation noise only; "
              "calibration uncertainty: `sim_validation.md`). — = not reached (or reached in "
              "fewer than 90 % of resamples: no interval)."), "",
             (f"References: weak-only {ref.weak_accuracy:.3f}, strong-only {ref.strong_accuracy:.3f}"
             f" at {ref.strong_tokens:.1f} strong tokens/problem, oracle query-level "
             f"{ref.oracle_accuracy:.3f} at {ref.oracle_tokens:.1f} "
             f"(c = {ref.oracle_tokens / ref.strong_tokens:.3f})."), "",
             ("CPT = cheapest measured point reaching the PGR target, as cost c = C̄/C̄(strong) "
             "(— = not reached). ΔIBC: 'mean' = mean over the curve's points, 'best' = best point."
             " Budget accuracy = best accuracy among points with c ≤ budget."), "",
             "| policy | CPT50 | CPT80 | CPT95 | ΔIBC mean | ΔIBC best | acc@10% | acc@20% |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join([r["policy"]] + [
            fmt_iv(r[k], r[f"{k}_lo"], r[f"{k}_hi"], 2 if k.startswith("delta") else 3)
            for k in keys]) + " |")
    lines += ["", "Measured (release, 500 problems, same metrics):", "",
             markdown_table(meas_rows), "",
             "## Simulated TRIM-POMDP vs the release's measured TRIM-POMDP (same λ)", "",
             ("| λ | acc meas | acc sim (release rule) | acc sim (filter) | C̄ meas | "
             "C̄ sim (release rule) | C̄ sim (filter) |"), "|---|---|---|---|---|---|---|"]
    for r in pomdp_vs_release:
        lines.append(f"| {r['lam']:g} | {r['acc_meas']:.3f} | {r['acc_sim_release_rule']:.3f} | "
                     f"{r['acc_sim_filter']:.3f} | {r['tokens_meas']:.1f} | "
                     f"{r['tokens_sim_release_rule']:.1f} | {r['tokens_sim_filter']:.1f} |")
    if calib is not None:
        def civ(d, digits=3):
            if d["median"] is None:
                return f"— ({d['reached']}/{calib['refits']} reached)"
            return f"{d['median']:.{digits}f} [{d['lo']:.{digits}f}, {d['hi']:.{digits}f}]"

        lines += ["", (f"## Calibration uncertainty: the comparison on {calib['refits']} simulators "
                       "refitted on bootstrap resamples of the measured TRIM-Thr rows"), "",
                  ("*Simulated.* Each refit (parameters: `sim_validation.json`, `bootstrap.params`)"
                   f" runs every policy on its own {calib['n']} problems (seed 30000 + i); median "
                   "[5 %, 95 %] over the refits, so the interval holds calibration *and* simulation"
                   " noise. TRIM-Agg: " + (f"retrained per refit at λ ∈ {BOOT_AGG_LAMS}."
                                           if calib["learned"] else "not retrained (omitted).")),
                  "", "| policy | CPT50 | CPT80 | ΔIBC mean | acc@10% | acc@20% |",
                  "|---|---|---|---|---|---|"]
        for name, m in calib["metrics"].items():
            lines.append(f"| {name} | {civ(m['cpt50'])} | {civ(m['cpt80'])} | "
                         f"{civ(m['delta_ibc_mean'], 2)} | {civ(m['acc_at_10pct'])} | "
                         f"{civ(m['acc_at_20pct'])} |")
        lines += ["", ("Paired differences, policy − TRIM-Thr on the same refit and problems "
                       "(CPT: negative = cheaper; ΔIBC, acc@20%: positive = better); 'better' = "
                       "refits where the policy is ahead:"), "",
                  "| policy − TRIM-Thr | ΔCPT50 | ΔCPT80 | ΔΔIBC mean | Δacc@20% |",
                  "|---|---|---|---|---|"]
        for name, m in calib["diffs"].items():
            cells = []
            for k in DIFF_KEYS:
                d = m[k]
                cells.append(f"{civ(d, 2 if k == 'delta_ibc_mean' else 3)}, better "
                             f"{d['better']}/{calib['refits']}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += ["", f"Calibration-uncertainty runs: {calib['seconds']:.0f} s."]
    lines += ["", f"Wall time {time.time() - t0:.0f} s."]
    with atomic_write(OUT / "head_to_head.md") as fh:
        fh.write("\n".join(lines) + "\n")
    write_json(OUT / "head_to_head.json", {"n": args.n, "seed": args.seed, "rows": rows,
                                           "measured_rows": meas_rows,
                                           "pomdp_vs_release": pomdp_vs_release,
                                           "calibration_uncertainty": calib})
    print("\n".join(lines))


if __name__ == "__main__":
    main()
