"""Write ``step_assessment.ipynb`` from its cell sources and execute it in place (issue 17).

    python notebooks/build_step_assessment.py            # build + execute, outputs saved
    python notebooks/build_step_assessment.py --no-exec  # only write the cells

Same conventions as ``build_notebooks.py`` (nbclient, kernel ``python3``, the repository root as
working directory). The code it calls lives in ``trimpomdp.evaluation.assess`` and
``trimpomdp.evaluation.score_model``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

CELLS = [
    ("md", """\
# Step-level assessment: does the TRIM belief beat the minimum score?

Measures how well a TRIM model's belief P(S0) ("every step so far is correct") predicts
correctness, and compares it with baselines fitted on the same training problems (issue 17;
full tables in `docs/assessment.md`, `benchmarks/results/assess_real.md`).

* **Real data**: Qwen2.5-Math-PRM-7B scores of Qwen2.5-7B-Instruct solutions to MATH-500
  (StrictPRMBench, outcomes only), read from `../shared/data/prm_scores_strictprmbench/` when
  present, otherwise from the bundled 600-solution sample. The split is by problem: 250 / 250
  on the full dump (half / half on the sample), `numpy.random.default_rng(0)`.
* **Models**: the bundled release model; today's EM model (`fit-em`); the calibrated-score EM
  model (quantile-transformed scores, each step emits its current score, learned
  P(correct | error)), also with score densities that depend on the step's token count.
* **Baselines**: Platt-scaled min and last score; a logistic regression on (min, last, mean,
  product, steps, tokens).
