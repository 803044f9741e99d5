"""Run folders: one writer at a time (a lock with stale-lock detection), strict run-log lines.

The concurrency tests start real processes that use the public API the way ``trimpomdp run``
does: ``with acquire_run_lock(out): check_run_config(...); with RunLog(...) as log: ...``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from trimpomdp.errors import InputError, RunLockedError
from trimpomdp.generation.runlog import (
    LOCK_NAME,
    RUNLOG_NAME,
    RunLock,
    RunLog,
    acquire_run_lock,
    check_run_config,
    read_runlog,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process semantics")

WRITER = textwrap.dedent("""
    import json, sys, time
    from trimpomdp.errors import TrimpomdpError
    from trimpomdp.generation.runlog import RUNLOG_NAME, RunLog, acquire_run_lock, check_run_config

    out, n, delay, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    try:
        with acquire_run_lock(out, wait=wait):
            check_run_config(__import__("pathlib").Path(out), {"policy": "thr:0.3"}, ["policy"])
            with RunLog(f"{out}/{RUNLOG_NAME}") as log:
                print("locked", flush=True)
                for i in range(n):
                    pid = f"p{i}"
                    if pid in log.finished_ids:
                        continue
                    time.sleep(delay)
                    log.append({"problem_id": pid, "status": "ok", "correct": True})
    except TrimpomdpError as exc:
        print(f"trimpomdp run: error: {exc}", file=sys.stderr)
        sys.exit(2)
""")


def _start(out, n=20, delay=0.05, wait=0.0):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(out), str(n), str(delay),
                             str(wait)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_locked(proc):
    line = proc.stdout.readline()
    assert line.strip() == "locked", proc.stderr.read()


def test_second_process_on_one_folder_exits_2_and_nothing_is_lost(tmp_path):
    out = tmp_path / "run"
    first = _start(out, n=20, delay=0.05)
    _wait_locked(first)
    second = _start(out, n=20, delay=0.0)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert f"{out}: field 'out': this run folder is in use by another trimpomdp process " \
           f"(pid {first.pid}" in lines[0]
    first.communicate(timeout=60)
    assert first.returncode == 0
    ids = [r["problem_id"] for r in read_runlog(out)]
    assert ids == [f"p{i}" for i in range(20)]  # every problem once, none lost


def test_second_process_can_wait_for_the_first(tmp_path):
    out = tmp_path / "run"
    first = _start(out, n=5, delay=0.05)
    _wait_locked(first)
    second = _start(out, n=8, delay=0.0, wait=30)
    first.communicate(timeout=60)
    _, err = second.communicate(timeout=60)
    assert first.returncode == 0 and second.returncode == 0, err
    ids = [r["problem_id"] for r in read_runlog(out)]
    assert ids == [f"p{i}" for i in range(8)]  # the second resumed where the first stopped


def test_killed_holder_leaves_a_stale_lock_that_is_taken_over(tmp_path):
    out = tmp_path / "run"
    first = _start(out, n=1000, delay=0.02)
    _wait_locked(first)
    time.sleep(0.2)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == first.pid  # left behind
    with acquire_run_lock(out) as lock:
        assert lock.stale_holder is not None and lock.stale_holder["pid"] == first.pid
        with RunLog(out / RUNLOG_NAME) as log:  # a torn last line, if any, was repaired
            ids = [r["problem_id"] for r in log.records]
            assert len(ids) == len(set(ids)) and ids == [f"p{i}" for i in range(len(ids))]
    assert (out / LOCK_NAME).read_text() == ""  # released cleanly


def test_lock_is_reentrant_in_one_process_and_released_by_the_outermost(tmp_path):
    out = tmp_path / "run"
    with acquire_run_lock(out) as outer:
        with RunLog(out / RUNLOG_NAME) as log:  # takes the same lock again
            log.append({"problem_id": "a", "status": "ok"})
        assert outer.held and json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert (out / LOCK_NAME).read_text() == ""
    probe = subprocess.run([sys.executable, "-c", ("import sys; from trimpomdp.generation.runlog "
                            "import acquire_run_lock; acquire_run_lock(sys.argv[1]).release()"),
                            str(out)], capture_output=True, text=True, timeout=60, check=False)
    assert probe.returncode == 0, probe.stderr  # free for another process


def test_lock_on_a_file_path_is_an_input_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="field 'out'"):
        RunLock(f).acquire()
    assert issubclass(RunLockedError, InputError)


def test_check_run_config_refuses_a_bad_run_json(tmp_path):
    (tmp_path / "run.json").write_text("[1, 2]")
    with pytest.raises(InputError, match=r"run.json: run settings must be a JSON object"):
        check_run_config(tmp_path, {"policy": "x"}, ["policy"])
    (tmp_path / "run.json").write_text('{"policy": "a"}')
    with pytest.raises(InputError, match=r"run.json: field 'policy': .*would mix two runs"):
        check_run_config(tmp_path, {"policy": "b"}, ["policy"])


@pytest.mark.parametrize("line,expected", [
    ("[1, 2]", r":2: each run log line must be a JSON object"),
    ('{"status": "ok"}', r":2: field 'problem_id': missing required field"),
    ('{"problem_id": "b", "status": "ok", "strong_tokens": "40"}', r":2: field 'strong_tokens'"),
    ('{"problem_id": "b", "status": "ok", "n_steps": -1}', r":2: field 'n_steps'"),
    ('{"problem_id": "b", "status": "maybe"}', r":2: field 'status'"),
    ('{"problem_id": "b", "status": "ok", "timing": {"total_s": NaN}}', r":2: field 'timing"),
    ("{broken", r":2: run log line is not valid JSON"),
])
def test_runlog_rejects_bad_lines_when_resuming(tmp_path, line, expected):
    path = tmp_path / RUNLOG_NAME
    path.write_text(json.dumps({"problem_id": "a", "status": "ok"}) + "\n" + line + "\n")
    with pytest.raises(InputError, match=expected):
        RunLog(path)
    with pytest.raises(InputError, match=expected):
        read_runlog(tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))
    # the failed open released the lock
    with acquire_run_lock(tmp_path):
        pass


def test_runlog_binary_and_directory(tmp_path):
    (tmp_path / RUNLOG_NAME).write_bytes(b"\xff\xfe\x00 binary")
    with pytest.raises(InputError, match="not UTF-8 text"):
        read_runlog(tmp_path)
    d = tmp_path / "sub"
    (d / RUNLOG_NAME).mkdir(parents=True)
    with pytest.raises(InputError, match="folder, not a file"):
        read_runlog(d)
    with pytest.raises(InputError, match="folder, not a file"):
        RunLog(d / RUNLOG_NAME)


def test_non_finite_numbers_in_a_record_become_null_and_are_listed(tmp_path):
    with RunLog(tmp_path / RUNLOG_NAME) as log:
        log.append({"problem_id": "a", "status": "ok",
                    "steps": [{"q": [0.5, float("nan")]}], "score": float("inf")})
    (rec,) = read_runlog(tmp_path)
    assert rec["steps"][0]["q"] == [0.5, None] and rec["score"] is None
    assert rec["non_finite_fields"] == ["steps[0].q[1]", "score"]
