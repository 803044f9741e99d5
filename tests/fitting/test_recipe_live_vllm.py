"""The own-model recipe against REAL vLLM CPU servers (``.ci/live.sh``): run --policy
explore:0.5 → traces → fit-model → solve → run with the fitted POMDP policy. Marked ``server``.

The servers' PRM is a tiny random model and the generators are far too weak for math, so this
checks the plumbing on real protocol traffic, not the quality of the fit."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.server

pytest.importorskip("httpx", reason="httpx is needed by the HTTP backends")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generation"))

from servers import live_servers

from trimpomdp.cli.main import main
from trimpomdp.data.traces import read_traces, write_traces
from trimpomdp.model import load_model


@pytest.fixture(scope="module")
def urls():
    with live_servers(max_model_len=1024) as (servers, _):
        yield {k: srv.url for k, srv in servers.items()}


def test_recipe_on_real_servers(urls, tmp_path, capsys):
    data = tmp_path / "problems.jsonl"
    with open(data, "w") as fh:
        fh.writelines(json.dumps({"problem_id": f"p{i}", "problem": f"What is ${i}+{i + 1}$?",
                                 "answer": str(2 * i + 1)}) + "\n" for i in range(8))
    common = ["--weak", urls["weak"], "--strong", urls["strong"], "--prm", urls["prm"],
              "--dataset", str(data), "--max-steps", "4", "--max-step-tokens", "32",
              "--concurrency", "4"]
    explore = tmp_path / "explore"
    assert main(["run", *common, "--policy", "explore:0.5", "--seed", "0", "--out",
                 str(explore)]) == 0
    traces_file = tmp_path / "traces.jsonl"
    assert main(["traces", str(explore), "--out", str(traces_file)]) == 0
    traces = read_traces(traces_file)
    assert len(traces) == 8 and all(t.actions is not None for t in traces)
    assert sum(t.n_regenerated for t in traces) > 0
    assert all(all(v > 0 for a, v in zip(t.actions, t.strong_tokens) if a) for t in traces)
    if len({t.correct for t in traces}) < 2:  # tiny models: give EM both outcomes (plumbing)
        traces = [dataclasses.replace(t, correct=i % 2 == 0) for i, t in enumerate(traces)]
        write_traces(traces_file, traces)
    model = tmp_path / "model.json"
    assert main(["fit-model", "--traces", str(traces_file), "--out", str(model), "--n-init",
                 "1", "--no-progress"]) == 0
    m = load_model(model)
    assert 1 <= m.max_steps <= 4 and m.provenance["counts"]["traces"] == 8
    assert main(["solve", "--model", str(model), "--lambda", "0.1", "--out",
                 str(tmp_path / "policy.json")]) == 0
    routed = tmp_path / "routed"
    assert main(["run", *[a for a in common if a not in ("--max-steps", "4")], "--model",
                 str(model), "--policy", "pomdp:0.1", "--out", str(routed)]) == 0
    capsys.readouterr()
    recs = [json.loads(x) for x in (routed / "runlog.jsonl").read_text().splitlines()]
    assert len(recs) == 8 and all(r["status"] == "ok" for r in recs)
