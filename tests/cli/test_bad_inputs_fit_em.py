"""`trimpomdp fit-em`: every bad trace file, score dump or option is exit 2 with one line naming
file, line and field; no traceback, nothing written. ``CASES`` is counted in the issue-13 report.
"""
from __future__ import annotations

import json
import os

import pytest

from trimpomdp.cli.main import main

TR_OK = {"problem_id": "a", "scores": [0.9, 0.3, 0.2], "correct": False}
TR_OK2 = {"problem_id": "b", "scores": [0.9, 0.95], "correct": True}
DUMP_OK = {"problem_id": "m0", "candidate_index": 0, "step_scores": {"qwen_prm": [0.9, 0.2]},
           "step_chars": [10, 20], "num_tokens": 30, "is_correct": False}
DUMP_OK2 = {**DUMP_OK, "candidate_index": 1, "step_scores": {"qwen_prm": [0.9, 0.95]},
            "is_correct": True}


def _traces(bad: dict | str) -> str:
    line = bad if isinstance(bad, str) else json.dumps(bad)
    return json.dumps(TR_OK) + "\n" + json.dumps(TR_OK2) + "\n" + line + "\n"


def _tr(**kw) -> str:
    return _traces({**TR_OK, "problem_id": "bad", **kw})


def _dump(bad: dict | str) -> str:
    line = bad if isinstance(bad, str) else json.dumps(bad)
    return json.dumps(DUMP_OK) + "\n" + json.dumps(DUMP_OK2) + "\n" + line + "\n"


def _du(**kw) -> str:
    return _dump({**DUMP_OK, "candidate_index": 2, **kw})


def _du_without(key: str) -> str:
    d = {**DUMP_OK, "candidate_index": 2}
    del d[key]
    return _dump(d)


GOOD = _traces(TR_OK2)
BINARY = b"\x00\x01\x02\xff\xfe\xfd binary"

# (id, traces content (None = missing), extra argv, expected substrings of the error line)
CASES = [
    # --- step traces
    ("trace-correct-string", _tr(correct="false"), [], [":3: field 'correct'", "'false'"]),
    ("trace-correct-int", _tr(correct=0), [], [":3: field 'correct'"]),
    ("trace-score-above-1", _tr(scores=[0.9, 5]), [], [":3: field 'scores'"]),
    ("trace-score-nan", _traces('{"problem_id": "x", "scores": [NaN], "correct": true}'), [],
     [":3: field 'scores'"]),
    ("trace-score-string", _tr(scores=["0.9"]), [], [":3: field 'scores'"]),
    ("trace-tokens-nan", _traces('{"problem_id": "x", "scores": [0.5], "tokens": [NaN], '
                                 '"correct": true}'), [], [":3: field 'tokens'"]),
    ("trace-tokens-1e999", _traces('{"problem_id": "x", "scores": [0.5], "tokens": [1e999], '
                                   '"correct": true}'), [], [":3: field 'tokens'"]),
    ("trace-problem-id-missing", _traces({"scores": [0.5], "correct": True}), [],
     [":3: field 'problem_id'"]),
    ("trace-array-line", _traces("[0.5, 0.2]"), [], [":3: each line must be a JSON object"]),
    ("trace-not-json", _traces("{'single': 'quotes'}"), [], [":3: line is not valid JSON"]),
    ("only-correct-answers", json.dumps(TR_OK2) + "\n", [], ["traces.jsonl: ", "correct and wrong"]),
    ("no-outcomes", json.dumps({"problem_id": "u", "scores": [0.5]}) + "\n", [],
     ["traces.jsonl: "]),
    # --- score dumps
    ("dump-score-5", _du(step_scores={"qwen_prm": [5, 0.2]}), [],
     [":3: field 'step_scores.qwen_prm'", "Got 5 instead"]),
    ("dump-score-negative", _du(step_scores={"qwen_prm": [-3]}), [],
     [":3: field 'step_scores.qwen_prm'"]),
    ("dump-score-nan", _dump('{"problem_id": "m1", "step_scores": {"qwen_prm": [NaN]}, '
                             '"is_correct": true}'), [], [":3: field 'step_scores.qwen_prm'"]),
    ("dump-score-string", _du(step_scores={"qwen_prm": ["0.5"]}), [],
     [":3: field 'step_scores.qwen_prm'"]),
    ("dump-scores-object", _du(step_scores={"qwen_prm": {"0": 0.5}}), [],
     [":3: field 'step_scores.qwen_prm'"]),
    ("dump-step-scores-list", _du(step_scores=[0.5, 0.2]), [], [":3: field 'step_scores'"]),
    ("dump-unknown-prm", _dump(DUMP_OK), ["--prm", "other_prm"],
     [":1: field 'step_scores'", "no scores for PRM 'other_prm'"]),
    ("dump-problem-id-missing", _du_without("problem_id"), [], [":3: field 'problem_id'"]),
    ("dump-problem-id-list", _du(problem_id=["m"]), [], [":3: field 'problem_id'"]),
    ("dump-is-correct-string", _du(is_correct="false"), [], [":3: field 'is_correct'"]),
    ("dump-is-correct-int", _du(is_correct=1), [], [":3: field 'is_correct'"]),
    ("dump-num-tokens-string", _du(num_tokens="30"), [], [":3: field 'num_tokens'"]),
    ("dump-num-tokens-negative", _du(num_tokens=-1), [], [":3: field 'num_tokens'"]),
    ("dump-num-tokens-fractional", _du(num_tokens=3.5), [], [":3: field 'num_tokens'"]),
    ("dump-step-chars-string", _du(step_chars="abc"), [], [":3: field 'step_chars'"]),
    ("dump-step-chars-fractional", _du(step_chars=[1.5, 2]), [], [":3: field 'step_chars'"]),
    ("dump-candidate-negative", _du(candidate_index=-1), [], [":3: field 'candidate_index'"]),
    ("dump-candidate-string", _du(candidate_index="2"), [], [":3: field 'candidate_index'"]),
    # --- files
    ("empty-file", "", [], ["file is empty"]),
    ("binary-file", BINARY, [], ["not a UTF-8 text file"]),
    ("missing-file", None, [], ["file not found"]),
    # --- options
    ("alpha-negative", GOOD, ["--alpha", "-1"], ["field 'alpha'"]),
    ("alpha-nan", GOOD, ["--alpha", "nan"], ["field 'alpha'"]),
    ("n-init-zero", GOOD, ["--n-init", "0"], ["field 'n_init'"]),
    ("max-iter-zero", GOOD, ["--max-iter", "0"], ["field 'max_iter'"]),
    ("tol-nan", GOOD, ["--tol", "nan"], ["field 'tol'"]),
    ("tol-negative", GOOD, ["--tol", "-1"], ["field 'tol'"]),
    ("tol-zero", GOOD, ["--tol", "0"], ["field 'tol'"]),
    ("seed-negative", GOOD, ["--seed", "-1"], ["field 'seed'"]),
    ("bandwidth-word", GOOD, ["--bandwidth", "wide"], ["field 'bandwidth'"]),
    ("bandwidth-negative", GOOD, ["--bandwidth", "-0.1"], ["field 'bandwidth'"]),
    ("bandwidth-nan", GOOD, ["--bandwidth", "nan"], ["field 'bandwidth'"]),
    ("bandwidth-inf", GOOD, ["--bandwidth", "inf"], ["field 'bandwidth'"]),
    ("base-missing", GOOD, ["--base", "{tmp}/nomodel.json"], ["nomodel.json: file not found"]),
    ("base-binary", GOOD, ["--base", "{tmp}/bin.dat"], ["bin.dat", "UTF-8"]),
    ("base-directory", GOOD, ["--base", "{tmp}/adir"], ["adir: is a directory"]),
    ("base-not-a-model", GOOD, ["--base", "{tmp}/traces.jsonl"], ["traces.jsonl"]),
]

