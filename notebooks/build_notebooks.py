"""Write the notebooks of this folder from their cell sources and execute them in place.

    python notebooks/build_notebooks.py            # build + execute all, outputs saved
    python notebooks/build_notebooks.py --no-exec  # only write the cells

Execution uses nbclient with the ``python3`` kernel (``python -m ipykernel install --user --name
python3`` if none is registered), from the repository root as working directory, and prints each
notebook's wall time.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = """\
%matplotlib inline
import time
import warnings
import numpy as np
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
plt.rcParams.update({"figure.dpi": 90, "savefig.dpi": 90})
T_START = time.perf_counter()"""

BELIEF = [
    ("md", """\
# Belief trajectories on real PRM scores

What does the TRIM-POMDP controller *believe* along real solutions, and what would it do?

* **Data**: Qwen2.5-Math-PRM-7B step scores of Qwen2.5-7B-Instruct solutions to MATH-500
  (StrictPRMBench Best-of-32: 500 problems × 32 solutions) with each final answer's correctness.
  The notebook reads the full dump from `../shared/data/prm_scores_strictprmbench/` when it is
  there, and otherwise the 600-solution sample bundled in `data/strictprmbench_sample/`; the cell
  below prints which one it used.
* **Model**: the bundled release model (`trimpomdp.load_model()`: the release's ProcessBench
  observation densities, Qwen2.5-1.5B → 7B step accuracies and hazard), density = the continuous
  (bilinearly interpolated) one used at runtime.
* **Two runtime beliefs**: the *Bayes filter* carries the belief across steps; the *release rule*
  uses only the current observation o = (min of previous scores, current score) under a uniform
  prior, and asks the policy only when P(S2) is within 0.4 of the most likely class.

All analysis and plotting code lives in `trimpomdp.evaluation.trajectories`."""),
    ("code", SETUP + """
from trimpomdp import load_model
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver
from trimpomdp.evaluation import trajectories as tj

data = tj.load_scores()
full = "math500_bon32_prm_step_scores" in data.source
print("data:", data.source)
print("=> FULL StrictPRMBench dump" if full else "=> bundled 600-solution SAMPLE (../shared/data absent)")
print(f"{data.n:,} solutions, {data.n_steps:,} scored steps, {data.correct.mean():.1%} with a correct "
      f"final answer; {(data.lengths > 30).sum()} solutions are longer than the 30-step horizon")"""),
    ("md", """\
## Tracking modes

* **passive** — the data were written by the 7B model alone, every step kept. The filter then
  predicts with *continue* at every step; we track the whole solution (all steps, also past 30).
  This is the belief that the solution so far is correct, independent of λ.
* **router** — exactly what `StepRouter.decide` does when these scores are replayed through a
  `pomdp_router` at a given λ: after a *regenerate* the filter predicts with the regenerate
  transition and the discarded draft's score leaves the min of previous scores. Steps beyond the
  horizon (30) are not routed. Two routers see identical histories up to their first disagreement,
  so "the two rules disagree at one step or more" is well defined.

The tracking is vectorised over solutions (numpy, one loop over steps); the next cell checks it
against the plain `StepRouter.decide` loop on every solution and times both."""),
    ("code", """\
LAM = 0.25  # cost per strong token, reward units (R = 100 for a correct answer)
model = load_model()
t0 = time.perf_counter()
policy = FiniteHorizonSolver().solve(TrimPOMDP(model=model, lam=LAM))
print(f"solved λ = {LAM} in {time.perf_counter() - t0:.2f} s")

passive = {"filter": tj.track(data, model=model, rule="filter", mode="passive"),
           "release": tj.track(data, model=model, rule="release", mode="passive")}
routed = {"filter": tj.track(data, policy, rule="filter"),
          "release": tj.track(data, policy, rule="release")}
for name, tr in {**{f"passive {k}": v for k, v in passive.items()},
                 **{f"router {k}": v for k, v in routed.items()}}.items():
    print(f"vectorised {name:15s}: {tr.seconds:6.2f} s")

