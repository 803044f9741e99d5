"""The recipe end to end against local stub servers (OpenAI/vLLM protocol, scripted steps,
hash-varied PRM scores): run --policy explore:0.3 → traces → fit-model → solve → run with the
fitted POMDP policy. The real-vLLM version of this belongs to the server tests."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("httpx", reason="httpx is needed by the HTTP backends (trimpomdp[live])")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generation"))

from faulty_server import FaultyServer

from trimpomdp.cli.main import main
from trimpomdp.data.traces import read_traces
from trimpomdp.model import load_model


def test_explore_traces_fit_solve_run(tmp_path, capsys):
    data = tmp_path / "problems.jsonl"
    with open(data, "w") as fh:
        fh.writelines(json.dumps({"problem_id": f"q{i}", "problem": f"What is {i} + {3 * i}?",
                                 "answer": "5" if i % 3 else "6"}) + "\n" for i in range(30))
    with FaultyServer(tag="weak", n_steps=5) as w, FaultyServer(tag="strong", n_steps=5) as s, \
            FaultyServer(tag="prm", varied=True) as p:
        common = ["--weak", w.url, "--strong", s.url, "--prm", p.url, "--api", "chat",
                  "--max-steps", "6", "--dataset", str(data)]
        run1 = tmp_path / "explore"
        assert main(["run", *common, "--policy", "explore:0.3", "--seed", "1",
                     "--out", str(run1)]) == 0
        traces_file = tmp_path / "traces.jsonl"
        assert main(["traces", str(run1), "--out", str(traces_file)]) == 0
        traces = read_traces(traces_file)
        assert len(traces) == 30 and sum(t.n_regenerated for t in traces) > 0
        model = tmp_path / "model.json"
        assert main(["fit-model", "--traces", str(traces_file), "--out", str(model),
                     "--n-init", "1", "--no-progress"]) == 0
        capsys.readouterr()
        m = load_model(model)
        assert m.max_steps == 5 and m.provenance["counts"]["traces"] == 30
        policy = tmp_path / "policy.json"
        assert main(["solve", "--model", str(model), "--lambda", "0.1", "--out",
                     str(policy)]) == 0
        run2 = tmp_path / "fitted"
        assert main(["run", *common[:-4], "--dataset", str(data), "--model", str(model),
                     "--policy", "pomdp:0.1", "--out", str(run2)]) == 0
    recs = [json.loads(x) for x in (run2 / "runlog.jsonl").read_text().splitlines()]
    assert len(recs) == 30 and all(r["status"] == "ok" for r in recs)
