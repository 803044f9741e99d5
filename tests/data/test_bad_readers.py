"""Readers and writers: bad files are InputErrors naming file, line and field; documented inputs
are accepted; silent semantics warn; outputs are never half-written or non-finite.

``CASES`` (one reader call each) is counted in the issue-13 report.
"""
from __future__ import annotations

import gzip
import json
import warnings

import numpy as np
import pytest

from trimpomdp._io import atomic_write, iter_jsonl, read_json, write_files, write_json
from trimpomdp._validate import check_number, check_output_path
from trimpomdp.data import read_problems, read_score_dump, read_traces
from trimpomdp.data.prm800k import read_prm800k
from trimpomdp.data.trim_release import read_hazard, read_step_statistics
from trimpomdp.errors import DataWarning, InputError

PRM_ROW = {"instruction": "Q", "responses": [], "next_response": "s0", "rating": 1,
           "is_preferred_response": True}


def _lines(*objs) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs)


def _problems(tmp, text):
    p = tmp / "math" / "test.jsonl"
    p.parent.mkdir(exist_ok=True)
    p.write_text(text)
    return read_problems(p)


def _prm(tmp, text):
    p = tmp / "prm.jsonl"
    p.write_text(text)
    return read_prm800k(p)


def _json_file(tmp, text, reader):
    p = tmp / "f.json"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return reader(p)


def _steps(tmp, text):
    return _json_file(tmp, text, read_step_statistics)


def _hazard(tmp, text):
    return _json_file(tmp, text, read_hazard)


GOOD_HZ = {"slm": {"hazard_by_step": {str(k): 0.1 for k in range(31)}}}

# (id, call(tmp), expected regex of the InputError message)
CASES = [
    # problems
    ("problems-no-statement", lambda t: _problems(t, _lines({"answer": "1"})),
     r"test.jsonl:1: field 'problem'"),
    ("problems-no-answer", lambda t: _problems(t, _lines({"problem": "Q"})),
     r"test.jsonl:1: field 'answer'"),
    ("problems-statement-object", lambda t: _problems(t, _lines({"problem": {"q": 1},
                                                                 "answer": "1"})),
     r"test.jsonl:1: field 'problem'"),
    ("problems-answer-object", lambda t: _problems(t, _lines({"problem": "Q", "answer": {}})),
     r"test.jsonl:1: field 'answer'"),
    ("problems-answer-bool", lambda t: _problems(t, _lines({"problem": "Q", "answer": True})),
     r"test.jsonl:1: field 'answer'"),
    ("problems-id-list", lambda t: _problems(t, _lines({"problem": "Q", "answer": "1",
                                                        "problem_id": [1]})),
     r"test.jsonl:1: field 'problem_id'"),
    ("problems-array-line", lambda t: _problems(t, "[1]\n"), r"test.jsonl:1: each line"),
    # PRM800K
    ("prm800k-no-instruction", lambda t: _prm(t, _lines({**PRM_ROW, "instruction": None})),
     r"prm.jsonl:1: field 'instruction'"),
    ("prm800k-responses-string", lambda t: _prm(t, _lines({**PRM_ROW, "responses": "s"})),
     r"prm.jsonl:1: field 'responses'"),
    ("prm800k-step-number", lambda t: _prm(t, _lines({**PRM_ROW, "next_response": 3})),
     r"prm.jsonl:1: field 'next_response'"),
    ("prm800k-rating-2", lambda t: _prm(t, _lines({**PRM_ROW, "rating": 2})),
     r"prm.jsonl:1: field 'rating'"),
    ("prm800k-rating-string", lambda t: _prm(t, _lines({**PRM_ROW, "rating": "-1"})),
     r"prm.jsonl:1: field 'rating'"),
    # release artefacts
    ("steps-not-object", lambda t: _steps(t, "[1, 2]"), r"f.json: expected a JSON object"),
    ("steps-missing-field", lambda t: _steps(t, '{"model": "m", "correct_steps": [1]}'),
     r"f.json: field 'incorrect_steps'"),
    ("steps-strings", lambda t: _steps(t, '{"model": "m", "correct_steps": ["a"], '
                                          '"incorrect_steps": [1]}'), r"f.json: field"),
    ("hazard-missing-step", lambda t: _hazard(t, json.dumps({"slm": {"hazard_by_step": {}}})),
     r"f.json: field 'slm.hazard_by_step'"),
    ("hazard-above-1", lambda t: _hazard(t, json.dumps(
        {"slm": {"hazard_by_step": {**GOOD_HZ["slm"]["hazard_by_step"], "3": 1.5}}})),
     r"f.json: field 'slm.hazard_by_step'.*\[0, 1\]"),
    ("hazard-nan", lambda t: _hazard(t, json.dumps(GOOD_HZ).replace("0.1", "NaN", 1)),
     r"f.json: field 'slm.hazard_by_step'"),
    ("json-truncated", lambda t: _steps(t, '{"model": "m", "corr'), r"f.json:1: not valid JSON"),
    ("json-binary", lambda t: _steps(t, b"\x89PNG\r\n\x1a\n\x00\xff"),
     r"f.json: not a UTF-8 text file"),
    ("json-deep", lambda t: _steps(t, "[" * 100000 + "]" * 100000), r"f.json: JSON is nested"),
    ("json-directory", lambda t: read_json(t), r"is a directory; expected a file"),
    ("json-gz-corrupt", lambda t: _json_file(t, b"\x1f\x8b\x08\x00garbage", lambda p: read_json(
        p.rename(p.with_suffix(".gz")))), r"f.gz: cannot read compressed file"),
    # JSON-lines generic
    ("jsonl-gz-truncated", lambda t: list(iter_jsonl(_gz(t, gzip.compress(b'{"a": 1}\n' * 50)[:-12]))),
     r"x.jsonl.gz:\d+: cannot read compressed file"),
    ("jsonl-directory", lambda t: list(iter_jsonl(t)), r"is a directory; expected a file"),
    ("jsonl-missing", lambda t: list(iter_jsonl(t / "nope.jsonl")), r"nope.jsonl: file not found"),
    ("traces-zero-steps", lambda t: read_traces(_txt(t, _lines({"problem_id": "a",
                                                                 "scores": []}))),
     r"t.jsonl:1: field 'scores'"),
    ("traces-tokens-overflow-int", lambda t: read_traces(_txt(t, '{"problem_id": "a", "scores": '
                                                                 '[0.5], "tokens": [' + "9" * 400
                                                          + "]}\n")),
     r"t.jsonl:1: field 'tokens'"),
    ("dump-scores-missing-table", lambda t: read_score_dump(_txt(t, _lines({"problem_id": "a"}))),
     r"t.jsonl:1: field 'step_scores'"),
]


