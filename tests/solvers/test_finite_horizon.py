"""FiniteHorizonSolver against an exhaustive belief-tree value iteration and known structure."""
from __future__ import annotations


import numpy as np
import pytest

from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver
from trimpomdp.builders import observation_model


def small_model(default_model, bin_size=0.5, max_steps=4, hazard=(0, 0, 0.3, 0.5, 1.0)):
    return default_model.replace(obs_probs=observation_model(default_model).bin_probs(bin_size),
                                 bin_size=bin_size, max_steps=max_steps,
                                 hazard=np.asarray(hazard, float))


def brute_force_q(pomdp: TrimPOMDP, step: int, tokens: float, belief, final=False):
    """Exhaustive belief-tree value iteration straight from the DESIGN.md definition."""
    m = pomdp.model
    O = m.obs_probs
    F = m.future_tokens

    def v_final(b):
        return float(np.max(pomdp.final_reward(F) @ b))

    def q_step(t, n, b):
        out = []
        for a in (0, 1):
            r = pomdp.step_reward(n)[a] @ b
            p = b @ pomdp.transition_matrix(a)
            h = pomdp.hazard_after(t)
            fut = 0.0
            for o in range(O.shape[1]):
                q = p * O[:, o]
                po = q.sum()
                if po <= 0:
                    continue
                bo = q / po
                val = h * v_final(bo)
                if h < 1:
                    val += (1 - h) * float(np.max(q_step(t + 1, F, bo)))
                fut += po * val
            out.append(r + m.discount * fut)
        return np.array(out)

    b = np.asarray(belief, float)
    if final:
        return pomdp.final_reward(tokens) @ b
    return q_step(step, tokens, b)


