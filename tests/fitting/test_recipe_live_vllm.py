"""The own-model recipe against REAL vLLM CPU servers (``.ci/live.sh``): run --policy
explore:0.5 → traces → fit-model → solve → run with the solved (fitted) POMDP policy file.
Marked ``server``.

The servers' PRM is a tiny random model and the generators are far too weak for math, so this
checks the plumbing on real protocol traffic, not the quality of the fit: the traces hold what
the run logged, the fitted file loads and its provenance matches the traces, and the second run
routed every step with the fitted policy (its logged beliefs and Q-values are the fitted
model's, not the bundled one's)."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.server

pytest.importorskip("httpx", reason="httpx is needed by the HTTP backends")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generation"))

from servers import live_servers

from trimpomdp.cli.main import main
from trimpomdp.data.traces import read_traces, write_traces
from trimpomdp.fitting.model_fit import sha256_file
from trimpomdp.generation.runlog import read_runlog
from trimpomdp.generation.wiring import make_router_factory
from trimpomdp.model import load_model
from trimpomdp.policies.trim_policy import TrimPolicy, model_fingerprint

N_PROBLEMS, MAX_STEPS = 8, 4


@pytest.fixture(scope="module")
def urls():
    with live_servers(max_model_len=1024) as (servers, _):
        yield {k: srv.url for k, srv in servers.items()}


def _replay(policy_spec: str, model, rec: dict) -> list[tuple[list[float] | None, list | None]]:
    """(belief, q) of each logged step, recomputed offline by a router for ``model``. A
    regenerated step's Q-values depend on whether its draft was final (not logged): None."""
    router = make_router_factory(policy_spec, model)()
    out = []
    for s in rec["steps"]:
        weak = s["source"] == "weak"
        dec = router.decide(s["score"], max(1, s["draft_tokens"]), s["step"],
                            final=bool(s["final"]) if weak else False)
        belief = None if dec.belief is None else [float(x) for x in dec.belief.to_list()]
        q = None if dec.q is None or not weak else [float(x) for x in dec.q]
        out.append((belief, q))
        if "strong_score" in s:  # the run booked the strong step's PRM score (default)
            router.observe_regenerated(s["strong_score"])
    return out


def test_recipe_on_real_servers(urls, tmp_path, capsys):
    data = tmp_path / "problems.jsonl"
    with open(data, "w") as fh:
        fh.writelines(json.dumps({"problem_id": f"p{i}", "problem": f"What is ${i}+{i + 1}$?",
                                 "answer": str(2 * i + 1)}) + "\n" for i in range(N_PROBLEMS))
    common = ["--weak", urls["weak"], "--strong", urls["strong"], "--prm", urls["prm"],
              "--dataset", str(data), "--max-step-tokens", "16", "--concurrency", "4"]
    explore = tmp_path / "explore"
    assert main(["run", *common, "--max-steps", str(MAX_STEPS), "--policy", "explore:0.5",
                 "--seed", "0", "--out", str(explore)]) == 0
    logged = {r["problem_id"]: r for r in read_runlog(explore)}
    assert len(logged) == N_PROBLEMS and all(r["status"] == "ok" for r in logged.values())
    assert all("exploration" in s["reason"] for r in logged.values() for s in r["steps"])

    traces_file = tmp_path / "traces.jsonl"
    assert main(["traces", str(explore), "--out", str(traces_file)]) == 0
    traces = read_traces(traces_file)
    assert sorted(t.problem_id for t in traces) == sorted(logged)
    for t in traces:  # each trace is its run-log record: scores, tokens, actions, rewrites
        steps = logged[t.problem_id]["steps"]
        assert list(t.scores) == [s["score"] for s in steps]
        assert list(t.tokens) == [max(1, s["draft_tokens"]) for s in steps]
        assert list(t.actions) == [int(s["action"] == "regenerate") for s in steps]
        assert list(t.strong_tokens) == [s.get("strong_tokens", 0) if s["action"] ==
                                         "regenerate" else 0 for s in steps]
        assert t.n_steps <= MAX_STEPS and (t.censored == (t.max_steps is not None))
    n_regen = sum(t.n_regenerated for t in traces)
    assert n_regen > 0, "explore:0.5 regenerated no step"
    if len({t.correct for t in traces}) < 2:  # tiny models: give EM both outcomes (plumbing)
        traces = [dataclasses.replace(t, correct=i % 2 == 0) for i, t in enumerate(traces)]
        write_traces(traces_file, traces)

    model = tmp_path / "model.json"
    assert main(["fit-model", "--traces", str(traces_file), "--out", str(model), "--n-init",
                 "1", "--no-progress"]) == 0
    m = load_model(model)
    counts = m.provenance["counts"]
    assert counts["traces"] == len(traces)
    assert counts["steps"] == sum(t.n_steps for t in traces)
    assert counts["regenerated_steps"] == n_regen
    assert counts["censored_traces"] == sum(t.censored for t in traces)
    assert [i["sha256"] for i in m.provenance["inputs"]] == [sha256_file(traces_file)]
    assert max(t.n_steps for t in traces) <= m.max_steps <= MAX_STEPS
    assert 0 < m.p_weak < 1 and 0 < m.p_strong < 1 and m.provenance["fitted"]["p_strong"][
        "identified"]

    policy = tmp_path / "policy.json"
    assert main(["solve", "--model", str(model), "--lambda", "0.1", "--out", str(policy)]) == 0
    solved = TrimPolicy.load(policy)
    assert model_fingerprint(solved.model) == model_fingerprint(m) and solved.lam == 0.1

    routed = tmp_path / "routed"
    spec = f"pomdp:{policy}"
    assert main(["run", *common, "--policy", spec, "--limit", "4", "--out", str(routed)]) == 0
    capsys.readouterr()
    # the run took the fitted policy's horizon (the math profile's 30 steps, clipped)
    assert json.loads((routed / "summary.json").read_text())["max_steps"] == m.max_steps
    assert json.loads((routed / "run.json").read_text())["policy"] == spec
    recs = read_runlog(routed)
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs)
    bundled_differs = False
    for r in recs:
        assert r["router"]["policy"] == "pomdp:λ=0.1" and 1 <= r["n_steps"] <= m.max_steps
        want = _replay(spec, None, r)
        for s, (belief, q) in zip(r["steps"], want):
            assert s["belief"] == pytest.approx(belief, abs=1e-9)
            if q is not None and s["q"] is not None:
                assert s["q"] == pytest.approx(q, rel=1e-9, abs=1e-9)
                assert s["action"] == ("regenerate" if q[1] > q[0] else "continue")
        bundled = _replay("pomdp:0.1", load_model(), r)  # the bundled pair's model
        bundled_differs |= any(not np.allclose(s["belief"], b) for s, (b, _) in
                               zip(r["steps"], bundled) if b is not None)
    assert bundled_differs, "the logged beliefs are also the bundled model's"
