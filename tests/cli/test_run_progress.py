"""``trimpomdp run``'s progress bar (done / failed / tokens per second / ETA) and its switches,
against real local HTTP servers (tests/generation/faulty_server.py)."""
from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("httpx", reason="httpx is needed by the HTTP backends (trimpomdp[live])")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generation"))

from faulty_server import FaultyServer

from trimpomdp.cli.main import main
from trimpomdp.cli.run import Progress


@pytest.fixture(scope="module")
def up():
    with FaultyServer(tag="weak") as w, FaultyServer(tag="strong") as s, \
            FaultyServer(tag="prm") as p:
        yield {"weak": w, "strong": s, "prm": p}


@pytest.fixture
def probs(tmp_path):
    path = tmp_path / "probs.jsonl"
    qs = ["What is 2+3?", "BADSTEP 1+4?", "FAIL500 0+5?", "What is 5+0?"]
    path.write_text("".join(json.dumps({"problem_id": f"p{i}", "question": q, "answer": "5"})
                            + "\n" for i, q in enumerate(qs)))
    return path


def _args(up, probs, out, *extra):
    return ["run", "--weak", up["weak"].url, "--strong", up["strong"].url, "--prm",
            up["prm"].url, "--policy", "thr:0.5", "--dataset", str(probs), "--out", str(out),
            "--api", "chat", "--retries", "0", "--max-steps", "5", *extra]


def _final_bar(err: str) -> str:
    lines = [seg for seg in re.split(r"[\r\n]", err) if seg.startswith("run:")]
    assert lines, err
    return lines[-1]


def test_progress_bar_counts_done_failed_tokens_and_eta(up, probs, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(up, probs, out, "--progress")) == 0
    err = capsys.readouterr().err
    bar = _final_bar(err)
    assert "4/4" in bar and "done=3 failed=1" in bar, bar
    rate = float(re.search(r"tok/s=([0-9.]+)", bar).group(1))
    recs = [json.loads(line) for line in (out / "runlog.jsonl").read_text().splitlines()]
    tokens = sum(r.get("weak_tokens", 0) + r.get("strong_tokens", 0) for r in recs)
    assert tokens > 0 and rate > 0
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", bar), bar  # elapsed < ETA, tqdm's own
    # with the bar, only failures get a line of their own
    assert "p2: failed" in err and "p0: ok" not in err


def test_resume_shows_what_was_skipped(up, probs, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(up, probs, out, "--limit", "2", "--progress")) == 0
    capsys.readouterr()
    assert main(_args(up, probs, out, "--progress")) == 0
    err = capsys.readouterr().err
    assert "resuming: 2 problems already in the run log" in err
    assert "2/2" in _final_bar(err)


def test_no_progress_prints_one_line_per_problem(up, probs, tmp_path, capsys):
    assert main(_args(up, probs, tmp_path / "run", "--no-progress")) == 0
    err = capsys.readouterr().err
    assert "run:" not in err and "tok/s" not in err
    for i in range(4):
        assert re.search(rf"^p{i}: (ok correct=|failed)", err, re.MULTILINE), err


def test_default_is_off_when_stderr_is_not_a_terminal(up, probs, tmp_path, capsys):
    assert main(_args(up, probs, tmp_path / "run")) == 0  # capsys: not a TTY
    err = capsys.readouterr().err
    assert "tok/s" not in err and re.search(r"^p0: ok", err, re.MULTILINE)


def test_progress_key_in_the_config_file(up, probs, tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text("progress = true\n")
    assert main(_args(up, probs, tmp_path / "run", "--config", str(cfg))) == 0
    assert "done=3 failed=1" in _final_bar(capsys.readouterr().err)
    cfg.write_text("progress = 1\n")
    assert main(_args(up, probs, tmp_path / "run2", "--config", str(cfg))) == 2
    assert "field 'progress': must be true or false" in capsys.readouterr().err


def test_progress_object_rate_and_lines():
    buf = io.StringIO()
    p = Progress(True, file=buf)
    p.start(2, 0)
    p.record({"problem_id": "a", "status": "ok", "correct": True, "n_steps": 2,
              "weak_tokens": 30, "strong_tokens": 10})
    p.record({"problem_id": "b", "status": "failed", "reason": "the weak model at X failed"})
    assert (p.done, p.failed, p.tokens) == (1, 1, 40) and p.rate > 0
    p.close()
    text = buf.getvalue()
    assert "b: failed" in text and "reason=the weak model at X failed" in text
    assert "a: ok" not in text and "done=1 failed=1" in text
    off = io.StringIO()
    q = Progress(None, file=off)  # auto: a StringIO is no terminal, so lines instead
    q.start(1, 0)
    q.record({"problem_id": "a", "status": "ok", "correct": False, "n_steps": 1,
              "weak_tokens": 3, "strong_tokens": 0})
    q.close()
    assert off.getvalue() == "a: ok correct=False steps=1 strong_tokens=0\n"