@pytest.mark.parametrize("lam", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("bin_size", [0.5, 0.25])
def test_matches_exhaustive_belief_tree(default_model, lam, bin_size):
    steps = 4 if bin_size == 0.5 else 3
    hz = (0, 0, 0.3, 0.5, 1.0)[: steps + 1][:-1] + (1.0,)
    model = small_model(default_model, bin_size, steps, hz)
    pomdp = TrimPOMDP(model=model, lam=lam)
    policy = FiniteHorizonSolver(tol=1e-13).solve(pomdp)
    rng = np.random.default_rng(0)
    for _ in range(6):
        b = rng.dirichlet([1, 1, 1])
        step = int(rng.integers(0, steps))
        n = float(rng.integers(5, 200))
        np.testing.assert_allclose(policy.q_values(step, n, b), brute_force_q(pomdp, step, n, b),
                                   atol=1e-6, rtol=0)
    np.testing.assert_allclose(policy.q_values(0, 60, [1, 0, 0], final=True),
                               brute_force_q(pomdp, 0, 60, [1, 0, 0], final=True), atol=1e-9)


def test_default_tolerance_close_to_tight(default_model):
    pomdp = TrimPOMDP(model=default_model, lam=0.25)
    loose = FiniteHorizonSolver().solve(pomdp)
    tight = FiniteHorizonSolver(tol=1e-6).solve(pomdp)
    rng = np.random.default_rng(1)
    for _ in range(20):
        b = rng.dirichlet([1, 1, 1])
        t = int(rng.integers(0, 30))
        ql, qt = loose.q_values(t, 60, b), tight.q_values(t, 60, b)
        # lower bounds: the looser solve never exceeds the tighter one by more than round-off
        assert np.all(ql <= qt + 1e-9)
        assert np.all(qt - ql <= 30 * 1e-5 * default_model.reward)


def test_more_regeneration_as_lambda_falls(default_model):
    rng = np.random.default_rng(2)
    beliefs = rng.dirichlet([1, 1, 1], size=300)
    steps = rng.integers(0, 30, size=300)
    tokens = rng.integers(10, 300, size=300)
    counts = []
    for lam in (0.05, 0.25, 0.85):
        pol = FiniteHorizonSolver().solve(TrimPOMDP(model=default_model, lam=lam))
        counts.append(sum(pol.action(int(t), int(n), b) for b, t, n in zip(beliefs, steps, tokens)))
    assert counts[0] > counts[1] > counts[2]


def test_no_regeneration_when_s1_dominates(default_model):
    pol = FiniteHorizonSolver().solve(TrimPOMDP(model=default_model, lam=0.05))
    for t in range(30):
        assert pol.action(t, 60, [0.02, 0.96, 0.02]) == 0
        assert pol.action(t, 60, [0, 1, 0]) == 0
    # and a likely-recoverable error is regenerated
    assert pol.action(5, 60, [0.05, 0.05, 0.9]) == 1


def test_final_step_rule(default_model):
    pol = FiniteHorizonSolver().solve(TrimPOMDP(model=default_model, lam=0.25))
    # on the final step continue pays R·b0, regenerate p_s·R·(b0 + b2) − λ n
    b = np.array([0.3, 0.1, 0.6])
    R, ps = default_model.reward, default_model.p_strong
    np.testing.assert_allclose(pol.q_values(10, 40, b, final=True),
                               [R * b[0], ps * R * (b[0] + b[2]) - 0.25 * 40])


def test_value_is_convex_in_belief(default_model):
    pol = FiniteHorizonSolver().solve(TrimPOMDP(model=default_model, lam=0.25))
    rng = np.random.default_rng(3)
    for _ in range(50):
        b1, b2 = rng.dirichlet([1, 1, 1], size=2)
        w = rng.random()
        mid = w * b1 + (1 - w) * b2
        assert pol.value(4, 60, mid) <= w * pol.value(4, 60, b1) + (1 - w) * pol.value(4, 60, b2) + 1e-9


def test_save_load_round_trip(default_model, tmp_path):
    from trimpomdp.policies.trim_policy import TrimPolicy

    pol = FiniteHorizonSolver().solve(TrimPOMDP(model=default_model, lam=0.3))
    pol.save(tmp_path / "p.json")
    back = TrimPolicy.load(tmp_path / "p.json")
    assert back.lam == 0.3
    b = [0.4, 0.2, 0.4]
    np.testing.assert_array_equal(back.q_values(7, 33, b), pol.q_values(7, 33, b))


@pytest.mark.parametrize("lam", [0.0, 0.2])
def test_sixty_step_horizon_matches_exhaustive_belief_tree(default_model, lam):
    """The horizon is a model parameter: a 60-step model solves exactly, beyond step 30 too."""
    from trimpomdp.pomdp.dynamics import hazard_from_pmf

    rng = np.random.default_rng(1)
    hz = hazard_from_pmf(rng.random(59) + 0.05, min_len=2, max_steps=60)
    model = small_model(default_model, 0.5, 60, hz)
    pomdp = TrimPOMDP(model=model, lam=lam)
    policy = FiniteHorizonSolver(tol=1e-13).solve(pomdp)
    assert len(policy.continue_lines) == 60
    for step in (56, 57, 58, 59):  # brute force is exponential in the steps left: the last four
        for _ in range(3):
            b = rng.dirichlet([1, 1, 1])
            n = float(rng.integers(5, 200))
            np.testing.assert_allclose(policy.q_values(step, n, b),
                                       brute_force_q(pomdp, step, n, b), atol=1e-6, rtol=0)


def test_solve_cli_accepts_a_sixty_step_model(default_model, tmp_path, capsys):
    import json

    from trimpomdp.cli.main import main
    from trimpomdp.pomdp.dynamics import hazard_from_pmf

    pmf = np.r_[np.diff(np.r_[0.0, 1.0 - np.cumprod(1.0 - default_model.hazard[2:])]), 0.2
                * np.ones(30)]
    model = default_model.replace(max_steps=60, hazard=hazard_from_pmf(pmf, max_steps=60))
    model.save(tmp_path / "m60.json")
    assert main(["solve", "--model", str(tmp_path / "m60.json"), "--lambda", "0.2", "--out",
                 str(tmp_path / "p.json")]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["lambda"] == 0.2
    assert main(["act", "--policy", str(tmp_path / "p.json"), "--step", "45", "--tokens", "60",
                 "--belief", "0.2,0.1,0.7"]) == 0
