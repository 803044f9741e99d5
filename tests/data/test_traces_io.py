"""Step traces and labelled observations: schema, round trips and bad-input messages."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trimpomdp.data import (
    StepTrace,
    every_prefix,
    read_labelled_observations,
    read_traces,
    release_prefixes,
    write_traces,
)
from trimpomdp.errors import InputError


@pytest.mark.filterwarnings("ignore::trimpomdp.errors.DataWarning")  # trace "b" has no tokens
def test_trace_round_trip(tmp_path):
    trs = [StepTrace(problem_id="a", scores=(0.9, 0.2, 0.8), tokens=(10, 20, 30), first_error=1,
                     correct=False),
           StepTrace(problem_id="b", scores=(1.0,), labels=(1,), correct=True)]
    write_traces(tmp_path / "t.jsonl", trs)
    assert read_traces(tmp_path / "t.jsonl") == trs


@pytest.mark.parametrize("line,field", [
    ('{"problem_id": "x", "scores": [0.5, 1.5]}', "scores"),
    ('{"problem_id": "x", "scores": [0.5, NaN]}', "scores"),
    ('{"problem_id": "x", "scores": [0.5], "tokens": [0]}', "tokens"),
    ('{"problem_id": "x", "scores": [0.5], "first_error": 3}', "first_error"),
    ('{"scores": [0.5]}', "problem_id"),
])
def test_bad_trace_lines_name_file_line_field(tmp_path, line, field):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"problem_id": "ok", "scores": [0.5]}\n' + line + "\n")
    with pytest.raises(InputError) as exc:
        read_traces(p)
    msg = str(exc.value)
    assert f"{p}:2: field '{field}'" in msg


def test_not_json_and_empty(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"problem_id": "ok", "scores": [0.5]}\n{not json\n')
    with pytest.raises(InputError, match=r"x.jsonl:2: line is not valid JSON"):
        read_traces(p)
    p.write_text("")
    with pytest.raises(InputError, match="file is empty"):
        read_traces(p)


def test_labelled_observations_unknown_state(tmp_path):
    p = tmp_path / "o.jsonl"
    p.write_text(json.dumps({"min_prev": 1.0, "current": 0.5, "state": "S0"}) + "\n"
                 + json.dumps({"min_prev": 1.0, "current": 0.5, "state": "S7"}) + "\n")
    with pytest.raises(InputError, match=r"o.jsonl:2: field 'state': state must be one of"):
        read_labelled_observations(p)


def test_release_rule_and_every_prefix():
    correct = StepTrace(problem_id="c", scores=(0.9, 0.8, 0.95, 0.7, 0.99), correct=True)
    wrong = StepTrace(problem_id="w", scores=(0.9, 0.3, 0.4, 0.6), first_error=1)
    d = release_prefixes([correct, wrong], n_cuts=3, random_state=0)
    ys = d.y.tolist()
    assert ys.count(0) == 3 and ys.count(2) == 1 and ys.count(1) == 1
    # S2 example: observation of the first-error step = (min of previous, current)
    assert d.X[d.y == 2].tolist() == [[0.9, 0.3]]
    s1 = d.X[d.y == 1][0]
    assert s1[0] == pytest.approx(0.3) and s1[1] in (0.4, 0.6)
    e = every_prefix([correct, wrong])
    assert e.y.tolist() == [0, 0, 0, 0, 0, 0, 2, 1, 1]
    np.testing.assert_allclose(e.X[0], [1.0, 0.9])
