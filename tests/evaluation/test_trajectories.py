"""Belief tracking along score sequences: vs the StepRouter loop, by hand, and invariants."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from trimpomdp.belief import BinnedDensity, InterpolatedDensity
from trimpomdp.data.schema import StepTrace
from trimpomdp.errors import InputError
from trimpomdp.evaluation import trajectories as tj
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.resources import resource_path
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver


@pytest.fixture(scope="module")
def sample():
    return tj.load_scores(resource_path("data", tj.SAMPLE))


@pytest.fixture(scope="module")
def policy(default_model):
    return FiniteHorizonSolver().solve(TrimPOMDP(model=default_model, lam=0.25))


def _table(seqs, correct):
    traces = [StepTrace(problem_id=f"p{i}", scores=tuple(s), tokens=tuple([40] * len(s)),
                        correct=c) for i, (s, c) in enumerate(zip(seqs, correct))]
    return tj.ScoreTable.from_traces(traces, source="hand")


# --- AUROC -----------------------------------------------------------------------------------
def test_auroc_equals_hand_count_of_ordered_pairs():
    # positives 0.9, 0.4, 0.8 vs negatives 0.5, 0.1: pairs won 1+1, 0+1, 1+1 = 5 of 6
    assert tj.auroc([1, 1, 0, 0, 1], [0.9, 0.4, 0.5, 0.1, 0.8]) == pytest.approx(5 / 6)
    # a tie counts one half: positive 0.5 vs negatives 0.5, 0.2 -> (0.5 + 1) / 2
    assert tj.auroc([1, 0, 0], [0.5, 0.5, 0.2]) == pytest.approx(0.75)
    # reversing the score mirrors the AUROC
    y, s = [1, 0, 1, 0, 1, 0], [0.3, 0.2, 0.9, 0.4, 0.5, 0.8]
    assert tj.auroc(y, s) + tj.auroc(y, [-v for v in s]) == pytest.approx(1.0)


def test_auroc_rejects_one_class_and_nan():
    with pytest.raises(InputError, match="both correct and incorrect"):
        tj.auroc([1, 1], [0.2, 0.3])
    with pytest.raises(InputError, match="finite"):
        tj.auroc([1, 0], [np.nan, 0.3])


def test_auroc_bootstrap_interval_and_paired_difference():
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.6
    good = y + rng.normal(0, 0.8, 400)
    noise = rng.random(400)
    rows = {r["score"]: r for r in tj.auroc_bootstrap(y, {"good": good, "same": good.copy(),
                                                          "noise": noise},
                                                      reference="good", n_boot=100)}
    g = rows["good"]
    assert g["lo"] <= g["auroc"] <= g["hi"] and g["hi"] - g["lo"] < 0.15
    assert g["auroc"] == tj.auroc(y, good)
    assert rows["same"]["diff"] == 0 and rows["same"]["diff_lo"] == rows["same"]["diff_hi"] == 0
    assert rows["noise"]["diff_hi"] < 0  # clearly worse than the informative score
    with pytest.raises(InputError, match="reference"):
        tj.auroc_bootstrap(y, {"good": good}, reference="min")
    # resampling whole groups: 40 groups of 10 identical copies -> wider interval than by copy
    yy, ss = np.repeat(y[:40], 10), np.repeat(good[:40], 10)
    grp = np.repeat(np.arange(40), 10)
    by_copy = tj.auroc_bootstrap(yy, {"s": ss}, n_boot=100)[0]
    by_group = tj.auroc_bootstrap(yy, {"s": ss}, groups=grp, n_boot=100)[0]
    assert by_group["auroc"] == by_copy["auroc"]
    assert by_group["hi"] - by_group["lo"] > 2 * (by_copy["hi"] - by_copy["lo"])


def test_auroc_table_min_score_on_hand_made_set():
    data = _table([[0.9, 0.95], [0.9, 0.2, 0.8], [0.99], [0.5, 0.6]], [True, False, True, False])
    rows = {r["score"]: r["auroc"] for r in tj.auroc_table(data, {"min": data.min_score()})}
    # min scores 0.9, 0.2, 0.99, 0.5: both positives above both negatives
    assert rows["min"] == 1.0
    assert data.last_score().tolist() == [0.95, 0.8, 0.99, 0.6]


# --- tracking ----------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", ["filter", "release"])
def test_vectorised_tracking_equals_step_router_loop(sample, policy, rule):
    vec = tj.track(sample, policy, rule=rule)
    ref = tj.track_with_router(sample, policy, rule=rule)
    assert np.array_equal(vec.action, ref.action)
    assert np.array_equal(vec.consulted, ref.consulted)
    assert np.array_equal(np.isnan(vec.belief), np.isnan(ref.belief))
    assert np.nanmax(np.abs(vec.belief - ref.belief)) < 1e-12
    assert np.nanmax(np.abs(vec.q - ref.q)) < 1e-9
    assert (vec.action == 1).sum() > 0 and (vec.action == 0).sum() > 0  # both actions occur


@pytest.mark.parametrize("mode", ["router", "passive"])
@pytest.mark.parametrize("rule", ["filter", "release"])
def test_belief_rows_are_distributions_only_on_tracked_steps(sample, policy, rule, mode):
    tr = tj.track(sample, policy, rule=rule, mode=mode)
    steps = np.arange(sample.scores.shape[1])[None, :]
    on = steps < tr.tracked[:, None]
    b = tr.belief
    assert np.allclose(b[on].sum(axis=1), 1.0, atol=1e-12)
    assert np.all(b[on] >= 0)
    assert np.all(np.isnan(b[~on]))
    assert np.all(tr.action[~on] == -1)
    if mode == "passive":
        assert np.array_equal(tr.tracked, sample.lengths)  # the whole solution
    else:
        assert np.array_equal(tr.tracked, np.minimum(sample.lengths, 30))


def test_filter_step_by_step_by_hand(default_model):
    m = default_model
    data = _table([[0.95, 0.3, 0.8]], [False])
    tr = tj.track(data, model=m, mode="passive")
    dens = InterpolatedDensity(m.obs_probs, m.bin_size)
    pw = m.p_weak
    b = np.array([pw, 0.0, 1 - pw]) * dens(1.0, 0.95)
    b /= b.sum()
    assert np.allclose(tr.belief[0, 0], b, atol=1e-14)
    for t, (mp, s) in enumerate([(0.95, 0.3), (0.3, 0.8)], start=1):
        pred = np.array([b[0] * pw, b[1] + b[2], b[0] * (1 - pw)])  # continue
        b = pred * dens(mp, s)
        b /= b.sum()
        assert np.allclose(tr.belief[0, t], b, atol=1e-14)
    rel = tj.track(data, model=m, rule="release", mode="passive")
    lik = np.array(dens(0.3, 0.8))
    assert np.allclose(rel.belief[0, 2], lik / lik.sum(), atol=1e-14)


def test_filter_and_release_must_agree_when_strong_tokens_are_prohibitive(sample, default_model):
    # λ so large that a regenerated step (>= 1 token) costs more than the whole reward R = 100:
    # never regenerate, whatever the belief; the rules then agree on every step of every solution.
    # (λ = 10 is not enough: a 1-3 token step near the end is still worth regenerating.)
    pol = FiniteHorizonSolver().solve(TrimPOMDP(model=default_model, lam=1000.0))
    f = tj.track(sample, pol, rule="filter")
    r = tj.track(sample, pol, rule="release", gate=None)
    d = tj.disagreement(f, r)
    assert d.n_solutions == 0 and d.n_steps == 0
    assert d.n_compared_steps == int(np.minimum(sample.lengths, 30).sum())
    assert np.all(f.action[f.action >= 0] == 0)


def test_release_beliefs_match_between_modes_until_the_first_regeneration(sample, policy):
    routed = tj.track(sample, policy, rule="release")
    passive = tj.track(sample, policy, rule="release", mode="passive")
    first = routed.first_regeneration()
    upto = np.where(first >= 0, first + 1, routed.tracked)  # the regenerated step itself too
    on = np.arange(sample.scores.shape[1])[None, :] < upto[:, None]
    assert np.array_equal(routed.belief[on], passive.belief[on])
    assert np.array_equal(routed.action[on], passive.action[on])


def test_disagreement_counts_hand_made():
    def bt(actions):
        a = np.array(actions, dtype=np.int8)
        n, T = a.shape
        return tj.BeliefTracks(belief=np.full((n, T, 3), 1 / 3), action=a,
                               consulted=a >= 0, q=np.zeros((n, T, 2)),
                               fallback=np.zeros((n, T), bool), tracked=(a >= 0).sum(axis=1),
                               rule="filter", mode="router", lam=0.1)

    a = bt([[0, 1, 0], [0, 0, -1], [1, 1, 1]])
    b = bt([[0, 0, 1], [0, 0, -1], [1, 1, -1]])
    d = tj.disagreement(a, b)
    assert d.any_step.tolist() == [True, False, False]
    assert d.first_step.tolist() == [1, -1, -1]
    assert (d.n_solutions, d.n_steps, d.n_compared_steps) == (1, 2, 7)
    assert a.regenerations().tolist() == [1, 0, 3]
    assert a.first_regeneration().tolist() == [1, -1, 0]


def test_router_mode_needs_a_policy_and_choices_are_checked(sample, default_model):
    with pytest.raises(InputError, match="needs a solved policy"):
        tj.track(sample, model=default_model)
    with pytest.raises(InputError, match="'rule' parameter"):
        tj.track(sample, model=default_model, rule="bayes", mode="passive")


# --- vectorised building blocks ------------------------------------------------------------
@pytest.mark.parametrize("kind", ["continuous", "binned"])
def test_density_batch_equals_scalar_density(default_model, kind):
    m = default_model
    ref = (InterpolatedDensity if kind == "continuous" else BinnedDensity)(m.obs_probs,
                                                                           m.bin_size)
    rng = np.random.default_rng(3)
    pts = np.vstack([rng.random((300, 2)), [[0, 0], [1, 1], [0, 1], [0.025, 0.975],
                                            [0.05, 0.5], [0.999, 0.001]]])
    got = tj.density_batch(m, pts[:, 0], pts[:, 1], kind)
    want = np.array([ref(x, y) for x, y in pts])
    assert np.allclose(got, want, rtol=0, atol=1e-15)


def test_q_batch_equals_policy_q_values(policy):
    rng = np.random.default_rng(5)
    B = rng.dirichlet([1, 1, 1], 200)
    n = rng.integers(1, 300, 200)
    fin = rng.random(200) < 0.3
    for step in (0, 7, 29):
        got = tj.q_batch(policy, step, n, B, fin)
        want = np.array([policy.q_values(step, int(k), b, final=bool(f))
                         for k, b, f in zip(n, B, fin)])
        assert np.allclose(got, want, rtol=0, atol=1e-9)


def test_regenerate_region_shrinks_as_lambda_grows(default_model):
    pols = [FiniteHorizonSolver().solve(TrimPOMDP(model=default_model, lam=lam))
            for lam in (0.05, 0.25, 0.85)]
    shares = [tj.regenerate_share(p, 4, 60, resolution=30) for p in pols]
    assert shares[0] > shares[1] > shares[2]
    assert 0.0 <= shares[2] < 0.2 and shares[0] > 0.5


# --- data ------------------------------------------------------------------------------------
def test_score_table_pads_and_subsets():
    data = _table([[0.9, 0.2, 0.7], [0.6]], [False, True])
    assert data.scores.shape == (2, 3) and np.isnan(data.scores[1, 1:]).all()
    assert data.tokens[1].tolist() == [40, 0, 0]
    assert data.n_steps == 4 and data.min_score().tolist() == [0.2, 0.6]
    sub = data.subset([1])
    assert sub.scores.shape == (1, 1) and sub.ids == ("p1",)
    with pytest.raises(InputError, match="correctness"):
        tj.ScoreTable.from_traces([StepTrace(problem_id="x", scores=(0.5,))])


def test_load_scores_reads_the_bundled_sample(sample):
    assert sample.n == 600 and "strictprmbench_sample" in sample.source
    assert 0 < sample.correct.mean() < 1


def test_load_scores_prefers_the_full_dump(shared_data):
    if not (shared_data / tj.DUMP).exists():
        pytest.skip("the StrictPRMBench dump is absent from ../shared/data")
    data = tj.load_scores()
    assert data.n == 16000 and data.n_steps == 129710 and data.source.endswith(".jsonl.gz")


# --- simulator and figures ---------------------------------------------------------------------
def test_simulate_policies_uses_common_random_numbers(policy):
    from trimpomdp.routing.spec import make_router
    from trimpomdp.sim import load_simulator, simulate

    sim = load_simulator()
    curves, ref, rows = tj.simulate_policies([policy], ["thr:0.5"], n=60, seed=4, simulator=sim)
    assert set(curves) == {"TRIM-POMDP (Bayes filter)", "TRIM-POMDP (release rule)", "thr"}
    direct = simulate(make_router("thr:0.5", record=False), sim.scenario(60, 4))
    assert curves["thr"][0].accuracy == direct.accuracy
    assert curves["thr"][0].strong_tokens == direct.mean_strong_tokens
    assert ref.strong_tokens == max(r["mean_strong_tokens"] for r in rows)
    assert len(rows) == 2 + 1 + 3


def test_figures_have_labels_and_legends(sample, policy):
    import matplotlib.pyplot as plt

    routed = {r: tj.track(sample, policy, rule=r) for r in ("filter", "release")}
    ex = tj.pick_examples(sample, k=2)
    idx = np.concatenate([ex["correct"], ex["incorrect"]])
    assert len(idx) == 4 and sample.correct[ex["correct"]].all()
    ax = tj.plot_roc(sample.correct, {"min": sample.min_score()})
    assert ax.get_xlabel() and ax.get_ylabel() and "AUROC" in ax.get_legend().texts[0].get_text()
    ax = tj.plot_score_paths(routed["filter"], sample, idx)
    assert ax.get_xlabel() == "step (1-based)" and ax.get_legend() is not None
    ax = tj.plot_simplex_trajectories(routed["release"], sample, idx)
    assert ax.get_legend() is not None
    ax = tj.plot_filter_vs_release(routed["filter"], routed["release"])
    assert "P(S0)" in ax.get_xlabel() and "P(S0)" in ax.get_ylabel()
    ax = tj.plot_regeneration_profile(routed, sample)
    assert len(ax.get_lines()) == 4
    fig = tj.plot_policy_grid([policy], steps=(0, 9), tokens=(60,))
    assert len(fig.axes) == 2
    ax = tj.plot_regenerate_share([policy], steps=(0,), tokens=60)
    assert "λ" in ax.get_xlabel()
    plt.close("all")


def test_release_measured_curves_are_the_bundled_points():
    curves = tj.release_measured_curves()
    thr = {p.param: p for p in curves["release TRIM-Thr"]}
    assert thr[0.0].accuracy == 0.364 and thr[0.0].strong_tokens == 0.0
    assert thr[0.05].accuracy == 0.508
    assert {p.param for p in curves["release TRIM-POMDP"]} >= {0.15, 0.25, 0.35}


def test_learned_checkpoints_keeps_only_tracked_files(tmp_path):
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    d = tmp_path / "models" / "learned"
    d.mkdir(parents=True)
    for name in ("agg_lam0.1.json", "seq_lam0.1.json", "notes.json"):
        (d / name).write_text("{}")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "models/learned/agg_lam0.1.json", "models/learned/notes.json"],
                   cwd=tmp_path, check=True)
    assert [p.name for p in tj.learned_checkpoints(tmp_path)] == ["agg_lam0.1.json"]
    assert [p.name for p in tj.learned_checkpoints(tmp_path, tracked_only=False)] == \
        ["agg_lam0.1.json", "seq_lam0.1.json"]
