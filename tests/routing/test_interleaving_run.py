"""The per-problem router property end to end: `trimpomdp run --concurrency 4` routes every
problem exactly as a run of that problem alone, against local stub servers whose PRM scores
vary by problem (a hash of the question and the steps so far)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("httpx", reason="httpx is needed by the HTTP backends (trimpomdp[live])")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generation"))

from faulty_server import FaultyServer  # noqa: E402

from trimpomdp.cli.main import main  # noqa: E402
from trimpomdp.resources import resource_path  # noqa: E402

N = 6


def _ckpt(kind: str) -> str:
    files = sorted(resource_path("models", "learned").glob(f"{kind}_*.json"))
    if not files:
        pytest.skip(f"no bundled {kind} checkpoint")
    return str(files[0])


@pytest.fixture(scope="module")
def servers():
    with FaultyServer(tag="weak", n_steps=6) as w, FaultyServer(tag="strong", n_steps=6) as s, \
            FaultyServer(tag="prm", varied=True) as p:
        yield w.url, s.url, p.url


def _dataset(path: Path, ids: list[int]) -> Path:
    with open(path, "w") as fh:
        for i in ids:
            fh.write(json.dumps({"problem_id": f"q{i}", "problem": f"What is {i} + {7 * i}?",
                                 "answer": "5"}) + "\n")
    return path


def _routes(out: Path) -> dict[str, list[str]]:
    recs = [json.loads(x) for x in (out / "runlog.jsonl").read_text().splitlines() if x.strip()]
    assert all(r["status"] == "ok" for r in recs), recs
    return {r["problem_id"]: [s["action"] for s in r["steps"]] for r in recs}


@pytest.mark.parametrize("spec", ["thr:0.5", "pomdp-filter:0.2", "pomdp:0.2", "query:0.5",
                                  "random:0.4", "explore:0.3", "agg", "seq", "weak", "strong"])
def test_run_concurrency_4_routes_like_each_problem_alone(servers, tmp_path, capsys, spec):
    if spec in ("agg", "seq"):
        spec = f"{spec}:{_ckpt(spec)}"
    w, s, p = servers
    common = ["--weak", w, "--strong", s, "--prm", p, "--policy", spec, "--api", "chat",
              "--max-steps", "6"]
    data = _dataset(tmp_path / "all.jsonl", list(range(N)))
    assert main(["run", *common, "--dataset", str(data), "--out", str(tmp_path / "together"),
                 "--concurrency", "4"]) == 0, capsys.readouterr().err
    together = _routes(tmp_path / "together")
    alone: dict[str, list[str]] = {}
    for i in range(N):
        d = _dataset(tmp_path / f"one{i}.jsonl", [i])
        assert main(["run", *common, "--dataset", str(d), "--out", str(tmp_path / f"alone{i}"),
                     "--concurrency", "1"]) == 0, capsys.readouterr().err
        alone.update(_routes(tmp_path / f"alone{i}"))
    assert together == alone
    if spec.startswith(("thr", "query", "pomdp")):
        assert len({tuple(v) for v in together.values()}) > 1  # the scores do vary by problem


def test_general_profile_runs_past_thirty_steps_with_a_model_free_rule(tmp_path, capsys):
    """A model-free rule's horizon is the run's step limit: 35 steps under the general profile
    (end of sequence ends the answer; a boxed answer in a middle step does not)."""
    with FaultyServer(tag="weak", n_steps=35) as w, FaultyServer(tag="strong", n_steps=35) as s, \
            FaultyServer(tag="prm", varied=True) as p:
        data = _dataset(tmp_path / "d.jsonl", [1, 2])
        assert main(["run", "--weak", w.url, "--strong", s.url, "--prm", p.url, "--policy",
                     "thr:0.5", "--api", "chat", "--task", "general", "--max-steps", "40",
                     "--dataset", str(data), "--out", str(tmp_path / "r")]) == 0, \
            capsys.readouterr().err
    recs = [json.loads(x) for x in (tmp_path / "r" / "runlog.jsonl").read_text().splitlines()]
    assert [r["n_steps"] for r in recs] == [35, 35]