# reference: the plain StepRouter.decide loop over every routed step
for rule in ("filter", "release"):
    ref = tj.track_with_router(data, policy, rule=rule)
    vec = routed[rule]
    n_dec = int((ref.action >= 0).sum())
    same_a = np.array_equal(ref.action, vec.action)
    db = np.nanmax(np.abs(ref.belief - vec.belief))
    print(f"StepRouter loop ({rule:7s}): {ref.seconds:5.2f} s for {n_dec:,} decide() calls "
          f"({1e6 * ref.seconds / n_dec:.1f} µs/step); identical actions: {same_a}; "
          f"max |Δbelief| = {db:.1e}")
    assert same_a and db < 1e-9"""),
    ("md", """\
## Belief trajectories on the simplex

Four random correct (green) and four random incorrect (red) solutions of 4–14 steps, replayed
through the router at the λ above. Each dot is one step's belief after its observation; × marks
steps where the policy asks for a regeneration; the square is the last step. Corners: S0 = all
steps so far correct, S1 = an earlier step is wrong, S2 = only the current step is wrong."""),
    ("code", """\
ex = tj.pick_examples(data, k=4, seed=1)
idx = np.concatenate([ex["correct"], ex["incorrect"]])
fig, axes = plt.subplots(1, 2, figsize=(11, 5))
tj.plot_simplex_trajectories(routed["filter"], data, idx, ax=axes[0],
                             title=f"Bayes filter (router, λ = {LAM})")
tj.plot_simplex_trajectories(routed["release"], data, idx, ax=axes[1],
                             title=f"release rule: current observation only (router, λ = {LAM})")
fig.tight_layout()"""),
    ("md", """\
## Does the final P(S0) separate correct from incorrect solutions?

