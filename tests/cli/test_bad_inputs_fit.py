"""`trimpomdp fit`: every bad input or option is exit 2 with one line naming file, line, field.

Each case also checks that no traceback is printed and that nothing is written (no --out, no
temporary file). ``CASES`` is counted in the issue-13 report.
"""
from __future__ import annotations

import gzip
import json
import os

import pytest

from trimpomdp.cli.main import main

GOOD = {"problem_id": "ok", "scores": [0.9, 0.4, 0.3], "tokens": [10, 20, 30], "first_error": 1,
        "correct": False}
GOOD_ALL = {"problem_id": "c", "scores": [0.9, 0.8], "tokens": [10, 20], "correct": True}


def _traces(bad: dict | str) -> str:
    line = bad if isinstance(bad, str) else json.dumps(bad)
    return json.dumps(GOOD) + "\n" + json.dumps(GOOD_ALL) + "\n" + line + "\n"


def _tr(**kw) -> str:
    return _traces({**GOOD, "problem_id": "bad", **kw})


def _nofe(**kw) -> str:
    d = {**GOOD, "problem_id": "bad", **kw}
    del d["first_error"]
    return _traces(d)


def _obs(bad: dict) -> str:
    return (json.dumps({"min_prev": 1.0, "current": 0.5, "state": "S0"}) + "\n"
            + json.dumps(bad) + "\n")