# (id, --out from tmp, extra argv, expected)
OUT_CASES = [
    ("out-is-directory", "{tmp}/adir", [], ["field 'out'", "not a directory"]),
    ("out-under-file", "{tmp}/bin.dat/m.json", [], ["field 'out'", "regular file"]),
    ("out-too-long", "{tmp}/" + "m" * 300, [], ["field 'out'", "at most"]),
    ("out-is-the-input", "{tmp}/traces.jsonl", [], ["field 'out'", "overwrite the input"]),
    ("obs-out-directory", "{tmp}/m.json", ["--obs-out", "{tmp}/adir"], ["field 'obs_out'"]),
    ("obs-out-same-as-out", "{tmp}/m.json", ["--obs-out", "{tmp}/m.json"],
     ["field 'obs_out'", "must differ"]),
]


def _run(tmp_path, capsys, content, out, argv):
    data = tmp_path / "traces.jsonl"
    if content is not None:
        data.write_bytes(content if isinstance(content, bytes) else content.encode())
    (tmp_path / "adir").mkdir()
    (tmp_path / "bin.dat").write_bytes(BINARY)
    before = set(os.listdir(tmp_path))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    rc = main(["fit-em", "--traces", str(data), "--out", out.replace("{tmp}", str(tmp_path)),
               "--no-progress", "--n-init", "1", "--max-iter", "20", *argv])
    return rc, capsys.readouterr(), before


def _check(tmp_path, rc, cap, before, expected):
    err = cap.err
    assert rc == 2, err
    assert "Traceback" not in err and cap.out == ""
    lines = err.strip().splitlines()
    assert [ln for ln in lines if ": error:" in ln] == [lines[-1]], err
    assert lines[-1].startswith("trimpomdp fit-em: error: ")
    for e in expected:
        assert e in lines[-1], (e, lines[-1])
    assert set(os.listdir(tmp_path)) == before  # nothing written, no temporary file


@pytest.mark.parametrize("content,argv,expected", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_fit_em_bad_input(tmp_path, capsys, content, argv, expected):
    rc, cap, before = _run(tmp_path, capsys, content, "{tmp}/m.json", argv)
    _check(tmp_path, rc, cap, before, expected)


@pytest.mark.parametrize("out,argv,expected", [c[1:] for c in OUT_CASES],
                         ids=[c[0] for c in OUT_CASES])
def test_fit_em_bad_out(tmp_path, capsys, out, argv, expected):
    rc, cap, before = _run(tmp_path, capsys, GOOD, out, argv)
    _check(tmp_path, rc, cap, before, expected)


def test_fit_em_writes_model_and_obs_model_together(tmp_path, capsys):
    rc, cap, _ = _run(tmp_path, capsys, _traces(TR_OK2), "{tmp}/m.json",
                      ["--obs-out", "{tmp}/o.json"])
    assert rc == 0, cap.err
    assert (tmp_path / "m.json").exists() and (tmp_path / "o.json").exists()
    assert json.loads(cap.out)["out"].endswith("m.json")


def test_fit_em_case_count():
    assert len(CASES) + len(OUT_CASES) >= 50
