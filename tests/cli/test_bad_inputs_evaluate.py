"""`trimpomdp evaluate`: bad run folders, run logs, options and output paths are exit 2 with one
line naming file, line and field; no traceback and no partial report. ``CASES`` is counted in the
issue-13 report.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from trimpomdp.cli.main import main

OK = {"problem_id": "p0", "status": "ok", "correct": True, "strong_tokens": 10,
      "weak_tokens": 100, "n_steps": 3, "n_regenerated": 1, "timing": {"total_s": 1.5}}


def _log(bad: dict | str) -> str:
    line = bad if isinstance(bad, str) else json.dumps(bad)
    return json.dumps(OK) + "\n" + line + "\n"


def _rec(**kw) -> str:
    return _log({**OK, "problem_id": "p1", **kw})


def _rec_without(key: str) -> str:
    d = {**OK, "problem_id": "p1"}
    del d[key]
    return _log(d)


def make_run(root, name, policy="thr:0.3", log: str | bytes | None = None, cfg=None):
    d = root / name
    d.mkdir()
    cfg = {"policy": policy} if cfg is None else cfg
    (d / "run.json").write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    log = _log({**OK, "problem_id": "p1"}) if log is None else log
    (d / "runlog.jsonl").write_bytes(log if isinstance(log, bytes) else log.encode())
    return d


# run-log content cases: (id, runlog.jsonl content, expected in the error line)
LOG_CASES = [
    ("log-array-line", _log("[1, 2]"), ["runlog.jsonl:2:", "JSON object"]),
    ("log-string-line", _log('"ok"'), ["runlog.jsonl:2:", "JSON object"]),
    ("log-not-json", _log("{oops"), ["runlog.jsonl:2:", "not valid JSON"]),
    ("log-problem-id-missing", _rec_without("problem_id"), ["runlog.jsonl:2: field 'problem_id'"]),
    ("log-problem-id-object", _rec(problem_id={"a": 1}), ["runlog.jsonl:2: field 'problem_id'"]),
    ("log-status-unknown", _rec(status="done"), ["runlog.jsonl:2: field 'status'"]),
    ("log-strong-tokens-string", _rec(strong_tokens="40"), [":2: field 'strong_tokens'", "'40'"]),
    ("log-strong-tokens-nan", _log('{"problem_id": "p1", "status": "ok", "strong_tokens": NaN}'),
     [":2: field 'strong_tokens'"]),
    ("log-strong-tokens-negative", _rec(strong_tokens=-1), [":2: field 'strong_tokens'"]),
    ("log-weak-tokens-list", _rec(weak_tokens=[1]), [":2: field 'weak_tokens'"]),
    ("log-n-steps-fractional", _rec(n_steps=1.5), [":2: field 'n_steps'"]),
    ("log-n-regenerated-string", _rec(n_regenerated="1"), [":2: field 'n_regenerated'"]),
    ("log-correct-string", _rec(correct="yes"), [":2: field 'correct'"]),
    ("log-correct-float", _rec(correct=0.5), [":2: field 'correct'"]),
    ("log-timing-not-object", _rec(timing=[1.0]), [":2: field 'timing'"]),
    ("log-timing-string", _rec(timing={"total_s": "1.5"}), [":2: field 'timing.total_s'"]),
    ("log-timing-inf", _log('{"problem_id": "p1", "status": "ok", "timing": {"weak_s": '
                            'Infinity}}'), [":2: field 'timing.weak_s'"]),
    ("log-duplicate-problem", _log(OK), ["appears twice", "field 'problem_id'"]),
    ("log-deep-nesting", _log("[" * 100000 + "]" * 100000), ["runlog.jsonl:2:"]),
    ("log-binary", b"\x00\xff\xfe\x89 binary", ["runlog.jsonl", "UTF-8"]),
    ("log-empty", "", ["runlog.jsonl", "no finished problem"]),
    ("log-blank-lines", "\n  \n", ["runlog.jsonl", "no finished problem"]),
]

# run-folder cases: (id, builder(tmp) -> list of argv, expected)


def _runs_missing(t):
    return [str(t / "nope")]


def _runs_file(t):
    (t / "afile").write_text("x")
    return [str(t / "afile")]


def _runs_no_log(t):
    (t / "r").mkdir()
    return [str(t / "r")]


def _runs_log_is_dir(t):
    (t / "r").mkdir()
    (t / "r" / "runlog.jsonl").mkdir()
    return [str(t / "r")]


def _cfg(cfg):
    return lambda t: [str(make_run(t, "r", cfg=cfg))]


def _twice(t):
    d = make_run(t, "r")
    return [str(d), str(d)]


def _two_weak(t):
    return [str(make_run(t, "w1", "weak")), str(make_run(t, "w2", "weak"))]


def _strong_without_tokens(t):
    free = _log({**OK, "problem_id": "p1", "strong_tokens": 0}).replace('"strong_tokens": 10',
                                                                         '"strong_tokens": 0')
    return [str(make_run(t, "w", "weak")), str(make_run(t, "s", "strong", log=free))]


def _strong_equals_weak(t):
    return [str(make_run(t, "w", "weak", log=_log({**OK, "problem_id": "p1", "strong_tokens": 0})
                         .replace('"strong_tokens": 10', '"strong_tokens": 0'))),
            str(make_run(t, "s", "strong"))]


RUN_CASES = [
    ("strong-run-without-strong-tokens", _strong_without_tokens,
     ["s: field 'strong_tokens'", "must exceed"]),
    ("strong-accuracy-equals-weak", _strong_equals_weak, ["s: field 'strong_accuracy'"]),
    ("run-missing", _runs_missing, ["nope", "run log not found"]),
    ("run-is-a-file", _runs_file, ["afile", "Got a file instead"]),
    ("run-without-log", _runs_no_log, ["runlog.jsonl", "run log not found"]),
    ("runlog-is-a-directory", _runs_log_is_dir, ["runlog.jsonl", "folder, not a file"]),
    ("run-json-list", _cfg("[1, 2]"), ["run.json", "JSON object"]),
    ("run-json-not-json", _cfg("{policy"), ["run.json", "not valid JSON"]),
    ("run-json-empty", _cfg(""), ["run.json", "file is empty"]),
    ("run-json-policy-number", _cfg({"policy": 3}), ["run.json: field 'policy'"]),
    ("run-given-twice", _twice, ["given twice"]),
    ("two-weak-runs", _two_weak, ["two 'weak'-only runs"]),
]

# option / output cases with --policies (simulator) or runs: (id, argv(tmp), expected)
OPT_CASES = [
    ("n-zero", lambda t: ["--policies", "thr:0.3", "--n", "0"], ["field 'n'"]),
    ("n-negative", lambda t: ["--policies", "thr:0.3", "--n", "-5"], ["field 'n'"]),
    ("seed-negative", lambda t: ["--policies", "thr:0.3", "--seed", "-1"], ["field 'seed'"]),
    ("plot-bad-extension", lambda t: ["--policies", "thr:0.3", "--plot", str(t / "c.xyz")],
     ["c.xyz: field 'plot'", "'.xyz'"]),
    ("plot-no-extension", lambda t: ["--policies", "thr:0.3", "--plot", str(t / "c")],
     ["field 'plot'", "no extension"]),
    ("plot-is-directory", lambda t: ["--policies", "thr:0.3", "--plot", str(t / "adir.png")],
     ["field 'plot'", "not a directory"]),
    ("plot-under-file", lambda t: ["--policies", "thr:0.3", "--plot", str(t / "f.txt" / "c.png")],
     ["field 'plot'", "regular file"]),
    ("plot-name-too-long", lambda t: ["--policies", "thr:0.3", "--plot",
                                      str(t / ("c" * 300 + ".png"))], ["field 'plot'", "at most"]),
    ("out-is-directory", lambda t: ["--policies", "thr:0.3", "--out", str(t / "adir.png")],
     ["field 'out'", "not a folder"]),
    ("out-trailing-slash", lambda t: ["--policies", "thr:0.3", "--out", str(t / "new") + "/"],
     ["field 'out'"]),
    ("out-under-file", lambda t: ["--policies", "thr:0.3", "--out", str(t / "f.txt" / "res")],
     ["field 'out'", "regular file"]),
    ("out-md-is-directory", lambda t: ["--policies", "thr:0.3", "--out", str(t / "rep")],
     ["rep.md: field 'out'", "not a directory"]),
    ("out-name-too-long", lambda t: ["--policies", "thr:0.3", "--out", str(t / ("r" * 300))],
     ["field 'out'", "at most"]),
    ("model-missing", lambda t: ["--policies", "thr:0.3", "--model", str(t / "no.json")],
     ["no.json: file not found"]),
    ("model-binary", lambda t: ["--policies", "thr:0.3", "--model", str(t / "bin.dat")],
     ["bin.dat", "UTF-8"]),
    ("model-directory", lambda t: ["--policies", "thr:0.3", "--model", str(t / "adir.png")],
     ["adir.png: is a directory"]),
    ("model-not-json", lambda t: ["--policies", "thr:0.3", "--model", str(t / "f.txt")],
     ["f.txt", "not valid JSON"]),
    ("spec-unknown", lambda t: ["--policies", "bogus"], ["field 'policy'"]),
    ("spec-not-a-number", lambda t: ["--policies", "thr:abc"], ["field 'policy'"]),
    ("spec-nan", lambda t: ["--policies", "thr:nan"], ["field 'policy'"]),
    ("spec-negative-lambda", lambda t: ["--policies", "pomdp:-1"], ["field 'policy'"]),
    ("spec-missing-checkpoint", lambda t: ["--policies", f"agg:{t}/none.json"],
     ["none.json", "field 'policy'"]),
    ("runs-plot-bad-extension", lambda t: [str(make_run(t, "r")), "--plot", str(t / "c.gif")],
     ["field 'plot'"]),
    ("runs-out-under-file", lambda t: [str(make_run(t, "r")), "--out", str(t / "f.txt" / "x")],
     ["field 'out'"]),
]


def _prepare(tmp_path):
    (tmp_path / "adir.png").mkdir()
    (tmp_path / "rep.md").mkdir()
    (tmp_path / "f.txt").write_text("not json\n")
    (tmp_path / "bin.dat").write_bytes(b"\x00\xff\xfe binary")


def _check(tmp_path, rc, cap, before, expected):
    err = cap.err
    assert rc == 2, err
    assert "Traceback" not in err and cap.out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("trimpomdp evaluate: error: ")
    for e in expected:
        assert e in lines[0], (e, lines[0])
    after = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}
    assert after == before  # no report, no plot, no temporary file


def _snapshot(tmp_path):
    return {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}


@pytest.mark.parametrize("log,expected", [c[1:] for c in LOG_CASES],
                         ids=[c[0] for c in LOG_CASES])
def test_evaluate_bad_run_log(tmp_path, capsys, log, expected):
    weak = make_run(tmp_path, "w", "weak")
    bad = make_run(tmp_path, "b", "thr:0.3", log=log)
    before = _snapshot(tmp_path)
    rc = main(["evaluate", str(weak), str(bad), "--out", str(tmp_path / "res"),
               "--plot", str(tmp_path / "c.png")])
    _check(tmp_path, rc, capsys.readouterr(), before, expected)


@pytest.mark.parametrize("build,expected", [c[1:] for c in RUN_CASES],
                         ids=[c[0] for c in RUN_CASES])
def test_evaluate_bad_run_folder(tmp_path, capsys, build, expected):
    argv = build(tmp_path)
    before = _snapshot(tmp_path)
    rc = main(["evaluate", *argv, "--out", str(tmp_path / "res")])
    _check(tmp_path, rc, capsys.readouterr(), before, expected)


@pytest.mark.parametrize("build,expected", [c[1:] for c in OPT_CASES],
                         ids=[c[0] for c in OPT_CASES])
def test_evaluate_bad_option_or_output(tmp_path, capsys, build, expected):
    _prepare(tmp_path)
    argv = build(tmp_path)
    before = _snapshot(tmp_path)
    rc = main(["evaluate", *argv, "--n", "50"] if "--n" not in argv and "--policies" in argv
              else ["evaluate", *argv])
    _check(tmp_path, rc, capsys.readouterr(), before, expected)


def test_evaluate_writes_nothing_unasked(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--policies", "thr:0.3", "--n", "50"]) == 0
    assert "CPT(50%)" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_evaluate_report_and_plot_are_all_or_nothing(tmp_path, capsys, monkeypatch):
    """A failure while renaming the second output takes the first one back."""
    import trimpomdp._io as io

    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(io.os, "replace", flaky)
    rc = main(["evaluate", "--policies", "thr:0.3", "--n", "50", "--out", str(tmp_path / "res"),
               "--plot", str(tmp_path / "c.png")])
    err = capsys.readouterr().err
    assert rc == 2 and "No space left on device" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_evaluate_out_stem_accepts_json_suffix(tmp_path, capsys):
    assert main(["evaluate", "--policies", "thr:0.3", "--n", "50", "--out",
                 str(tmp_path / "res.json")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res.json", "res.md"]


@pytest.mark.parametrize("argv,expected", [
    (["evaluate", "{tmp}/nope"], "run log not found"),
    (["evaluate", "--policies", "thr:0.3", "--plot", "{tmp}/c.bmp"], "field 'plot'"),
    (["fit", "--data", "{tmp}/bin.dat", "--out", "{tmp}/m.json"], "not a UTF-8 text file"),
    (["fit-em", "--traces", "{tmp}/adir.png", "--out", "{tmp}/m.json"], "is a directory"),
])
def test_real_process_exit_2_one_line(tmp_path, argv, expected):
    _prepare(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    before = _snapshot(tmp_path)
    p = subprocess.run([sys.executable, "-m", "trimpomdp", *argv], capture_output=True, check=False,
                       text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in p.stderr
    assert _snapshot(tmp_path) == before


def test_evaluate_case_count():
    assert len(LOG_CASES) + len(RUN_CASES) + len(OPT_CASES) >= 45