# (id, data file content (str/bytes, None = not created), extra argv, expected in the message)
CASES = [
    # --- step-trace lines
    ("score-above-1", _tr(scores=[0.5, 1.5]), [], [":3: field 'scores'", "[0, 1]"]),
    ("score-negative", _tr(scores=[-3, 0.5]), [], [":3: field 'scores'"]),
    ("score-nan", _traces('{"problem_id": "b", "scores": [NaN, 0.5]}'), [], [":3: field 'scores'"]),
    ("score-inf", _traces('{"problem_id": "b", "scores": [1e999, 0.5]}'), [],
     [":3: field 'scores'"]),
    ("score-string", _tr(scores=["0.5", 0.5]), [], [":3: field 'scores'", "'0.5'"]),
    ("score-bool", _tr(scores=[True, 0.5]), [], [":3: field 'scores'"]),
    ("scores-not-list", _tr(scores=0.5), [], [":3: field 'scores'"]),
    ("scores-empty", _tr(scores=[]), [], [":3: field 'scores'"]),
    ("scores-missing", _traces({"problem_id": "b"}), [], [":3: field 'scores'"]),
    ("problem-id-missing", _traces({"scores": [0.5]}), [], [":3: field 'problem_id'"]),
    ("problem-id-object", _tr(problem_id={"a": 1}), [], [":3: field 'problem_id'"]),
    ("tokens-nan", _traces('{"problem_id": "b", "scores": [0.5], "tokens": [NaN], '
                           '"first_error": 0}'), [], [":3: field 'tokens'"]),
    ("tokens-1e999", _traces('{"problem_id": "b", "scores": [0.5], "tokens": [1e999], '
                             '"first_error": 0}'), [], [":3: field 'tokens'"]),
    ("tokens-zero", _tr(tokens=[0, 5]), [], [":3: field 'tokens'", ">= 1"]),
    ("tokens-fractional", _tr(tokens=[1.5, 5]), [], [":3: field 'tokens'", "integer"]),
    ("tokens-string", _tr(tokens=["10", 5]), [], [":3: field 'tokens'"]),
    ("tokens-not-list", _tr(tokens=30), [], [":3: field 'tokens'"]),
    ("tokens-length", _tr(tokens=[10]), [], [":3: field 'tokens'", "one entry per step"]),
    ("label-7", _nofe(labels=[1, 7, 1]), [], [":3: field 'labels'", "[0, 1]"]),
    ("label-negative", _nofe(labels=[-1, 1, 1]), [], [":3: field 'labels'"]),
    ("label-fractional", _nofe(labels=[0.5, 1, 1]), [], [":3: field 'labels'"]),
    ("labels-length", _nofe(labels=[1, 1, 0, 1]), [], [":3: field 'labels'"]),
    ("first-error-range", _tr(first_error=7), [], [":3: field 'first_error'"]),
    ("first-error-negative", _tr(first_error=-1), [], [":3: field 'first_error'"]),
    ("first-error-fractional", _tr(first_error=0.5), [], [":3: field 'first_error'"]),
    ("first-error-string", _tr(first_error="1"), [], [":3: field 'first_error'"]),
    ("first-error-bool", _tr(first_error=True), [], [":3: field 'first_error'"]),
    ("first-error-vs-labels", _tr(first_error=0, labels=[1, 0, 0]), [],
     [":3: field 'first_error'", "disagrees with labels"]),
    ("first-error-null-vs-labels", _tr(first_error=None, labels=[1, 0, 0]), [],
     [":3: field 'first_error'"]),
    ("correct-string-false", _tr(correct="false"), [], [":3: field 'correct'", "'false'"]),
    ("correct-int", _tr(correct=1), [], [":3: field 'correct'"]),
    ("not-json", _traces("{not json"), [], [":3: line is not valid JSON"]),
    ("array-line", _traces("[1, 2, 3]"), [], [":3: each line must be a JSON object"]),
    ("string-line", _traces('"text"'), [], [":3: each line must be a JSON object"]),
    ("deep-nesting", _traces("[" * 200000 + "]" * 200000), [], [":3:", "nested too deeply"]),
    ("no-step-labels", _traces({"problem_id": "u", "scores": [0.5]}), [],
     ["field 'first_error'", "no step labels"]),
    # --- labelled-observation lines
    ("obs-min-prev-above-1", _obs({"min_prev": 1.5, "current": 0.5, "state": "S0"}), [],
     [":2: field 'min_prev'"]),
    ("obs-current-nan", ('{"min_prev": 1, "current": 0.5, "state": "S0"}\n'
                        '{"min_prev": 1, "current": NaN, "state": "S0"}\n'), [],
     [":2: field 'current'"]),
    ("obs-current-string", _obs({"min_prev": 1.0, "current": "0.5", "state": "S0"}), [],
     [":2: field 'current'"]),
    ("obs-state-unknown", _obs({"min_prev": 1.0, "current": 0.5, "state": "S9"}), [],
     [":2: field 'state'"]),
    ("obs-state-list", _obs({"min_prev": 1.0, "current": 0.5, "state": ["S0"]}), [],
     [":2: field 'state'"]),
    ("obs-state-missing", _obs({"min_prev": 1.0, "current": 0.5, "state_": "S0"}), [],
     [":2: field"]),
    # --- files
    ("empty-file", "", [], ["file is empty"]),
    ("blank-lines-only", "\n\n  \n", [], ["file is empty"]),
    ("binary-file", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary", [], ["not a UTF-8 text file"]),
    ("gzip-without-gz-name", gzip.compress(_tr().encode()), [], ["gzip-compressed"]),
    ("missing-file", None, [], ["file not found"]),
    # --- dataset-level (the message names the file)
    ("kde-class-missing", json.dumps(GOOD_ALL) + "\n", ["--method", "kde"],
     ["data.jsonl: ", "S1"]),
    ("binned-alpha0-class-missing", json.dumps(GOOD_ALL) + "\n", ["--alpha", "0"],
     ["data.jsonl: ", "S1"]),
    # --- options
    ("bin-size-zero", _traces(GOOD), ["--bin-size", "0"], ["field 'bin_size'"]),
    ("bin-size-negative", _traces(GOOD), ["--bin-size", "-0.05"], ["field 'bin_size'"]),
    ("bin-size-nan", _traces(GOOD), ["--bin-size", "nan"], ["field 'bin_size'"]),
    ("bin-size-inf", _traces(GOOD), ["--bin-size", "inf"], ["field 'bin_size'"]),
    ("bin-size-not-dividing", _traces(GOOD), ["--bin-size", "0.3"], ["field 'bin_size'"]),
    ("bin-size-above-1", _traces(GOOD), ["--bin-size", "2"], ["field 'bin_size'"]),
    ("alpha-negative", _traces(GOOD), ["--alpha", "-1"], ["field 'alpha'"]),
    ("alpha-nan", _traces(GOOD), ["--alpha", "nan"], ["field 'alpha'"]),
    ("alpha-inf", _traces(GOOD), ["--alpha", "inf"], ["field 'alpha'"]),
]

# --out variants: (id, how to build the --out path from tmp, expected)
OUT_CASES = [
    ("out-is-directory", lambda t: t / "adir", ["field 'out'", "not a directory"]),
    ("out-under-regular-file", lambda t: t / "data.jsonl" / "m.json",
     ["field 'out'", "is a regular file"]),
    ("out-name-too-long", lambda t: t / ("m" * 300 + ".json"), ["field 'out'", "at most"]),
    ("out-trailing-slash", lambda t: str(t / "newdir") + "/", ["field 'out'"]),
    ("out-empty", lambda t: "", ["field 'out'"]),
    ("out-is-the-input", lambda t: t / "data.jsonl", ["field 'out'", "overwrite the input"]),
]


def _run_case(tmp_path, capsys, content, argv, out=None):
    data = tmp_path / "data.jsonl"
    if content is not None:
        data.write_bytes(content if isinstance(content, bytes) else content.encode())
    (tmp_path / "adir").mkdir()
    before = set(os.listdir(tmp_path))
    out = tmp_path / "model.json" if out is None else out
    rc = main(["fit", "--data", str(data), "--out", str(out), *argv])
    err = capsys.readouterr().err
    return rc, err, before


def _check(tmp_path, rc, err, before, expected):
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert [ln for ln in lines if ": error:" in ln] == [lines[-1]], err
    assert lines[-1].startswith("trimpomdp fit: error: ")
    for e in expected:
        assert e in lines[-1], (e, lines[-1])
    assert set(os.listdir(tmp_path)) == before  # nothing written, no temporary file


@pytest.mark.parametrize("content,argv,expected", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_fit_bad_input(tmp_path, capsys, content, argv, expected):
    rc, err, before = _run_case(tmp_path, capsys, content, argv)
    _check(tmp_path, rc, err, before, expected)
    assert all(str(tmp_path / "data.jsonl") in err or "field '" in err for _ in [0])


@pytest.mark.parametrize("make,expected", [c[1:] for c in OUT_CASES],
                         ids=[c[0] for c in OUT_CASES])
def test_fit_bad_out(tmp_path, capsys, make, expected):
    rc, err, before = _run_case(tmp_path, capsys, _traces(GOOD), [], out=make(tmp_path))
    _check(tmp_path, rc, err, before, expected)


def test_fit_first_error_null_is_all_correct(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(GOOD) + "\n"
                    + json.dumps({"problem_id": "n", "scores": [0.9, 0.8], "first_error": None})
                    + "\n")
    assert main(["fit", "--data", str(data), "--out", str(tmp_path / "m.json"),
                 "--labelling", "every-prefix"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["per_class"] == {"S0": 3, "S1": 1, "S2": 1}


def test_fit_warns_when_smoothing_dominates(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(_traces(GOOD))
    assert main(["fit", "--data", str(data), "--out", str(tmp_path / "m.json")]) == 0
    cap = capsys.readouterr()
    err = cap.err
    share = json.loads(cap.out)["smoothing_share"]
    assert set(share) == {"S0", "S1", "S2"} and all(v > 0.9 for v in share.values())
    assert err.startswith("trimpomdp fit: warning: smoothing alpha=1 over 400 bins")
    assert len(err.strip().splitlines()) == 1


def test_fit_warns_when_correct_contradicts_labels(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(_tr(correct=True))
    assert main(["fit", "--data", str(data), "--out", str(tmp_path / "m.json"),
                 "--alpha", "0.001"]) == 0
    err = capsys.readouterr().err
    assert "1 traces have correct=true but a wrong step" in err and "first at line 3" in err


def test_fit_case_count():
    assert len(CASES) + len(OUT_CASES) >= 60