Positives are solutions with a correct final answer. Scores: P(S0) at the last step (passive
tracking over the whole solution) for both beliefs, against the plain PRM verifiers "minimum step
score" and "last step score". AUROC = `sklearn.metrics.roc_auc_score`."""),
    ("code", """\
scores = tj.separation_scores(data, {"P(S0) Bayes filter": passive["filter"],
                                     "P(S0) release rule": passive["release"]})
scores[f"P(S0) Bayes filter, router λ={LAM} (first 30 steps)"] = routed["filter"].p_s0_final()
rows = tj.auroc_bootstrap(data.correct, scores, reference="min step score",
                          groups=data.problems(), n_boot=200)
display(Markdown(
    "| score | AUROC | 95% CI | AUROC − min-score AUROC (95% CI, paired) |\\n|---|---|---|---|\\n"
    + "\\n".join(f"| {r['score']} | {r['auroc']:.4f} | [{r['lo']:.4f}, {r['hi']:.4f}] | "
                  f"{r['diff']:+.4f} [{r['diff_lo']:+.4f}, {r['diff_hi']:+.4f}] |" for r in rows)
    + f"\\n\\n{data.n:,} solutions ({int(data.correct.sum()):,} correct); percentile bootstrap "
      "over problems (all solutions of a resampled problem together: they are correlated), "
      "200 resamples."))
fig, ax = plt.subplots(figsize=(6, 5.2))
tj.plot_roc(data.correct, {k: v for k, v in scores.items() if "router" not in k}, ax=ax);"""),
    ("md", """\
Reading: the final P(S0) is built from the same scores as the minimum score (the observation is
the min of previous scores and the current score), shrunk by the model's per-step prior
(p_w = 0.866 for the 1.5B weak model, applied here to 7B-written steps), so it is not expected to
beat the minimum score as a *verifier*; the paired-difference column says whether the two can be
told apart on this data (an interval containing 0: they cannot). The router's belief (last row)
conditions on its own regenerations, which these replayed solutions never had, so it is a worse
verifier by construction. The point of the belief is routing, below."""),
    ("md", """\
## Where would TRIM-POMDP ask for a regeneration?

Left: the PRM scores of the example solutions with × where the routed policy (Bayes filter)
asks to regenerate. Right: at each step, the share of solutions still running at that step on
which the policy asks, for solutions whose final answer turned out correct (solid) or incorrect
(dashed). A useful router asks much more often on the incorrect ones."""),
    ("code", """\
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
tj.plot_score_paths(routed["filter"], data, idx, ax=axes[0])
tj.plot_regeneration_profile({"Bayes filter": routed["filter"], "release rule": routed["release"]},
                             data, ax=axes[1], title=f"where regenerations would be asked (λ = {LAM})")
fig.tight_layout()
lines = ["| rule | solutions with ≥ 1 request: correct | incorrect | mean requests / solution: correct | incorrect |",
         "|---|---|---|---|---|"]
for rule, tr in routed.items():
    r, any_r = tr.regenerations(), tr.regenerations() > 0
    lines.append(f"| {rule} | {any_r[data.correct].mean():.1%} | {any_r[~data.correct].mean():.1%} | "
                 f"{r[data.correct].mean():.2f} | {r[~data.correct].mean():.2f} |")
display(Markdown("\\n".join(lines)))"""),
    ("md", """\
## Bayes filter vs the release's single-observation posterior

Each point is one routed step: P(S0) under the release rule (x) and under the filter (y); orange
where the two routers take different actions. Then the count of solutions on which they disagree
at one step or more, for the λ above and for a range of λ (the headline number). "Steps
disagreeing" also counts steps after a solution's first disagreement, where the two routers'
histories (and so their min-of-previous-scores) already differ."""),
    ("code", """\
fig, ax = plt.subplots(figsize=(6, 5.2))
tj.plot_filter_vs_release(routed["filter"], routed["release"], ax=ax)
dis = tj.disagreement(routed["filter"], routed["release"])
print(f"λ = {LAM}: filter and release rule choose different actions on {dis.n_solutions:,} of "
      f"{data.n:,} solutions ({dis.n_solutions / data.n:.1%}) at one step or more "
      f"({dis.n_steps:,} of {dis.n_compared_steps:,} routed steps)")

lines = ["| λ | solutions disagreeing | % | steps disagreeing | regen requests: filter | release |",
         "|---|---|---|---|---|---|"]
sweep = {}
for lam in (0.05, 0.15, 0.25, 0.5, 0.85):
    pol = policy if lam == LAM else FiniteHorizonSolver().solve(TrimPOMDP(model=model, lam=lam))
    f, r = tj.track(data, pol, rule="filter"), tj.track(data, pol, rule="release")
    d = tj.disagreement(f, r)
    sweep[lam] = d
    lines.append(f"| {lam:g} | {d.n_solutions:,} | {d.n_solutions / data.n:.1%} | {d.n_steps:,} | "
                 f"{int((f.action == 1).sum()):,} | {int((r.action == 1).sum()):,} |")
display(Markdown("\\n".join(lines)))"""),
    ("md", """\
Two solutions (4–14 steps) on which the rules disagree: one where at the first disagreement only
the filter asks to regenerate, one where only the release rule does. Left column: the filter's
path, right: the release rule's (same scores)."""),
    ("code", """\
f_act, r_act = routed["filter"].action, routed["release"].action
rows_ = np.arange(data.n)
ok_len = (data.lengths >= 4) & (data.lengths <= 14) & dis.any_step
first = np.maximum(dis.first_step, 0)
picks = {"only the filter asks": np.flatnonzero(ok_len & (f_act[rows_, first] == 1)),
         "only the release rule asks": np.flatnonzero(ok_len & (r_act[rows_, first] == 1))}
picks = {k: int(v[0]) for k, v in picks.items() if v.size}
if picks:
    fig, axes = plt.subplots(len(picks), 2, figsize=(11, 4.6 * len(picks)), squeeze=False)
    for row, (what, i) in enumerate(picks.items()):
        for col, rule in enumerate(("filter", "release")):
            tj.plot_simplex_trajectories(routed[rule], data, [i], ax=axes[row][col],
                                         title=f"{data.ids[i]} ({what}): {rule}")
        L = data.lengths[i]
        print(f"{data.ids[i]} ({what}, answer {'correct' if data.correct[i] else 'incorrect'}): "
              f"scores {np.round(data.scores[i, :L], 3).tolist()}\\n"
              f"   filter actions {f_act[i, :L].tolist()}, release actions {r_act[i, :L].tolist()}")
    fig.tight_layout()
else:
    print("no disagreeing solution of 4-14 steps in this data")"""),
    ("code", """\
print(f"notebook body ran in {time.perf_counter() - T_START:.1f} s")"""),
]

