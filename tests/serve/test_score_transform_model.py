"""`run --model` and `serve --model` with a TRIM model that carries a score transform (issue 17
item 3): the recorded beliefs are the plain table's Bayes filter on g(PRM score), replayed from
the run log / the response trace (stub upstreams)."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("aiohttp", reason="the stub upstreams need aiohttp")
httpx = pytest.importorskip("httpx", reason="the upstream clients need httpx")

from serve_harness import ServerThread, config, stubs

from trimpomdp.belief import BayesFilterUpdater
from trimpomdp.cli.main import main
from trimpomdp.model import load_model
from trimpomdp.observation.transform import ScoreTransform

# the stub PRM says 0.9 (good) or 0.1 (bad); g sends 0.9 to ~0.18, where the release's
# densities see a likely error
G = ScoreTransform((0.0, 0.5, 0.95, 1.0), (0.0, 0.05, 0.2, 1.0))


@pytest.fixture(scope="module")
def up():
    with stubs() as u:
        yield u


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "transformed.json"
    load_model().replace(score_transform=G, name="transformed").save(path)
    return path


def _replay(steps):
    """Beliefs of the plain model's filter on g(score), with the recorded actions (a strong
    step's PRM score enters the min, ``score_strong_steps`` being on by default)."""
    up = BayesFilterUpdater.from_model(load_model(), "continuous")
    b, mn, out, prev = None, 1.0, [], None
    for i, s in enumerate(steps):
        x = float(s["score"])
        if prev == 1:  # the strong step's own score (the PRM's rescoring) enters the min
            mn = min(mn, float(steps[i - 1]["strong_score"]))
        b = up.update(b, prev, (G(mn), G(x)))
        out.append(b.probs)
        prev = 1 if s["action"] == "regenerate" else 0
        mn = min(mn, x) if prev == 0 else mn
    return np.array(out)


def _plain(steps):
    up = BayesFilterUpdater.from_model(load_model(), "continuous")
    b, mn, out, prev = None, 1.0, [], None
    for i, s in enumerate(steps):
        x = float(s["score"])
        if prev == 1:
            mn = min(mn, float(steps[i - 1]["strong_score"]))
        b = up.update(b, prev, (mn, x))
        out.append(b.probs)
        prev = 1 if s["action"] == "regenerate" else 0
        mn = min(mn, x) if prev == 0 else mn
    return np.array(out)


def test_run_uses_the_transformed_model(up, tmp_path, model_file, capsys):
    probs = tmp_path / "probs.jsonl"
    probs.write_text("".join(json.dumps({"problem_id": f"q{i}", "problem": f"What is {i}+5?",
                                         "answer": "5"}) + "\n" for i in range(2)))
    out = tmp_path / "run"
    assert main(["run", "--weak", up["weak"].url, "--strong", up["strong"].url, "--prm",
                 up["prm"].url, "--dataset", str(probs), "--policy", "pomdp-filter:0.3",
                 "--model", str(model_file), "--out", str(out), "--api", "chat",
                 "--retries", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] == 2
    recs = [json.loads(ln) for ln in (out / "runlog.jsonl").read_text().splitlines()]
    steps = [s for r in recs for s in r["steps"]]
    assert steps and all(s["belief"] is not None for s in steps)
    for r in recs:
        got = np.array([s["belief"] for s in r["steps"]])
        np.testing.assert_allclose(got, _replay(r["steps"]), rtol=0, atol=1e-12)
        assert not np.allclose(got, _plain(r["steps"]), atol=1e-3)  # g made a difference
        st = r["steps"]  # the booked strong score is the PRM's rescoring at the next step
        for a, b in zip(st, st[1:]):
            assert ("strong_score" in a) == (a["action"] == "regenerate")
            if a["action"] == "regenerate":
                assert a["strong_score"] == b["prefix_scores"][-1]


def test_serve_uses_the_transformed_model(up, model_file):
    with ServerThread(config(up, policy="pomdp-filter:0.3", model=str(model_file))) as srv, \
            httpx.Client(base_url=srv.url, timeout=60) as http:
        for trim in ({"trace": True}, {"trace": True, "lambda": 0.7}):
            r = http.post("/v1/chat/completions", json={
                "model": "trimpomdp", "trim": trim,
                "messages": [{"role": "user", "content": "2+3?"}]})
            assert r.status_code == 200, r.text
            steps = r.json()["trim"]["trace"]
            got = np.array([s["belief"] for s in steps])
            np.testing.assert_allclose(got, _replay(steps), rtol=0, atol=1e-12)
            assert not np.allclose(got, _plain(steps), atol=1e-3)
