"""Cassandra .pomdp reader/writer: every syntax form, round trips, and path:line errors."""
from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np
import pytest

from trimpomdp.errors import InputError
from trimpomdp.pomdp.cassandra import parse_cassandra, read_cassandra, write_cassandra
from trimpomdp.pomdp.tabular import TabularPOMDP

FILES = Path(__file__).parent / "files"


def same(m1: TabularPOMDP, m2: TabularPOMDP) -> bool:
    same_t = all((t1 != t2).nnz == 0 for t1, t2 in zip(m1.sparse_T(), m2.sparse_T()))
    return (same_t and np.array_equal(m1.O, m2.O)
            and np.array_equal(m1.R, m2.R) and np.array_equal(m1.b0, m2.b0)
            and m1.discount == m2.discount)


def test_tiger_named_form():
    m = read_cassandra(FILES / "tiger_named.pomdp")
    assert m.state_names == ("tiger-left", "tiger-right")
    assert m.action_names == ("listen", "open-left", "open-right")
    np.testing.assert_array_equal(m.T[0], np.eye(2))
    np.testing.assert_array_equal(m.T[1], np.full((2, 2), 0.5))
    np.testing.assert_array_equal(m.O[0], [[0.85, 0.15], [0.15, 0.85]])
    np.testing.assert_array_equal(m.R, [[-1, -1], [-100, 10], [10, -100]])
    np.testing.assert_array_equal(m.b0, [0.5, 0.5])
    assert m.discount == 0.95


def test_every_syntax_form_and_reward_folding():
    m = read_cassandra(FILES / "forms.pomdp")
    np.testing.assert_array_equal(m.T[0], [[0.5, 0.5, 0], [0, 1, 0], [0.2, 0.3, 0.5]])
    np.testing.assert_array_equal(m.T[1], [[0, 0, 1], [1, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(m.O[0, 2], [0.9, 0.1])
    np.testing.assert_array_equal(m.O[1], np.full((3, 2), 0.5))
    np.testing.assert_array_equal(m.b0, [0.5, 0, 0.5])
    # values: cost -> rewards are negated; R(a,s,s',o) folded with T and O
    np.testing.assert_allclose(m.R, [[-3.0, -1.0, -1.0], [-8.0, 0.0, -5.5]])


@pytest.mark.parametrize("start, expect", [
    ("start: 0.25 0.25 0.5", [0.25, 0.25, 0.5]),
    ("start: uniform", [1 / 3, 1 / 3, 1 / 3]),
    ("start: s1", [0, 1, 0]),
    ("start exclude: s0", [0, 0.5, 0.5]),
    ("start include: s0 2", [0.5, 0, 0.5]),
])
def test_start_forms(start, expect):
    text = (f"discount: 1\nvalues: reward\nstates: s0 s1 s2\nactions: 1\nobservations: 1\n"
            f"{start}\nT: * identity\nO: * uniform\n")
    np.testing.assert_allclose(parse_cassandra(text).b0, expect)


def test_round_trip_of_the_test_files(tmp_path):
    for name in ("tiger_named.pomdp", "forms.pomdp"):
        m = read_cassandra(FILES / name)
        write_cassandra(m, tmp_path / name)
        assert same(m, read_cassandra(tmp_path / name))
        write_cassandra(m, tmp_path / (name + ".gz"))
        assert same(m, read_cassandra(tmp_path / (name + ".gz")))


def test_terminal_states_are_written_as_absorbing(tmp_path):
    m = read_cassandra(FILES / "forms.pomdp")
    mt = TabularPOMDP(T=m.T, O=m.O, R=m.R, discount=m.discount, b0=m.b0,
                      terminal=np.array([False, True, False]))
    write_cassandra(mt, tmp_path / "t.pomdp")
    back = read_cassandra(tmp_path / "t.pomdp")
    assert same(mt.absorbing(), back)


def test_shared_classic_files_read_and_round_trip(shared_data, tmp_path):
    files = sorted(glob.glob(os.path.join(shared_data, "pomdp", "*.pomdp")))
    files += sorted(glob.glob(os.path.join(shared_data, "pomdp", "*.pomdp.gz")))
    assert len(files) >= 13
    for f in files:
        if "7_8" in f:  # 12,545 states: ~4 s per read; covered by the benchmark
            continue
        m = read_cassandra(f)
        out = tmp_path / (Path(f).name.replace(".gz", ""))
        write_cassandra(m, out)
        assert same(m, read_cassandra(out)), f


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("TRIMPOMDP_SLOW_TESTS"),
                    reason="~25 s; set TRIMPOMDP_SLOW_TESTS=1 to round-trip RockSample(7,8)")
def test_rocksample_7_8_round_trips(shared_data, tmp_path):
    m = read_cassandra(os.path.join(shared_data, "pomdp", "RockSample_7_8.pomdp.gz"))
    assert m.is_sparse and m.n_states == 12545
    write_cassandra(m, tmp_path / "rs78.pomdp.gz")
    assert same(m, read_cassandra(tmp_path / "rs78.pomdp.gz"))


HEADER = "discount: 0.9\nvalues: reward\nstates: a b\nactions: go\nobservations: o\n"


@pytest.mark.parametrize("text, line, match", [
    ("", 1, "the file is empty"),
    ("values: reward\nstates: a b\nactions: go\nobservations: o\nT: go identity\n", 5,
     "missing 'discount:'"),
    ("discount: 0.9\nstates: a b\nobservations: o\nT: go identity\n", 4, "missing 'actions:'"),
    (HEADER + "T: go\n0.5 0.4\n0 1\nO: go uniform\n", 7, "sums to 0.9; expected 1"),
    (HEADER + "T: go : a : c 1.0\n", 6, "unknown state 'c'"),
    (HEADER + "T: jump identity\n", 6, "unknown action 'jump'"),
    (HEADER + "T: go\n1 0\n0", 8, "expected 4 numbers .* ends after 3 .truncated"),
    (HEADER + "T: go : a : b", 6, "the file ends here .truncated"),
    (HEADER + "T: go identity\nO: go : a : o zero\n", 7, "expected a probability"),
    (HEADER + "T: go identity\nO: go uniform\nstart: 0.5 0.5\n", 8, "must come before"),
    (HEADER + "T: go identity\n", 6, "no O: entry gives"),
    ("discount: 0.9\nvalues: money\n", 2, "values must be 'reward' or 'cost'"),
    ("hello world\n", 1, "expected a declaration"),
    (HEADER + "start: 0.3 0.3\nT: go identity\nO: go uniform\n", 6, "start belief"),
])
def test_malformed_files_name_path_and_line(tmp_path, text, line, match):
    p = tmp_path / "bad.pomdp"
    p.write_text(text)
    with pytest.raises(InputError, match=match) as info:
        read_cassandra(p)
    assert info.value.path == str(p) and info.value.line == line
    assert str(info.value).startswith(f"{p}:{line}: ")


def test_missing_file_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_cassandra(tmp_path / "nope.pomdp")