def _gz(tmp, data: bytes):
    p = tmp / "x.jsonl.gz"
    p.write_bytes(data)
    return p


def _txt(tmp, text):
    p = tmp / "t.jsonl"
    p.write_text(text)
    return p


@pytest.mark.parametrize("call,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_reader_rejects_bad_input(tmp_path, call, expected):
    with pytest.raises(InputError, match=expected) as exc:
        call(tmp_path)
    assert "\n" not in str(exc.value)


def test_first_error_null_means_all_correct(tmp_path):
    p = _txt(tmp_path, _lines({"problem_id": "a", "scores": [0.5, 0.6], "first_error": None,
                               "tokens": [1, 2]}))
    (tr,) = read_traces(p)
    assert tr.has_step_labels and tr.error_index is None and tr.labels == (1, 1)


def test_missing_tokens_warn_once_per_file(tmp_path):
    p = _txt(tmp_path, _lines(*({"problem_id": f"a{i}", "scores": [0.5]} for i in range(5))))
    with pytest.warns(DataWarning, match=r"5 of 5 traces have no 'tokens' \(first at line 1\)"):
        read_traces(p)


def test_correct_contradicting_labels_warns(tmp_path):
    p = _txt(tmp_path, _lines({"problem_id": "a", "scores": [0.5, 0.2], "tokens": [1, 1],
                               "labels": [1, 0], "correct": True}))
    with pytest.warns(DataWarning, match="correct=true but a wrong step"):
        read_traces(p)


def test_score_dump_without_token_info_warns(tmp_path):
    p = _txt(tmp_path, _lines({"problem_id": "a", "step_scores": {"qwen_prm": [0.5]},
                               "is_correct": None}))
    with pytest.warns(DataWarning, match="neither 'num_tokens' nor 'step_chars'"):
        (tr,) = read_score_dump(p)
    assert tr.tokens is None and tr.correct is None


def test_score_dump_scores_are_not_clamped(tmp_path):
    p = _txt(tmp_path, _lines({"problem_id": "a", "step_scores": {"qwen_prm": [1.0000001]},
                               "num_tokens": 3}))
    with pytest.raises(InputError, match="Got 1.0000001 instead"):
        read_score_dump(p)


def test_prm800k_traces_carry_the_rated_errors(tmp_path):
    rows = [PRM_ROW,
            {**PRM_ROW, "responses": ["s0"], "next_response": "bad", "rating": -1,
             "is_preferred_response": False},
            {**PRM_ROW, "responses": ["s0"], "next_response": "s1", "rating": 0},
            {**PRM_ROW, "responses": ["s0", "s1"], "next_response": "s2", "rating": None}]
    trs = read_prm800k(_txt(tmp_path, _lines(*rows)))
    by_labels = sorted(tr.labels for tr in trs)
    assert by_labels == [(1, 0), (1, 1, 1)]  # the preferred chain and the rejected alternative
    wrong = next(tr for tr in trs if tr.error_index is not None)
    assert wrong.error_index == 1 and wrong.scores == (1.0, 0.0)


def test_prm800k_shared_data_has_errors(shared_data):
    trs = read_prm800k(shared_data / "prm800k" / "phase1_test.stepwise-critic.jsonl.gz")
    share = np.mean([tr.error_index is not None for tr in trs])
    assert 0.2 < share < 0.9


def test_binned_fit_warns_when_smoothing_dominates():
    from trimpomdp.observation.binned import BinnedObservationModel

    rng = np.random.default_rng(0)
    X = rng.random((300, 2))
    y = np.repeat([0, 1, 2], 100)
    with pytest.warns(DataWarning, match=r"alpha=1 over 400 bins .* S0 80% \(n=100\)"):
        BinnedObservationModel(alpha=1.0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        BinnedObservationModel(alpha=0.01).fit(X, y)  # 4 pseudo-counts vs 100: no warning


def test_kde_fit_rejects_empty_and_warns_on_tiny_classes():
    from trimpomdp.observation.kde import ReflectedKDEObservationModel

    rng = np.random.default_rng(0)
    X = rng.random((60, 2))
    y = np.array([0] * 30 + [1] * 25 + [2] * 5)
    with pytest.warns(DataWarning, match="class S2 has only 5 observations"):
        ReflectedKDEObservationModel().fit(X, y)


def test_write_json_refuses_non_finite_and_names_the_field(tmp_path):
    with pytest.raises(InputError, match=r"m.json: field 'probs\[1\]\[0\]': refusing to write a "
                                         r"non-finite number \(nan\)"):
        write_json(tmp_path / "m.json", {"probs": [[0.5], [float("nan")]]})
    with pytest.raises(InputError, match=r"field 'q.x'"):
        write_json(tmp_path / "m.json", {"q": {"x": float("inf")}})
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "a.txt") as fh:
        fh.write("half")
        raise RuntimeError("crash")
    with pytest.raises(InputError, match="the path is a directory"):
        write_json(tmp_path, {})
    with pytest.raises(InputError, match="name is too long"):
        write_json(tmp_path / ("x" * 300), {})
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match="parent of the path is a regular file"):
        write_json(tmp_path / "f" / "x.json", {})
    write_json(tmp_path / ("y" * 250), {"ok": 1})  # a long but legal name still works
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "y" * 250]


