"""`trimpomdp evaluate RUN_DIR...`: metrics from live run logs."""
from __future__ import annotations

import json

import pytest

from trimpomdp.cli.main import main
from trimpomdp.evaluation.runs import evaluate_runs


def make_run(root, name, policy, correct, strong_tokens, failed=0):
    d = root / name
    d.mkdir()
    (d / "run.json").write_text(json.dumps({"policy": policy}))
    lines = [json.dumps({"problem_id": f"p{i}", "status": "ok", "correct": c,
                         "strong_tokens": t, "weak_tokens": 100, "n_steps": 3,
                         "n_regenerated": 1})
             for i, (c, t) in enumerate(zip(correct, strong_tokens))]
    lines += [json.dumps({"problem_id": f"f{i}", "status": "failed", "reason": "upstream 500"})
              for i in range(failed)]
    (d / "runlog.jsonl").write_text("\n".join(lines) + "\n")
    return d


def test_runs_give_points_and_metrics(tmp_path):
    w = make_run(tmp_path, "w", "weak", [1, 0, 0, 0], [0, 0, 0, 0])
    s = make_run(tmp_path, "s", "strong", [1, 1, 1, 0], [400, 400, 400, 400])
    a = make_run(tmp_path, "a", "thr:0.3", [1, 1, 0, 0], [40, 40, 40, 40])
    b = make_run(tmp_path, "b", "thr:0.6", [1, 1, 1, 0], [100, 100, 100, 100], failed=1)
    curves, ref, rows, summaries = evaluate_runs([w, s, a, b])
    assert ref.weak_accuracy == 0.25 and ref.strong_accuracy == 0.75 and ref.strong_tokens == 400
    pts = {p.param: p for p in curves["thr"]}
    assert pts[0.6].accuracy == pytest.approx(3 / 5)  # the failed problem counts as wrong
    assert pts[0.6].strong_tokens == pytest.approx(400 / 5)
    row = rows[0]
    # PGR(thr:0.3) = (0.5 - 0.25) / 0.5 = 0.5 at c = 40/400 = 0.1: the cheapest point reaching 50%
    assert row["cpt50"] == pytest.approx(0.1)
    assert [s["failed"] for s in summaries] == [0, 0, 0, 1]


def test_cli_evaluate_runs(tmp_path, capsys):
    w = make_run(tmp_path, "w", "weak", [0, 0], [0, 0])
    p = make_run(tmp_path, "p", "pomdp:0.3", [1, 0], [50, 50])
    assert main(["evaluate", str(w), str(p), "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "pomdp:0.3" in out and (tmp_path / "rep.json").exists()
    assert main(["evaluate", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "run log not found" in capsys.readouterr().err
