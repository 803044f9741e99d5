"""POMDPX reader: flat and factored files, flattening, the RockSample files, clear errors."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from trimpomdp.errors import InputError
from trimpomdp.pomdp.cassandra import read_cassandra, read_pomdp
from trimpomdp.pomdp.pomdpx import MAX_STATES, parse_pomdpx, read_pomdpx
from trimpomdp.solvers.sarsop import SARSOPSolver

FILES = Path(__file__).parent / "files"


def test_tiger_pomdpx_equals_the_cassandra_tiger():
    x = read_pomdpx(FILES / "tiger.pomdpx")
    c = read_cassandra(FILES / "tiger_named.pomdp")
    np.testing.assert_array_equal(x.dense_T(), c.dense_T())
    np.testing.assert_array_equal(x.O, c.O)
    np.testing.assert_array_equal(x.R, c.R)
    np.testing.assert_array_equal(x.b0, c.b0)
    assert x.discount == c.discount and x.action_names == c.action_names
    assert x.name == "tiger" and x.meta["format"] == "pomdpx"


def test_factored_file_is_flattened_first_variable_slowest():
    m = read_pomdpx(FILES / "factored.pomdpx")
    assert (m.n_states, m.n_actions, m.n_observations) == (6, 2, 6)
    assert m.state_names[:3] == ("s0_off", "s0_on", "s1_off")
    assert m.observation_names[-1] == "s2_hi"
    T = m.dense_T()
    # right from (x=0, y=off): x -> 1 w.p. 0.8, y stays w.p. 0.9
    assert T[1, 0, 2] == pytest.approx(0.8 * 0.9) and T[1, 0, 3] == pytest.approx(0.8 * 0.1)
    np.testing.assert_allclose(T.sum(axis=2), 1.0)
    # observation: x exactly, y noisy under stay, uniform under right
    assert m.O[0, 3, 2] == pytest.approx(0.25) and m.O[0, 3, 3] == pytest.approx(0.75)
    assert m.O[1, 3, 2] == pytest.approx(0.5) and m.O[1, 0, 4] == 0.0
    # the two reward functions add up
    np.testing.assert_array_equal(m.R, [[0, 0, 0, 0, 5, 5], [0, -1, 0, -1, 5, 4]])
    np.testing.assert_allclose(m.b0, [0.3, 0.7, 0, 0, 0, 0])


def test_tiger_pomdpx_solves_to_the_tiger_value():
    _, info = SARSOPSolver(timeout=10).solve_info(read_pomdpx(FILES / "tiger.pomdpx"))
    assert info.converged and info.lower == pytest.approx(19.371, abs=0.01)


def test_gzip_and_dispatch_by_extension(tmp_path):
    p = tmp_path / "t.pomdpx.gz"
    p.write_bytes(gzip.compress((FILES / "tiger.pomdpx").read_bytes()))
    m = read_pomdp(p)
    assert m.name == "t" and m.n_states == 2
    assert read_pomdp(FILES / "tiger_named.pomdp").n_states == 2


def test_rocksample_7_8_pomdpx_reads_and_matches_the_flat_generator(shared_data):
    x = read_pomdp(os.path.join(shared_data, "pomdp", "RockSample_7_8.pomdpx"))
    assert (x.n_states, x.n_actions, x.n_observations) == (50 * 2 ** 8, 13, 2)
    assert x.is_sparse and x.meta["state_sizes"] == [50] + [2] * 8
    np.testing.assert_allclose(x.b0.sum(), 1.0)
    assert x.R.max() == 10.0 and x.R.min() == -100.0


@pytest.mark.slow
def test_rocksample_7_8_pomdpx_and_pomdp_gz_have_overlapping_bounds(shared_data):
    """The factored and the generated flat RockSample(7,8) are one problem: bounds agree."""
    x = read_pomdp(os.path.join(shared_data, "pomdp", "RockSample_7_8.pomdpx"))
    c = read_pomdp(os.path.join(shared_data, "pomdp", "RockSample_7_8.pomdp.gz"))
    _, ix = SARSOPSolver(timeout=8).solve_info(x)
    _, ic = SARSOPSolver(timeout=8).solve_info(c)
    assert ix.lower <= ic.upper + 1e-6 and ic.lower <= ix.upper + 1e-6
    assert ix.lower > 15 and ic.lower > 15


@pytest.mark.slow
def test_rocksample_11_11_pomdpx_reads(shared_data):
    m = read_pomdp(os.path.join(shared_data, "pomdp", "RockSample_11_11.pomdpx"))
    assert (m.n_states, m.n_actions, m.n_observations) == (122 * 2 ** 11, 16, 2)
    assert m.state_names[1] == "s1"  # too many to name by value
    np.testing.assert_allclose(m.b0.sum(), 1.0)


HEAD = ('<pomdpx><Discount>0.9</Discount><Variable>{vars}'
        '<ObsVar vname="o"><NumValues>2</NumValues></ObsVar>'
        '<ActionVar vname="a"><NumValues>2</NumValues></ActionVar><RewardVar vname="r"/>'
        '</Variable>')
ONE = '<StateVar vnamePrev="x0" vnameCurr="x1"><NumValues>2</NumValues></StateVar>'
INIT = ('<InitialStateBelief><CondProb><Var>x0</Var><Parent>null</Parent><Parameter><Entry>'
        '<Instance>-</Instance><ProbTable>uniform</ProbTable></Entry></Parameter></CondProb>'
        '</InitialStateBelief>')
TRANS = ('<StateTransitionFunction><CondProb><Var>x1</Var><Parent>a x0</Parent><Parameter>'
         '<Entry><Instance>* - -</Instance><ProbTable>{t}</ProbTable></Entry></Parameter>'
         '</CondProb></StateTransitionFunction>')
OBS = ('<ObsFunction><CondProb><Var>o</Var><Parent>x1</Parent><Parameter{ptype}><Entry>'
       '<Instance>* -</Instance><ProbTable>uniform</ProbTable></Entry></Parameter></CondProb>'
       '</ObsFunction>')


def _doc(vars_: str = ONE, init: str = INIT, t: str = "identity", ptype: str = "",
         extra: str = "") -> str:
    return (HEAD.format(vars=vars_) + init + TRANS.format(t=t) + OBS.format(ptype=ptype)
            + extra + "</pomdpx>")


def test_minimal_document_parses():
    m = parse_pomdpx(_doc())
    assert m.n_states == 2 and np.array_equal(m.dense_T()[0], np.eye(2))


BAD = [
    ("<pomdpx><Discount>", "not well-formed XML", None),
    ("<pomdp/>", "root element must be <pomdpx>", None),
    (_doc().replace("<Discount>0.9", "<Discount>1.5"), "Discount must be a number in [0, 1]",
     "Discount"),
    (_doc().replace("<Discount>0.9", "<Discount>nan"), "Discount must be a number in [0, 1]",
     "Discount"),
    (_doc(t="0.5 0.5 0.5"), "must have 4 values", "ProbTable"),
    (_doc(t="0.5 0.5 nan 1"), "must be finite", "ProbTable"),
    (_doc(t="1 0 0.5 0.4"), "sums to 0.9", "CondProb"),
    (_doc(t="-1 2 0 1"), "non-negative", "ProbTable"),
    (_doc(t="one two three four"), "must hold numbers", "ProbTable"),
    (_doc().replace("<Parent>a x0</Parent>", "<Parent>a zz</Parent>"), "unknown variable 'zz'",
     "Parent"),
    (_doc().replace("<Parent>a x0</Parent>", "<Parent>a x1</Parent>"), "not supported here",
     "Parent"),
    (_doc().replace("<Instance>* - -</Instance>", "<Instance>* s7 -</Instance>"),
     "unknown value 's7'", "Instance"),
    (_doc().replace("<Instance>* - -</Instance>", "<Instance>* -</Instance>"),
     "must have 3 values", "Instance"),
    (_doc(ptype=' type="DD"'), "decision diagrams are not supported", "Parameter"),
    (_doc(vars_=''.join(f'<StateVar vnamePrev="v{i}_0" vnameCurr="v{i}_1"><NumValues>2'
                        '</NumValues></StateVar>' for i in range(21))),
     f"at most {MAX_STATES} states", "StateVar"),
    (_doc(vars_=ONE + ONE), "variable names must be unique", "StateVar"),
    (_doc(vars_=ONE.replace("<NumValues>2", "<NumValues>0")), "NumValues must be a positive",
     "NumValues"),
    (_doc().replace('<ActionVar vname="a"><NumValues>2</NumValues></ActionVar>', ""),
     "must declare an ActionVar", "Variable"),
    (_doc().replace("<ObsFunction>", "<ObsFunctionX>").replace("</ObsFunction>",
                                                                "</ObsFunctionX>"),
     "must contain a <ObsFunction> element", "pomdpx"),
    (_doc(init=INIT.replace("uniform", "0.2 0.2")), "must sum to 1", "CondProb"),
    (_doc(init="<InitialStateBelief></InitialStateBelief>"), "must have a <CondProb> for 'x0'",
     "InitialStateBelief"),
    (_doc(extra='<RewardFunction><Func><Var>r</Var><Parent>a</Parent><Parameter><Entry>'
          '<Instance>-</Instance><ValueTable>1 inf</ValueTable></Entry></Parameter></Func>'
          '</RewardFunction>'), "must be finite", "ValueTable"),
    (_doc(extra='<RewardFunction><Func><Var>x1</Var><Parent>a</Parent><Parameter><Entry>'
          '<Instance>- -</Instance><ValueTable>1 1 1 1</ValueTable></Entry></Parameter></Func>'
          '</RewardFunction>'), "must be the RewardVar. Got 'x1'", "Var"),
]


@pytest.mark.parametrize("text, what, element", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_documents_name_file_line_and_element(tmp_path, text, what, element):
    p = tmp_path / "bad.pomdpx"
    p.write_text(text)
    with pytest.raises(InputError) as exc:
        read_pomdpx(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}:") and what in msg, msg
    assert exc.value.line is not None
    if element is not None:
        assert exc.value.field == element, msg


def test_binary_file_and_directory_are_refused(tmp_path):
    p = tmp_path / "bin.pomdpx"
    p.write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(InputError, match="binary data"):
        read_pomdpx(p)
    with pytest.raises(InputError, match="is a directory"):
        read_pomdpx(tmp_path)
    with pytest.raises(InputError, match="file not found"):
        read_pomdpx(tmp_path / "nope.pomdpx")
