"""`simulate --release-rule`: the release's exact runtime rule through the CLI equals the library
path the validation benchmark uses (release_factory + strong scores observed)."""
from __future__ import annotations

import json

from trimpomdp.cli.main import main
from trimpomdp.model import load_model
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.sim.engine import simulate
from trimpomdp.sim.release_rule import OBSERVE_STRONG_SCORES, release_factory
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver
from trimpomdp.tuning import simulator_for


def test_release_rule_matches_the_library_path(capsys):
    assert main(["simulate", "--policy", "pomdp:0.65", "--release-rule", "--n", "600",
                 "--seed", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    model = load_model()
    sc = simulator_for(model)[0].scenario(600, 3)
    pol = FiniteHorizonSolver().solve(TrimPOMDP(model=model, lam=0.65))
    ref = simulate(release_factory(pol), sc, observe_regenerated=OBSERVE_STRONG_SCORES)
    assert out["rule"] == "release"
    assert out["accuracy"] == ref.summary()["accuracy"]
    assert out["mean_strong_tokens"] == ref.summary()["mean_strong_tokens"]
    # and it is not the router's own rule (the release's gate/lookup/strong scores matter)
    assert main(["simulate", "--policy", "pomdp:0.65", "--n", "600", "--seed", "3",
                 "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["rule"] == "router" and plain["mean_strong_tokens"] != out["mean_strong_tokens"]


def test_release_rule_needs_a_pomdp_spec(capsys):
    assert main(["simulate", "--policy", "thr:0.5", "--release-rule"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--release-rule needs a pomdp" in err[0]