POLICY = [
    ("md", """\
# TRIM-POMDP policy maps and simulated cost–accuracy curves

The exact finite-horizon solver gives the optimal action for every (step, token count, belief)
at once. Here: the continue/regenerate regions on the belief simplex across steps, token counts
and λ (cost per strong token, in reward units with R = 100 for a correct answer); how the
regenerate region grows as λ falls; and cost–accuracy curves of every available policy on the
calibrated simulator (`trimpomdp.sim`, a small run sized for CI)."""),
    ("code", SETUP + """
from trimpomdp import load_model
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver
from trimpomdp.evaluation import trajectories as tj

model = load_model()
LAMS = (0.05, 0.1, 0.15, 0.25, 0.35, 0.5, 0.85)
t0 = time.perf_counter()
policies = {lam: FiniteHorizonSolver().solve(TrimPOMDP(model=model, lam=lam)) for lam in LAMS}
print(f"solved {len(LAMS)} values of λ in {time.perf_counter() - t0:.1f} s "
      f"(p_w = {model.p_weak:.4f}, p_s = {model.p_strong:.4f}, future steps n = {model.future_tokens})")"""),
    ("md", """\
## Policy maps across steps (n = 60 tokens) for three λ

Blue = continue, orange = regenerate. Steps are 1-based. Late steps are more likely to be the
last one (the hazard), where a wrong answer loses the whole reward."""),
    ("code", """\
tj.plot_policy_grid([policies[l] for l in (0.05, 0.25, 0.85)], steps=(0, 4, 9, 19, 29), tokens=(60,));"""),
    ("md", """\
## Across token counts (step 5)

Regenerating a longer step costs λ·n, so the regenerate region shrinks with n."""),
    ("code", """\
tj.plot_policy_grid([policies[l] for l in (0.05, 0.25, 0.85)], steps=(4,), tokens=(15, 30, 60, 120, 240),
                    by="tokens");"""),
    ("md", """\
## The regenerate region grows as λ falls

Left: the regenerate regions of all solved λ on one simplex (step 5, n = 60); the cell checks
on the grid whether each smaller λ's region contains every larger λ's. Right: the share of the
simplex where the policy regenerates, against λ, for several steps."""),
    ("code", """\
fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
tj.plot_regenerate_regions(list(policies.values()), step=4, tokens=60, ax=axes[0])
tj.plot_regenerate_share(list(policies.values()), steps=(0, 4, 9, 19, 29), tokens=60, ax=axes[1])
fig.tight_layout()
shares = {lam: tj.regenerate_share(p, 4, 60) for lam, p in policies.items()}
print("regenerate share at step 5, n = 60:", {k: round(v, 3) for k, v in shares.items()})
lams_sorted = sorted(shares)
print("monotone (share never grows with λ):",
      all(shares[a] >= shares[b] - 1e-12 for a, b in zip(lams_sorted, lams_sorted[1:])))
for t in (0, 4, 9, 19, 29):
    acts = [tj.action_map(policies[l], t, 60, 80)[1] for l in lams_sorted]
    nested = all(np.all(a >= b) for a, b in zip(acts, acts[1:]))
    print(f"step {t + 1:2d}: regenerate regions nested across all λ on the grid: {nested}")"""),
    ("md", """\
## Cost–accuracy on the calibrated simulator

Every policy runs on the *same* simulated problems (common random numbers): TRIM-POMDP under
both beliefs at each λ above, TRIM-Thr, random step routing, query-level routing, and the weak,
strong and oracle-query references. TRIM-Agg / TRIM-Seq need trained checkpoints (PPO training
takes minutes per λ, too slow for CI): every committed `agg_*.json` / `seq_*.json` under
`models/learned/` or `benchmarks/results/ckpt/` is included, otherwise they are left out (the
cell says which).
Dashed hollow markers: the release's *measured* MATH-500 points (Qwen2.5-1.5B → 7B), which the
simulator is calibrated to at the endpoints. Cost c = strong tokens / strong-only tokens."""),
    ("code", """\
from pathlib import Path
from trimpomdp.evaluation.metrics import metrics_row
from trimpomdp.evaluation.report import markdown_table

N_SIM, SEED = 1000, 0
specs = ([f"thr:{k}" for k in (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)]
         + [f"random:{p}" for p in (0.05, 0.1, 0.2, 0.4, 0.7)]
         + [f"query:{k}" for k in (0.5, 0.8, 0.9, 0.95, 0.99)])
ckpts = tj.learned_checkpoints(".")  # only files git tracks: what a fresh checkout has
specs += [f"{p.name[:3]}:{p}" for p in ckpts]
print("learned checkpoints:", [str(p.relative_to(Path.cwd())) for p in ckpts]
      or "none committed: TRIM-Agg / TRIM-Seq left out")
t0 = time.perf_counter()
curves, ref, rows = tj.simulate_policies(list(policies.values()), specs, n=N_SIM, seed=SEED,
                                         model=model)
print(f"simulated {len(rows)} runs × {N_SIM} problems in {time.perf_counter() - t0:.1f} s")
print(f"references: weak {ref.weak_accuracy:.3f}, strong {ref.strong_accuracy:.3f} "
      f"({ref.strong_tokens:.0f} strong tokens/problem), oracle {ref.oracle_accuracy:.3f}")
se = max(r["accuracy_se"] for r in rows)
fig, ax = plt.subplots(figsize=(9, 6))
from trimpomdp.evaluation.plots import plot_cost_accuracy
plot_cost_accuracy(curves, ref, ax=ax, measured=tj.release_measured_curves(),
                   title=f"simulated MATH-500 (n = {N_SIM} problems, seed {SEED}); "
                         f"accuracy s.e. ≤ {100 * se:.1f} pt")
ax.set_xlim(-0.02, 1.05);"""),
    ("code", """\
table = [metrics_row(name, sorted(pts, key=lambda p: p.strong_tokens), ref)
         for name, pts in curves.items()]
display(Markdown(markdown_table(table)
                 + "\\n\\nCPT = cheapest measured point reaching the PGR target (— = not reached);"
                   " ΔIBC mean over the curve's points / at its best point."))"""),
    ("code", """\
print(f"notebook body ran in {time.perf_counter() - T_START:.1f} s")"""),
]


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_markdown_cell(s) if k == "md" else new_code_cell(s)
                             for k, s in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


NOTEBOOKS = {"belief_trajectories.ipynb": BELIEF, "policy_maps.ipynb": POLICY}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-exec", action="store_true")
    ap.add_argument("names", nargs="*", help="notebook file names (default: all)")
    args = ap.parse_args(argv)
    from nbclient import NotebookClient

    for name in args.names or NOTEBOOKS:
        nb = build(NOTEBOOKS[name])
        if not args.no_exec:
            t0 = time.perf_counter()
            NotebookClient(nb, timeout=600, kernel_name="python3",
                           resources={"metadata": {"path": str(HERE.parent)}}).execute()
            print(f"{name}: executed in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        nbformat.write(nb, HERE / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