* **Step labels**: the real files have none, so the per-step and first-error figures use the
  calibrated simulator's weak drafts with their true first errors."""),
    ("code", """\
%matplotlib inline
import time
import warnings
from pathlib import Path
import numpy as np
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

warnings.filterwarnings("ignore", message="IProgress not found")
plt.rcParams.update({"figure.dpi": 90, "savefig.dpi": 90})
T_START = time.perf_counter()

from trimpomdp import load_model
from trimpomdp.builders import em_trim_model
from trimpomdp.observation.em import LatentClassObservationModel
from trimpomdp.resources import resource_path, shared_data_dir
from trimpomdp.evaluation import assess as A
from trimpomdp.evaluation.score_model import CalibratedScoreModel

shared = shared_data_dir()
dump = None if shared is None else shared / "prm_scores_strictprmbench" / "math500_bon32_prm_step_scores.jsonl.gz"
path = dump if dump is not None and dump.exists() else resource_path(
    "data", "strictprmbench_sample/math500_qwen2.5-7b_qwen-prm_sample.jsonl")
data = A.load_step_traces([path])
n_prob = len(np.unique(data.problems()))
tr, te = A.split_problems(data, min(250, n_prob // 2), seed=0)
train, test = data.subset(tr), data.subset(te)
print(f"read {Path(path).name}: {data.n:,} solutions of {n_prob} problems; "
      f"train {train.n:,} / test {test.n:,} solutions")"""),
    ("md", """\
## Why the release grid loses resolution

Most PRM step scores are close to 1. On the release's 0.05 grid, nearly every step of a correct
solution and most steps of a wrong one land in the top bin. The minimum score keeps the full
resolution. The calibrated model first maps each score through the empirical CDF of the
training scores, which spreads the scores evenly over the grid."""),
    ("code", """\
s = train.scores[train.mask()]
print(f"share of training steps with score > 0.95: {np.mean(s > 0.95):.1%}, > 0.99: {np.mean(s > 0.99):.1%}")
release = load_model()
est = LatentClassObservationModel(random_state=0).fit(train.sequences(), train.correct.tolist())
em_today = em_trim_model(est, release, source="train split")
new = CalibratedScoreModel(learn_epsilon=True).fit(train)
new_tok = CalibratedScoreModel(learn_epsilon=True, token_bins=4).fit(train)
fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
ax[0].hist(s, bins=np.linspace(0, 1, 21), color="tab:blue")
ax[0].set_title("raw step scores on the 0.05 grid", fontsize=9)
ax[1].hist(new.transform_.transform(s), bins=np.linspace(0, 1, 41), color="tab:orange")
ax[1].set_title("quantile-transformed scores on the 0.025 grid", fontsize=9)
for a in ax:
    a.set_xlabel("score"); a.set_ylabel("steps")
fig.tight_layout()"""),
    ("md", """\
## Held out: final P(correct) against the baselines

Intervals: 100 problem resamples, paired. "Δ best" is the paired difference to the best
baseline by held-out AUROC."""),
    ("code", """\
res = A.heldout_comparison(train, test, {"release model": release, "EM model (today)": em_today},
                           extra={"calibrated EM (learned ε)": new.predict_correct(test),
                                  "calibrated EM, token-dependent (learned ε)":
                                      new_tok.predict_correct(test)},
                           n_boot=100, seed=0)
def ci(v):
    return f"{v['value']:.4f} [{v['lo']:.4f}, {v['hi']:.4f}]"
rows = ["| score | AUROC | Δ best baseline | Brier | log-loss | ECE |", "|---|---|---|---|---|---|"]
for name, m in res["scores"].items():
    rows.append(f"| {name} | {ci(m['auroc'])} | {ci(m['auroc_minus_best_baseline'])} | "
                f"{m['brier']['value']:.4f} | {m['log_loss']['value']:.4f} | {m['ece']['value']:.4f} |")
display(Markdown(f"best baseline: **{res['best_baseline']}**\\n\\n" + "\\n".join(rows)))
ll = dict(res["score_loglik"], **{"calibrated EM (learned ε)": new.step_log_likelihood(test),
                                  "token-dependent": new_tok.step_log_likelihood(test)})
print("held-out log-likelihood per step of the raw score sequence (nats):",
      {k: round(v, 3) for k, v in ll.items()})"""),
    ("code", """\
base = A.SolutionBaselines().fit(train).predict(test)
rows_ = np.arange(test.n)
probs = {"release model": A.model_step_probabilities(release, test, lam=None)[0][rows_, test.lengths - 1],
         "calibrated EM": new.predict_correct(test), "logistic": base["logistic"]}
fig, axes = plt.subplots(1, 3, figsize=(12, 3.9))
for ax, (name, p) in zip(axes, probs.items()):
    A.plot_reliability(test.correct, p, ax=ax, label=name, title=f"reliability: {name}")
fig.tight_layout()"""),
    ("md", """\
## Step level with true labels (calibrated simulator)

1,000 simulated problems (seed 0): the weak model's drafts replayed with every step kept. The
first errors are known. `assess` measures the per-step AUROC and calibration of P(S0), and
first-error targeting: the λ = 0.25 policy's regenerate decisions against TRIM-Thr with the
same number of regenerations."""),
    ("code", """\
from trimpomdp.sim import load_simulator

sim_data = A.scenario_traces(load_simulator().scenario(1000, 0))
a = A.assess(release, sim_data, lam=0.25, n_boot=100, seed=0)
st, tg = a.summary["step"], a.summary["targeting"]
display(Markdown("\\n".join([
    "| | value [95% CI] |", "|---|---|",
    f"| step AUROC of P(S0) | {ci(st['auroc'])} |",
    f"| step AUROC of min score so far | {ci(st['auroc_min_so_far'])} |",
    f"| step Brier / ECE | {st['brier']['value']:.4f} / {st['ece']['value']:.4f} |",
    f"| regenerations (λ = 0.25) | {tg['regenerations']['value']:.0f} |",
    f"| precision at the first error: POMDP / TRIM-Thr | {ci(tg['pomdp_precision'])} / {ci(tg['thr_precision'])} |",
    f"| recall of first errors: POMDP / TRIM-Thr | {ci(tg['pomdp_recall'])} / {ci(tg['thr_recall'])} |",
    f"| first regeneration before the first error | {ci(tg['pomdp_first_before'])} |"])))
y, p = a.reliability_data()["step"]
A.plot_reliability(y, p, label="release model", title="P(S0) per step vs prefix correct (simulated)");"""),
    ("md", """\
## All six held-out sets (committed benchmark results)

From `benchmarks/results/assess_real.json` (`python benchmarks/assess_real.py`, 200 resamples):
held-out AUROC of each score on MATH-500 and on GSM8K with each of its five PRMs."""),
    ("code", """\
import json
doc = json.loads(Path("benchmarks/results/assess_real.json").read_text())
names = list(doc["real"][0]["scores"])
fig, ax = plt.subplots(figsize=(9, 3.8))
x = np.arange(len(doc["real"]))
w = 0.8 / len(names)
for k, name in enumerate(names):
    v = [r["scores"][name]["auroc"]["value"] for r in doc["real"]]
    ax.bar(x + k * w, v, w, label=name)
ax.set_xticks(x + 0.4 - w / 2, [f"{r['dataset']}\\n{r['prm']}" for r in doc["real"]], fontsize=7)
ax.set_ylim(0.6, 0.97); ax.set_ylabel("held-out AUROC"); ax.grid(alpha=0.3, axis="y")
ax.legend(fontsize=6, ncol=3, loc="upper right")
ax.set_title("final P(correct): TRIM models vs baselines (250 / 250 problem split)", fontsize=9)
fig.tight_layout()
print(f"notebook body ran in {time.perf_counter() - T_START:.1f} s")"""),
]


def build() -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_markdown_cell(s) if k == "md" else new_code_cell(s)
                             for k, s in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-exec", action="store_true")
    args = ap.parse_args(argv)
    from nbclient import NotebookClient

    nb = build()
    if not args.no_exec:
        t0 = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(HERE.parent)}}).execute()
        print(f"step_assessment.ipynb: executed in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
    nbformat.write(nb, HERE / "step_assessment.ipynb")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
