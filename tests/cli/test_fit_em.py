"""`trimpomdp fit-em`, run in-process through ``main``."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from trimpomdp import load_model
from trimpomdp.cli.main import main
from trimpomdp.data import StepTrace, write_traces


def _traces(n: int = 400, seed: int = 0) -> list[StepTrace]:
    """Scores high before the first error, low from it on; correct iff no error."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        L = int(rng.integers(2, 9))
        e = int(rng.geometric(0.12)) - 1
        s = np.where(np.arange(L) < e, rng.uniform(0.85, 1.0, L), rng.uniform(0.0, 0.7, L))
        out.append(StepTrace(problem_id=f"p{i}", scores=tuple(float(v) for v in s),
                             correct=bool(e >= L)))
    return out


@pytest.fixture()
def trace_file(tmp_path):
    path = tmp_path / "traces.jsonl"
    write_traces(path, _traces())
    return path


def test_fit_em_writes_a_trim_model(trace_file, tmp_path, capsys, default_model):
    out = tmp_path / "em.json"
    rc = main(["fit-em", "--traces", str(trace_file), "--out", str(out), "--n-init", "2",
               "--no-progress", "--obs-out", str(tmp_path / "obs.json")])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    model = load_model(out)
    assert model.p_weak == pytest.approx(summary["p_weak"], abs=1e-6)
    assert model.p_strong == default_model.p_strong
    np.testing.assert_array_equal(model.hazard, default_model.hazard)
    assert model.obs_probs.shape == (3, 400)
    assert summary["format"] == "traces" and summary["n_traces"] == 400
    # scores >= 0.85 before the error, so the S0 class puts its mass there
    cur = (np.arange(400) % 20 + 0.5) * 0.05
    assert model.obs_probs[0][cur > 0.85].sum() > 0.9
    assert (tmp_path / "obs.json").exists()


def test_fit_em_reads_score_dumps_and_role_strong(tmp_path, capsys, default_model):
    dump = tmp_path / "dump.jsonl.gz"
    with gzip.open(dump, "wt") as fh:
        for tr in _traces(300, seed=1):
            fh.write(json.dumps({"problem_id": tr.problem_id, "candidate_index": 0,
                                 "step_scores": {"qwen_prm": list(tr.scores)},
                                 "step_chars": [10] * tr.n_steps, "num_tokens": 40,
                                 "is_correct": tr.correct}) + "\n")
    out = tmp_path / "em.json"
    rc = main(["fit-em", "--traces", str(dump), "--out", str(out), "--role", "strong",
               "--m-step", "kde", "--n-init", "1", "--no-progress"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "score_dump"
    model = load_model(out)
    assert model.p_strong == pytest.approx(summary["p_strong"], abs=1e-6)
    assert model.p_weak == default_model.p_weak


def test_fit_em_errors_are_one_line(tmp_path, capsys):
    rc = main(["fit-em", "--traces", str(tmp_path / "missing.jsonl"), "--out",
               str(tmp_path / "o.json"), "--no-progress"])
    assert rc == 2
    assert "file not found" in capsys.readouterr().err
    path = tmp_path / "no_outcomes.jsonl"
    path.write_text(json.dumps({"problem_id": "a", "scores": [0.9, 0.2]}) + "\n")
    rc = main(["fit-em", "--traces", str(path), "--out", str(tmp_path / "o.json"),
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "both correct and wrong" in err
    assert not (tmp_path / "o.json").exists()
    write_traces(path, _traces(20))
    for bad, msg in ((["--bandwidth", "wide"], "bandwidth"), (["--alpha", "-1"], "alpha"),
                     (["--n-init", "0"], "n_init")):
        rc = main(["fit-em", "--traces", str(path), "--out", str(tmp_path / "o.json"),
                   "--m-step", "kde", "--no-progress", *bad])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and err.count("\n") == 1, err


def test_fit_em_output_plugs_into_the_solver(trace_file, tmp_path, capsys):
    from trimpomdp.pomdp.trim import TrimPOMDP
    from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver

    out = tmp_path / "em.json"
    assert main(["fit-em", "--traces", str(trace_file), "--out", str(out), "--n-init", "1",
                 "--no-progress"]) == 0
    capsys.readouterr()
    policy = FiniteHorizonSolver().solve(TrimPOMDP(model=load_model(out), lam=0.25))
    q = policy.q_values(3, 60, [0.6, 0.1, 0.3])
    assert q.shape == (2,) and np.all(np.isfinite(q))
    # a step believed surely wrong-but-recoverable is worth regenerating at this λ
    assert policy.action(3, 60, [0.0, 0.0, 1.0]) == 1
    assert policy.action(3, 60, [1.0, 0.0, 0.0]) == 0


def test_fit_em_output_through_solve_command(trace_file, tmp_path, capsys):
    pytest.importorskip("trimpomdp.cli.solve", reason="`solve` command not in this checkout")
    out = tmp_path / "em.json"
    assert main(["fit-em", "--traces", str(trace_file), "--out", str(out), "--n-init", "1",
                 "--no-progress"]) == 0
    assert main(["solve", "--lambda", "0.25", "--model", str(out), "--out",
                 str(tmp_path / "policy.json")]) == 0
    assert (tmp_path / "policy.json").exists()
