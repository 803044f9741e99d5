"""Routed step traces: schema fields, validation, JSONL round trip, run folders → traces."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trimpomdp.cli.main import main
from trimpomdp.data.schema import StepTrace
from trimpomdp.data.traces import parse_trace, read_traces, write_traces
from trimpomdp.errors import InputError
from trimpomdp.generation.runs_to_traces import run_folders_to_traces

ROUTED = {"problem_id": "p1", "scores": [0.9, 0.3, 0.8], "tokens": [40, 50, 30],
          "actions": ["continue", "regenerate", "continue"], "strong_tokens": [0, 61, 0],
          "strong_scores": [None, 0.95, None], "correct": True}


def test_routed_fields_round_trip(tmp_path):
    tr = parse_trace(ROUTED)
    assert tr.actions == (0, 1, 0) and tr.strong_tokens == (0, 61, 0)
    assert tr.n_regenerated == 1 and not tr.censored
    p = tmp_path / "t.jsonl"
    write_traces(p, [tr, parse_trace({**ROUTED, "problem_id": "p2", "correct": False,
                                      "max_steps": 3})])
    back = read_traces(p)
    assert back[0] == tr and back[1].censored and back[1].max_steps == 3
    assert json.loads(p.read_text().splitlines()[0])["actions"][1] == "regenerate"


def test_defaults_are_continue_only():
    tr = parse_trace({"problem_id": "a", "scores": [0.5, 0.2]})
    assert tr.actions is None and tr.n_regenerated == 0
    np.testing.assert_array_equal(tr.action_array(), [0, 0])


def test_observations_use_the_kept_steps():
    tr = parse_trace(ROUTED)
    # the regenerated draft (0.3) is replaced by its rewrite's score (0.95) in min_prev
    np.testing.assert_allclose(tr.observations(), [[1.0, 0.9], [0.9, 0.3], [0.9, 0.8]])
    unscored = parse_trace({**ROUTED, "strong_scores": None})
    np.testing.assert_allclose(unscored.observations()[2], [0.9, 0.8])  # rewrite counts 1.0
    plain = parse_trace({"problem_id": "a", "scores": [0.9, 0.3, 0.8]})
    np.testing.assert_allclose(plain.observations()[2], [0.3, 0.8])


@pytest.mark.parametrize("change, field", [
    ({"actions": ["continue", "regenerate"]}, "actions"),
    ({"strong_tokens": [0, 5]}, "strong_tokens"),
    ({"strong_scores": [None, 0.5]}, "strong_scores"),
    ({"actions": ["continue", "skip", "continue"]}, "actions"),
    ({"actions": "continue"}, "actions"),
    ({"strong_tokens": [3, 61, 0]}, "strong_tokens"),
    ({"strong_tokens": [0, -1, 0]}, "strong_tokens"),
    ({"strong_scores": [0.4, 0.95, None]}, "strong_scores"),
    ({"strong_scores": [None, 1.5, None]}, "strong_scores"),
    ({"max_steps": 5}, "max_steps"),
    ({"max_steps": 0}, "max_steps"),
])
def test_bad_routed_fields(change, field):
    with pytest.raises(InputError) as exc:
        parse_trace({**ROUTED, **change}, "t.jsonl", 4)
    assert exc.value.field == field and exc.value.line == 4, str(exc.value)


def test_strong_fields_need_actions():
    obj = {k: v for k, v in ROUTED.items() if k != "actions"}
    with pytest.raises(InputError, match="needs 'actions'"):
        parse_trace(obj)


def _step(t, score, action="continue", strong_tokens=None, prefix=None, text="x", finish="stop"):
    rec = {"step": t, "draft": text, "draft_tokens": 10 + t, "draft_finish": finish,
           "score": score, "prefix_scores": prefix or [], "action": action,
           "text": text, "source": "weak", "final": False}
    if action == "regenerate":
        rec.update(strong="y", strong_tokens=strong_tokens, strong_finish=finish, source="strong")
    return rec


def _run_folder(path, records, **settings):
    path.mkdir()
    (path / "run.json").write_text(json.dumps({"weak_url": "http://w", "strong_url": "http://s",
                                               "prm": "http://p", "task": "math",
                                               "max_steps": 3, **settings}))
    with open(path / "runlog.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)
    return path


def _records():
    a = {"problem_id": "a", "status": "ok", "correct": True, "steps": [
        _step(0, 0.9), _step(1, 0.2, "regenerate", 33), _step(2, 0.8, prefix=[0.9, 0.97],
                                                               text="\\boxed{1}")]}
    b = {"problem_id": "b", "status": "ok", "correct": False, "steps": [
        _step(0, 0.7), _step(1, 0.6, prefix=[0.7]), _step(2, 0.5, prefix=[0.7, 0.6])]}
    c = {"problem_id": "c", "status": "failed", "reason": "timeout"}
    return [a, b, c]


def test_run_folder_to_traces(tmp_path):
    run = _run_folder(tmp_path / "run", _records(), score_strong_steps=True)
    traces, rep = run_folders_to_traces([run])
    a, b = traces
    assert rep["traces"] == 2 and rep["folders"][0]["skipped_failed"] == 1
    assert a.actions == (0, 1, 0) and a.strong_tokens == (0, 33, 0)
    assert a.strong_scores == (None, 0.97, None) and not a.censored and a.correct is True
    assert b.censored and b.max_steps == 3  # cut at the step limit without an answer
    never, _ = run_folders_to_traces([run], strong_scores="never")
    assert never[0].strong_scores == (None, None, None)


def test_traces_cli(tmp_path, capsys):
    run = _run_folder(tmp_path / "run", _records())
    out = tmp_path / "t.jsonl"
    assert main(["traces", str(run), "--out", str(out)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["traces"] == 2 and rep["regenerated"] == 1 and rep["censored"] == 1
    assert read_traces(out)[0].strong_scores == (None, None, None)  # auto: run did not score them


def test_traces_cli_bad_inputs(tmp_path, capsys):
    run = _run_folder(tmp_path / "run", _records())
    other = _run_folder(tmp_path / "other", _records(), prm="http://other-prm")
    out = str(tmp_path / "t.jsonl")
    cases = [
        ([str(run), str(other)], "mix settings"),
        ([str(tmp_path / "missing")], "not found"),
        ([str(tmp_path)], "no runlog.jsonl"),
    ]
    for runs, msg in cases:
        assert main(["traces", *runs, "--out", out]) == 2
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1, err
    assert main(["traces", str(run), str(other), "--allow-mixed", "--out", out]) == 0
    capsys.readouterr()
    noscore = _run_folder(tmp_path / "noprm", [{"problem_id": "x", "status": "ok", "steps": [
        {"step": 0, "draft": "d", "draft_tokens": 3, "action": "continue"}]}])
    assert main(["traces", str(noscore), "--out", out]) == 2
    assert "no PRM 'score'" in capsys.readouterr().err
    assert main(["traces", str(run), "--out", str(tmp_path)]) == 2
    assert not (tmp_path / "t2.jsonl").exists()


def test_steptrace_direct_validation():
    with pytest.raises(InputError, match="one entry per step"):
        StepTrace(problem_id="x", scores=(0.5,), actions=(0, 1))
