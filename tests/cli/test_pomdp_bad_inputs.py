"""Bad inputs to `solve-pomdp` and `evaluate-pomdp`: exit 2, one clear stderr line, no output.

Counts (pytest -q --co): see the parametrized lists; every case checks the exit code, a single
`trimpomdp <command>: error: ...` line (argparse's own errors: its usage + error lines), no
traceback, nothing on stdout and no policy file written.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from trimpomdp.cli.main import main

TIGER = str(Path(__file__).parents[1] / "pomdp" / "files" / "tiger_named.pomdp")
SOLVERS = ["sarsop", "pbvi", "perseus", "qmdp", "fib", "pomdpsol"]
HEAD = "discount: 0.9\nstates: 2\nactions: 1\nobservations: 1\n"
OK_BODY = "T: 0 identity\nO: 0 uniform\nR: 0 : * : * : * 1\n"


def _check(capsys, rc: int, command: str, what: str, *, argparse_error: bool = False) -> None:
    out, err = capsys.readouterr()
    assert rc == 2, err
    assert out == "" and "Traceback" not in err
    lines = [x for x in err.splitlines() if x.strip()]
    if argparse_error:
        assert lines[-1].startswith(f"trimpomdp {command}: error:") and what in lines[-1], err
    else:
        assert len(lines) == 1, err
        assert lines[0].startswith(f"trimpomdp {command}: error:") and what in lines[0], err


# -- numeric options -------------------------------------------------------------------------
BAD_TIMEOUTS = ["-1", "0", "nan", "inf", "-inf"]


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("value", BAD_TIMEOUTS)
def test_bad_timeout(tmp_path, capsys, solver, value):
    out = tmp_path / "p.json"
    rc = main(["solve-pomdp", TIGER, "--solver", solver, f"--timeout={value}", "--out", str(out),
               "--quiet"])
    _check(capsys, rc, "solve-pomdp", "--timeout must be a finite number > 0")
    assert not out.exists()


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "-1e-9"])
def test_bad_precision(tmp_path, capsys, value):
    rc = main(["solve-pomdp", TIGER, f"--precision={value}", "--quiet"])
    _check(capsys, rc, "solve-pomdp", "--precision must be a finite number >= 0")


@pytest.mark.parametrize("args, what", [
    (["--timeout", "abc"], "invalid float value"),
    (["--precision", ""], "invalid float value"),
    (["--solver", "bogus"], "invalid choice"),
])
def test_argparse_errors(capsys, args, what):
    rc = main(["solve-pomdp", TIGER, *args])
    _check(capsys, rc, "solve-pomdp", what, argparse_error=True)


def test_out_is_a_directory(tmp_path, capsys):
    rc = main(["solve-pomdp", TIGER, "--out", str(tmp_path), "--quiet"])
    _check(capsys, rc, "solve-pomdp", "Got a directory instead")


def test_out_under_a_regular_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    rc = main(["solve-pomdp", TIGER, "--out", str(f / "p.json"), "--quiet"])
    _check(capsys, rc, "solve-pomdp", "--out must be in an existing folder")


@pytest.mark.parametrize("solver", ["sarsop", "pbvi", "perseus", "qmdp", "fib"])
def test_discount_one(tmp_path, capsys, solver):
    p = tmp_path / "d1.pomdp"
    p.write_text(HEAD.replace("0.9", "1") + OK_BODY)
    rc = main(["solve-pomdp", str(p), "--solver", solver, "--timeout", "2", "--quiet"])
    _check(capsys, rc, "solve-pomdp", "needs a discount < 1")


# -- model files -----------------------------------------------------------------------------
def _gz_garbage(p: Path) -> None:
    p.write_bytes(gzip.compress(b"discount: 0.9\n" * 50)[:40])


MODEL_TEXT = [
    ("empty", "", "the file is empty"),
    ("nul", HEAD + "\x00" + OK_BODY, "binary data"),
    ("states-2e9", "discount: 0.9\nstates: 2000000000\nactions: 2\nobservations: 2\n",
     "the number of states must be at most"),
    ("actions-2e9", "discount: 0.9\nstates: 2\nactions: 2000000000\nobservations: 2\n",
     "the number of actions must be at most"),
    ("observations-2e9", "discount: 0.9\nstates: 2\nactions: 2\nobservations: 2000000000\n",
     "the number of observations must be at most"),
    ("dense-product", "discount: 0.9\nstates: 1000000\nactions: 100\nobservations: 100\n",
     "actions × states × observations must be at most"),
    ("nan-T", HEAD + "T: 0\nnan 1\n0 1\nO: 0 uniform\n", "finite numbers for the T: matrix"),
    ("inf-T-entry", HEAD + "T: 0 : 0 : 0 inf\n", "a finite number"),
    ("nan-O", HEAD + "T: 0 identity\nO: 0 : * nan\n", "finite numbers"),
    ("inf-R", HEAD + "T: 0 identity\nO: 0 uniform\nR: 0 : * : * : * inf\n", "a finite number"),
    ("nan-R-matrix", HEAD + "T: 0 identity\nO: 0 uniform\nR: 0 : 0\nnan nan\n",
     "finite numbers"),
    ("nan-discount", HEAD.replace("0.9", "nan") + OK_BODY, "a finite number"),
    ("discount-2", HEAD.replace("0.9", "2") + OK_BODY, "discount must be in [0, 1]"),
    ("nan-start", HEAD + "start: nan 1\n" + OK_BODY, "start probabilities must be finite"),
    ("negative-prob", HEAD + "T: 0\n1.5 -0.5\n0 1\nO: 0 uniform\n", "non-negative"),
    ("row-sum", HEAD + "T: 0\n0.5 0.4\n0 1\nO: 0 uniform\n", "sums to 0.9"),
    ("unknown-state", HEAD.replace("states: 2", "states: a b") + "T: 0 : a : c 1\n",
     "unknown state 'c'"),
    ("truncated", HEAD + "T: 0\n1 0\n0", "truncated"),
    ("missing-states", "discount: 0.9\nactions: 1\nobservations: 1\nT: 0 identity\n",
     "missing 'states:'"),
    ("no-O-row", HEAD + "T: 0 identity\n", "no O: entry gives"),
    ("pomdpx-bad-xml", None, "not well-formed XML"),
    ("pomdpx-too-large", None, "the flattened state space must have at most"),
    ("not-utf8", None, "cannot read file"),
    ("gz-truncated", None, "cannot read file"),
]


def _write_model(tmp_path: Path, case: str, text: str | None) -> Path:
    if case == "pomdpx-bad-xml":
        p = tmp_path / "bad.pomdpx"
        p.write_text("<pomdpx><Discount>0.9</Discount>")
    elif case == "pomdpx-too-large":
        p = tmp_path / "big.pomdpx"
        svars = "".join(f'<StateVar vnamePrev="v{i}_0" vnameCurr="v{i}_1"><NumValues>4'
                        "</NumValues></StateVar>" for i in range(11))
        p.write_text(f"<pomdpx><Discount>0.9</Discount><Variable>{svars}"
                     '<ObsVar vname="o"><NumValues>2</NumValues></ObsVar>'
                     '<ActionVar vname="a"><NumValues>2</NumValues></ActionVar></Variable>'
                     "</pomdpx>")
    elif case == "not-utf8":
        p = tmp_path / "latin.pomdp"
        p.write_bytes(HEAD.encode() + b"# caf\xe9\n" + OK_BODY.encode())
    elif case == "gz-truncated":
        p = tmp_path / "t.pomdp.gz"
        _gz_garbage(p)
    else:
        assert text is not None
        p = tmp_path / "bad.pomdp"
        p.write_text(text)
    return p


@pytest.mark.parametrize("case, text, what", MODEL_TEXT, ids=[c[0] for c in MODEL_TEXT])
def test_bad_model_file(tmp_path, capsys, case, text, what):
    p = _write_model(tmp_path, case, text)
    out = tmp_path / "p.json"
    rc = main(["solve-pomdp", str(p), "--out", str(out), "--quiet", "--timeout", "2"])
    _check(capsys, rc, "solve-pomdp", what)
    assert not out.exists()
    # evaluate-pomdp reads models through the same readers, before the policy
    rc = main(["evaluate-pomdp", str(p), str(out)])
    _check(capsys, rc, "evaluate-pomdp", what)


@pytest.mark.parametrize("kind", ["missing", "directory", "binary"])
def test_model_path_is_not_a_model_file(tmp_path, capsys, kind):
    p = tmp_path / "m.pomdp"
    if kind == "directory":
        p.mkdir()
    elif kind == "binary":
        p.write_bytes(bytes(range(256)) * 8)
    rc = main(["solve-pomdp", str(p), "--quiet"])
    what = {"missing": "file not found", "directory": "is a directory",
            "binary": "cannot read file"}[kind]
    _check(capsys, rc, "solve-pomdp", what)


def test_line_numbers_are_reported(tmp_path, capsys):
    p = tmp_path / "bad.pomdp"
    p.write_text(HEAD + "T: 0\n1 0\nnan 1\nO: 0 uniform\n")
    rc = main(["solve-pomdp", str(p), "--quiet"])
    _check(capsys, rc, "solve-pomdp", f"{p}:7: expected 4 finite numbers")


# -- evaluate-pomdp --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiger_policy(tmp_path_factory):
    out = tmp_path_factory.mktemp("pol") / "tiger.json"
    assert main(["solve-pomdp", TIGER, "--solver", "qmdp", "--out", str(out), "--quiet"]) == 0
    return str(out)


@pytest.mark.parametrize("args, what", [
    (["--seed", "-1"], "--seed must be an integer >= 0"),
    (["--seed", "-100"], "--seed must be an integer >= 0"),
    (["--runs", "1"], "--runs must be an integer >= 2"),
    (["--runs", "0"], "--runs must be an integer >= 2"),
    (["--runs", "-5"], "--runs must be an integer >= 2"),
    (["--horizon", "0"], "--horizon must be a positive integer"),
    (["--horizon", "-3"], "--horizon must be a positive integer"),
])
def test_evaluate_bad_options(capsys, tiger_policy, args, what):
    capsys.readouterr()
    rc = main(["evaluate-pomdp", TIGER, tiger_policy, *args])
    _check(capsys, rc, "evaluate-pomdp", what)


@pytest.mark.parametrize("args, what", [
    (["--seed", "x"], "invalid int value"),
    (["--runs", "1.5"], "invalid int value"),
    (["--horizon", "nan"], "invalid int value"),
])
def test_evaluate_argparse_errors(capsys, tiger_policy, args, what):
    capsys.readouterr()
    rc = main(["evaluate-pomdp", TIGER, tiger_policy, *args])
    _check(capsys, rc, "evaluate-pomdp", what, argparse_error=True)


@pytest.mark.parametrize("kind, what", [
    ("missing", ""), ("directory", ""), ("binary", ""), ("empty", "empty"),
    ("not-json", "not valid JSON"), ("other-model", "3 states but the POMDP has 2"),
])
def test_evaluate_bad_policy_file(tmp_path, capsys, kind, what):
    p = tmp_path / "pol.json"
    if kind == "directory":
        p.mkdir()
    elif kind == "binary":
        p.write_bytes(bytes(range(256)))
    elif kind == "empty":
        p.write_text("")
    elif kind == "not-json":
        p.write_text("{nope")
    elif kind == "other-model":
        m = tmp_path / "three.pomdp"
        m.write_text(HEAD.replace("states: 2", "states: 3") + OK_BODY)
        assert main(["solve-pomdp", str(m), "--solver", "qmdp", "--out", str(p),
                     "--quiet"]) == 0
    capsys.readouterr()
    rc = main(["evaluate-pomdp", TIGER, str(p)])
    _check(capsys, rc, "evaluate-pomdp", what)


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_evaluate_bad_model_path(tmp_path, capsys, tiger_policy, kind):
    p = tmp_path / "m.pomdp"
    if kind == "directory":
        p.mkdir()
    capsys.readouterr()
    rc = main(["evaluate-pomdp", str(p), tiger_policy])
    _check(capsys, rc, "evaluate-pomdp", "file not found" if kind == "missing"
           else "is a directory")