def test_write_files_is_all_or_nothing(tmp_path):
    (tmp_path / "b.md").mkdir()
    with pytest.raises(InputError, match="b.md: cannot write the file: the path is a directory"):
        write_files({tmp_path / "a.json": "{}", tmp_path / "b.md": "# x"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.md"]


@pytest.mark.parametrize("value,kw,ok", [
    (3, {"lo": 1, "integer": True}, True), (3.0, {"integer": True}, True),
    (3.5, {"integer": True}, False), ("3", {}, False), (True, {}, False), (None, {}, False),
    (float("nan"), {}, False), (float("inf"), {}, False), (10 ** 400, {}, False),
    (0, {"lo": 0, "lo_open": True}, False), (2, {"hi": 1}, False),
])
def test_check_number(value, kw, ok):
    if ok:
        check_number(value, "x", **kw)
    else:
        with pytest.raises(InputError, match=r"field 'x': x must be .* Got .* instead\."):
            check_number(value, "x", **kw)


def test_check_output_path_suffixes(tmp_path):
    assert check_output_path(tmp_path / "a" / "b.png", suffixes=(".png",)).name == "b.png"
    with pytest.raises(InputError, match=r"field 'plot'.*'.gif'"):
        check_output_path(tmp_path / "c.gif", option="--plot", suffixes=(".png",))


def test_reader_case_count():
    assert len(CASES) >= 25


@pytest.mark.parametrize("values", [[0, 0.5], [0, True], ["1"], [[0]], [float("nan")], [0, 2], 3])
def test_check_int_array_rejects_what_asarray_would_truncate(values):
    from trimpomdp._validate import check_int_array

    with pytest.raises(InputError, match=r"field 'actions': actions"):
        check_int_array(values, "actions", lo=0, hi=1)


def test_check_int_array_accepts_whole_numbers():
    from trimpomdp._validate import check_int_array

    assert check_int_array([0, 1.0, np.int64(1)], "actions", lo=0, hi=1).tolist() == [0, 1, 1]
