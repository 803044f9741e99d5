"""The score transform stored in a TRIM model (issue 17 item 3): every grid density applies it, so
the filter, the release rule, the batched replay, the simulator and the CLI all see g(score).

References: an identity transform changes nothing bit for bit; a real transform g on raw scores
gives exactly what the same table without a transform gives on g(scores) (beliefs, actions,
simulated runs); the exact solver never sees g (same alpha vectors).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import pickle

import numpy as np
import pytest

from trimpomdp.belief import BayesFilterUpdater, SingleObservationUpdater, make_density
from trimpomdp.cli.main import main
from trimpomdp.data.schema import StepTrace
from trimpomdp.data.traces import write_traces
from trimpomdp.errors import InputError
from trimpomdp.evaluation.assess import StepData, model_step_probabilities
from trimpomdp.evaluation.tracking import track
from trimpomdp.model import TrimModel, load_model
from trimpomdp.observation.grid import ObsTable, density_batch
from trimpomdp.observation.transform import ScoreTransform
from trimpomdp.policies.trim_policy import TrimPolicy, model_fingerprint
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.routing.spec import PolicySpec, pomdp_router
from trimpomdp.sim import load_simulator, simulate
from trimpomdp.sim.engine import rollout
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver
from trimpomdp.tuning import pomdp_act

IDENTITY = ScoreTransform((0.0, 1.0), (0.0, 1.0))
SCORE_ARRAYS = ("sc_ok", "sc_err", "sc_post", "ss_ok", "ss_err", "ss_post")


def _g(seed: int = 0, n: int = 30) -> ScoreTransform:
    """A random monotone map whose knots crowd near 1, as real PRM scores do."""
    rng = np.random.default_rng(seed)
    k = np.unique(np.r_[0.0, rng.random(n) ** 0.2, 1.0])
    v = np.r_[0.0, np.sort(rng.random(k.size - 2)), 1.0]
    return ScoreTransform(tuple(k.tolist()), tuple(v.tolist()))


def _traces(n: int = 40, seed: int = 1) -> StepData:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        L = int(rng.integers(1, 9))
        s = np.where(rng.random(L) < 0.3, 1.0, 1 - rng.beta(1, 8, L))
        out.append(StepTrace(problem_id=f"q{i // 2}#{i % 2}", scores=tuple(map(float, s)),
                             tokens=tuple(int(x) for x in rng.integers(5, 120, L)),
                             correct=bool(rng.random() < 0.6)))
    return StepData.from_traces(out)


def _filter_path(up, scores, actions):
    b, out = None, []
    mn = 1.0
    for t, s in enumerate(scores):
        b = up.update(b, None if t == 0 else actions[t - 1], (mn, s))
        out.append(b.probs)
        mn = min(mn, s)
    return np.array(out)


def _g_scenario(sc, g):
    return dataclasses.replace(sc, **{k: g.batch(getattr(sc, k)) for k in SCORE_ARRAYS})


# ---- the transform itself --------------------------------------------------------------------
def test_scalar_and_batched_transform_are_the_same_numbers():
    g = _g()
    rng = np.random.default_rng(3)
    x = np.r_[rng.random(3000), np.array(g.knots), 0.0, 1.0, -0.5, 1.5, np.nan]
    b = g.batch(x)
    s = np.array([g(float(v)) for v in x])
    np.testing.assert_array_equal(b, s)  # bit for bit, NaN included
    assert np.all(np.diff(g.batch(np.linspace(0, 1, 5001))) >= 0)
    np.testing.assert_array_equal(g.batch(np.array(g.knots)), np.array(g.levels))
    u = rng.random(500)
    np.testing.assert_allclose(g.batch(g.inverse_batch(u)), u, atol=1e-12)
    # identity is exact on [0, 1]
    np.testing.assert_array_equal(IDENTITY.batch(x[:3000]), x[:3000])


@pytest.mark.parametrize("doc,field", [
    ({"knots": [0, 0.5, 0.4, 1], "levels": [0, 0.2, 0.3, 1]}, "score_transform.knots"),
    ({"knots": [0.1, 1], "levels": [0, 1]}, "score_transform.knots"),
    ({"knots": [0, 0.5, 1], "levels": [0, 0.6, 0.5]}, "score_transform.levels"),
    ({"knots": [0, 1], "levels": [0, 0.5, 1]}, "score_transform"),
    ({"knots": [0, 1]}, "score_transform.levels"),
    ({"kind": "spline", "knots": [0, 1], "levels": [0, 1]}, "score_transform.kind"),
    ([0, 1], "score_transform"),
])
def test_bad_transforms_name_the_field(doc, field):
    with pytest.raises(InputError) as exc:
        ScoreTransform.from_dict(doc, "m.json")
    assert exc.value.field == field and exc.value.path == "m.json"


def test_a_bad_transform_in_a_model_file_exits_2_with_one_line(tmp_path, capsys):
    doc = load_model().replace(score_transform=_g()).to_dict()
    doc["score_transform"]["levels"][3] = 2.0
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    assert main(["solve", "--model", str(path), "--lambda", "0.3", "--out",
                 str(tmp_path / "p.json"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "bad.json" in err and "score_transform.levels" in err, err
    assert not (tmp_path / "p.json").exists()


# ---- old models, and an identity transform, are unchanged ------------------------------------
def test_old_model_files_load_unchanged():
    m = load_model()
    assert m.score_transform is None and type(m.obs_probs) is np.ndarray
    assert "score_transform" not in m.to_dict()
    assert type(make_density(m, "continuous")).__name__ == "InterpolatedDensity"


@pytest.mark.parametrize("density", ["binned", "continuous"])
def test_identity_transform_gives_bit_identical_beliefs_and_policies(density):
    m = load_model()
    mi = m.replace(score_transform=IDENTITY)
    assert model_fingerprint(mi) != model_fingerprint(m)
    d = _traces()
    rng = np.random.default_rng(5)
    for i in range(d.n):
        s = d.scores[i, :d.lengths[i]].tolist()
        a = rng.integers(0, 2, len(s)).tolist()
        for make in (BayesFilterUpdater.from_model,
                     lambda mm, dd: SingleObservationUpdater.from_model(mm, dd, gate=None)):
            np.testing.assert_array_equal(_filter_path(make(m, density), s, a),
                                          _filter_path(make(mi, density), s, a))
    p0, a0 = model_step_probabilities(m, d, lam=0.3, density=density)
    p1, a1 = model_step_probabilities(mi, d, lam=0.3, density=density)
    np.testing.assert_array_equal(p0, p1)
    np.testing.assert_array_equal(a0, a1)
    pa = FiniteHorizonSolver().solve(TrimPOMDP(model=m, lam=0.3))
    pb = FiniteHorizonSolver().solve(TrimPOMDP(model=mi, lam=0.3))
    for la, lb in zip(pa.continue_lines + pa.regenerate_lines,
                      pb.continue_lines + pb.regenerate_lines, strict=True):
        np.testing.assert_array_equal(la[0], lb[0])
        np.testing.assert_array_equal(la[1], lb[1])


# ---- a real transform: raw scores through g == the plain table on g(scores) ------------------
@pytest.mark.parametrize("density", ["binned", "continuous"])
def test_transformed_densities_equal_the_plain_table_on_transformed_scores(density):
    m = load_model()
    g = _g()
    mt = m.replace(score_transform=g)
    assert isinstance(mt.obs_probs, ObsTable) and mt.obs_probs.score_transform is g
    rng = np.random.default_rng(2)
    x, y = rng.random(400), rng.random(400)
    want = density_batch(m.obs_probs, m.bin_size, g.batch(x), g.batch(y), density)
    np.testing.assert_array_equal(density_batch(mt.obs_probs, mt.bin_size, x, y, density), want)
    f = make_density(mt, density)
    np.testing.assert_array_equal(np.array([f(float(a), float(b)) for a, b in zip(x, y)]), want)
    # and it differs from ignoring g
    assert not np.allclose(density_batch(m.obs_probs, m.bin_size, x, y, density), want)


def test_filter_and_replay_apply_the_transform():
    m, g = load_model(), _g()
    mt = m.replace(score_transform=g)
    d = _traces()
    dg = dataclasses.replace(d, scores=np.where(d.mask(), g.batch(np.nan_to_num(d.scores)),
                                                np.nan))
    rng = np.random.default_rng(4)
    for i in range(d.n):
        s = d.scores[i, :d.lengths[i]].tolist()
        a = rng.integers(0, 2, len(s)).tolist()
        np.testing.assert_array_equal(
            _filter_path(BayesFilterUpdater.from_model(mt, "continuous"), s, a),
            _filter_path(BayesFilterUpdater.from_model(m, "continuous"), g.batch(s).tolist(), a))
    pol = FiniteHorizonSolver().solve(TrimPOMDP(model=mt, lam=0.3))
    pol0 = FiniteHorizonSolver().solve(TrimPOMDP(model=m, lam=0.3))
    for rule in ("filter", "release"):
        t1 = track(d.table(), pol, model=mt, rule=rule, mode="router")
        t0 = track(dg.table(), pol0, model=m, rule=rule, mode="router")
        np.testing.assert_array_equal(np.nan_to_num(t1.belief, nan=-1),
                                      np.nan_to_num(t0.belief, nan=-1))
        np.testing.assert_array_equal(t1.action, t0.action)


def test_simulator_and_vectorised_rule_see_the_transform():
    m, g = load_model(), _g(7)
    mt = m.replace(score_transform=g)
    pol = FiniteHorizonSolver().solve(TrimPOMDP(model=mt, lam=0.2))
    pol0 = FiniteHorizonSolver().solve(TrimPOMDP(model=m, lam=0.2))
    for la, lb in zip(pol.continue_lines, pol0.continue_lines, strict=True):
        np.testing.assert_array_equal(la[0], lb[0])  # the solver works on bins only
    sc = load_simulator().scenario(150, 2)
    sg = _g_scenario(sc, g)
    for belief in ("filter", "release"):
        r1 = simulate(pomdp_router(pol, belief=belief, record=False), sc)
        r0 = simulate(pomdp_router(pol0, belief=belief, record=False), sg)
        assert r1.summary() == r0.summary()
        a1, a0 = pomdp_act(pol, belief=belief), pomdp_act(pol0, belief=belief)
        v1 = rollout(sc, a1, observe=a1.observe)  # strong scores booked, as simulate() does
        v0 = rollout(sg, a0, observe=a0.observe)
        np.testing.assert_array_equal(v1.correct, v0.correct)
        np.testing.assert_array_equal(v1.strong_tokens, v0.strong_tokens)
        drop = {"policy"}  # vectorised rule == per-step router, up to the name
        assert {k: v for k, v in v1.summary().items() if k not in drop} == \
            {k: v for k, v in r1.summary().items() if k not in drop}
    plain = simulate(pomdp_router(pol0, belief="filter", record=False), sc)
    assert plain.summary() != simulate(pomdp_router(pol, belief="filter", record=False),
                                       sc).summary()


# ---- persistence and the command line --------------------------------------------------------
def test_model_and_policy_round_trip_keep_the_transform(tmp_path):
    mt = load_model().replace(score_transform=_g())
    path = tmp_path / "m.json"
    mt.save(path)
    back = load_model(path)
    assert back.score_transform is not None
    assert back.score_transform.knots == mt.score_transform.knots
    assert back.score_transform.levels == mt.score_transform.levels
    assert model_fingerprint(back) == model_fingerprint(mt)
    for clone in (pickle.loads(pickle.dumps(mt)), copy.deepcopy(mt)):
        assert clone.obs_probs.score_transform.knots == mt.score_transform.knots
    pol = FiniteHorizonSolver().solve(TrimPOMDP(model=mt, lam=0.3))
    pol.save(tmp_path / "p.json")
    again = TrimPolicy.load(tmp_path / "p.json")
    assert again.model.score_transform.levels == mt.score_transform.levels
    x = np.linspace(0, 1, 57)
    np.testing.assert_array_equal(density_batch(again.model.obs_probs, again.model.bin_size, x,
                                                x[::-1]),
                                  density_batch(mt.obs_probs, mt.bin_size, x, x[::-1]))


def test_solve_and_simulate_commands_use_the_transform(tmp_path, capsys):
    m, g = load_model(), _g(7)
    mt = m.replace(score_transform=g, name="transformed")
    mt.save(tmp_path / "m.json")
    pol_file = tmp_path / "pol.json"
    assert main(["solve", "--model", str(tmp_path / "m.json"), "--lambda", "0.2", "--out",
                 str(pol_file), "--quiet"]) == 0
    capsys.readouterr()
    assert TrimPolicy.load(pol_file).model.score_transform is not None
    assert main(["simulate", "--policy", f"pomdp-filter:{pol_file}", "--simulator",
                 "calibrated", "--n", "150", "--seed", "2", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    # reference: the plain model's router on the transformed simulator scores
    pol0 = FiniteHorizonSolver().solve(TrimPOMDP(model=m, lam=0.2))
    sim = load_simulator()
    sc = sim.scenario(150, 2)
    strong = simulate(PolicySpec.parse("strong").factory(m, record=False), sc)
    ref = simulate(pomdp_router(pol0, belief="filter", record=False), _g_scenario(sc, g))
    want = ref.summary(strong_only_tokens=strong.mean_strong_tokens)
    assert got["accuracy"] == want["accuracy"]
    assert got["mean_strong_tokens"] == want["mean_strong_tokens"]


def test_assess_write_model_writes_a_transformed_model(tmp_path, capsys):
    d = _traces(120, seed=9)
    traces = [StepTrace(problem_id=str(d.ids[i]), scores=tuple(d.scores[i, :d.lengths[i]]),
                        tokens=tuple(int(t) for t in d.tokens[i, :d.lengths[i]]),
                        correct=bool(d.correct[i])) for i in range(d.n)]
    tr = tmp_path / "t.jsonl"
    write_traces(tr, traces)
    out = tmp_path / "calib.json"
    assert main(["assess", "default", str(tr), "--train-problems", "30", "--n-boot", "5",
                 "--write-model", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    mt = load_model(out)
    assert isinstance(mt, TrimModel) and mt.score_transform is not None
    assert mt.bin_size == 0.025 and summary["written_model"]["p_weak"] == mt.p_weak
    assert "written" in summary["heldout"]["scores"]
    assert mt.p_strong == load_model().p_strong  # the rest comes from MODEL
    eps = tmp_path / "eps.json"
    assert main(["assess", "default", str(tr), "--write-model", str(eps), "--learn-epsilon",
                 "--smoothing", "1", "--n-boot", "5", "--json"]) == 0
    capsys.readouterr()
    me = load_model(eps)
    assert me.provenance["epsilon"] is not None and me.provenance["smoothing"] == 1.0
    assert me.p_weak != mt.p_weak
    # bad option: one line, exit 2, nothing written
    bad = tmp_path / "bad.json"
    assert main(["assess", "default", str(tr), "--write-model", str(bad), "--grid", "0.03"]) == 2
    assert "grid" in capsys.readouterr().err and not bad.exists()


def test_naive_simulator_hands_the_router_raw_scores():
    # the naive simulator draws P(o | c) on the transformed axis; a transformed model's router
    # transforms again, so the draws must come back through the inverse map
    from trimpomdp.sim.naive import NaiveSimulator

    model = load_model()
    g = _g(4)
    plain = NaiveSimulator(model).scenario(300, seed=5)
    moved = NaiveSimulator(model.replace(score_transform=g)).scenario(300, seed=5)
    for key in ("sc_ok", "sc_post", "sc_err", "ss_ok"):
        raw = getattr(moved, key)
        assert not np.allclose(raw, getattr(plain, key))
        np.testing.assert_allclose(g.batch(raw), getattr(plain, key), atol=1e-9)
