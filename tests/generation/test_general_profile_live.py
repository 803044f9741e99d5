"""A ``general``-profile ``trimpomdp run`` against REAL vLLM CPU servers (issue 15): 20 non-math
prompts, a 40-step horizon, killed (SIGKILL) mid-run and resumed with the same command.

The profile is ``general`` with one change, a line break as the step separator, so that a list
answer takes one step per line and long lists run past the release's 30 steps. Marked
``server``; ``.ci/live.sh`` prepares the servers."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.server

pytest.importorskip("httpx", reason="httpx is needed by the HTTP backends")

from servers import live_servers

from trimpomdp.generation.runlog import read_runlog

MAX_STEPS = 40
THR = 0.55  # the random PRM scores these steps around 0.53-0.58: both actions occur
#: short open questions (a step or a few) first, then list prompts (one numbered item per
#: line: one step each; SmolLM2-135M answers both (and the haiku) with lists past 30 lines)
PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Give three tips for sleeping better.",
    "Who wrote Romeo and Juliet?",
    "Describe a cat in one sentence.",
    "What is the opposite of cold?",
    "Name three musical instruments.",
    "Write a short greeting for a birthday card.",
    "What colour is the sky on a clear day?",
    "Suggest a name for a pet goldfish.",
    "What do bees make?",
    "Translate 'good morning' into French.",
    "Give one reason to learn a second language.",
    "What is a synonym of happy?",
    "Name a famous painting.",
    "What is the largest ocean on Earth?",
    "Which animal is known as the king of the jungle?",
    "List fifty cities of the world, one per line.",
    "What is the tallest mountain in the world?",
    "List fifty countries of the world, one per line.",
]
PROFILE = f'base = "general"\nstep_separator = "\\n"\nmax_steps = {MAX_STEPS}\n'


@pytest.fixture(scope="module")
def urls():
    with live_servers(max_model_len=1024) as (servers, _):
        yield {k: srv.url for k, srv in servers.items()}


def _complete_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    # a kill during a write may leave a torn last line (the run log drops it on resume)
    return [ln + "\n" for ln in path.read_text(encoding="utf-8").split("\n")[:-1]]


def test_general_profile_run_killed_and_resumed(urls, tmp_path):
    data = tmp_path / "prompts.jsonl"
    with open(data, "w") as fh:  # no gold answers: the general profile grades nothing
        fh.writelines(json.dumps({"problem_id": f"g{i:02d}", "problem": q, "answer": ""}) + "\n"
                      for i, q in enumerate(PROMPTS))
    task = tmp_path / "lines.toml"
    task.write_text(PROFILE)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "trimpomdp", "run", "--weak", urls["weak"], "--strong",
           urls["strong"], "--prm", urls["prm"], "--dataset", str(data), "--task", str(task),
           "--policy", f"thr:{THR}", "--max-step-tokens", "16", "--temperature", "0",
           "--concurrency", "4", "--seed", "0", "--out", str(out)]
    log = out / "runlog.jsonl"
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:  # kill once a few problems are written, well before the last one
        while len(_complete_lines(log)) < 5 and proc.poll() is None \
                and time.monotonic() - t0 < 300:
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be killed:\n" + \
            proc.communicate()[0].decode(errors="replace")[-3000:]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = _complete_lines(log)
    done_before = [json.loads(ln)["problem_id"] for ln in before]
    assert 5 <= len(done_before) < len(PROMPTS)
    killed_s = time.monotonic() - t0

    res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout)
    total_s = time.monotonic() - t0
    print(f"killed after {killed_s:.0f} s with {len(done_before)} problems written; "
          f"finished in {total_s:.0f} s")

    final = log.read_text(encoding="utf-8")
    assert final.endswith("\n")
    # completed problems are not redone: their lines stay byte for byte, first, in order
    assert [ln + "\n" for ln in final.split("\n")[:-1]][:len(before)] == before
    inv = summary["last_invocation"]
    assert inv["skipped"] == len(done_before)
    assert inv["finished"] == len(PROMPTS) - len(done_before) and inv["failed"] == 0
    recs = read_runlog(out)
    ids = [r["problem_id"] for r in recs]
    assert len(ids) == len(set(ids)) == len(PROMPTS)  # none lost, none duplicated
    assert set(ids) == {f"g{i:02d}" for i in range(len(PROMPTS))}
    assert summary["ok"] == len(PROMPTS) and summary["max_steps"] == MAX_STEPS
    assert json.loads((out / "run.json").read_text())["task"] == str(task)

    n_steps = {r["problem_id"]: r["n_steps"] for r in recs}
    for r in recs:  # every record is whole: its steps, routing and the profile's answer
        assert r["status"] == "ok" and r["task"] == "lines" and r["correct"] is None
        steps = r["steps"]
        assert 1 <= r["n_steps"] == len(steps) <= MAX_STEPS
        assert [s["step"] for s in steps] == list(range(len(steps)))
        assert r["solution"] == "\n".join(s["text"] for s in steps)
        assert all("\n" not in s["text"] for s in steps[:-1])  # cut at the separator
        assert not any(s["final"] for s in steps[:-1])
        assert steps[-1]["final"] or r["end_reason"] in ("empty_steps", "stop", "length")
        for s in steps:
            assert 0.0 <= s["score"] <= 1.0
            assert s["action"] == ("regenerate" if s["score"] < THR else "continue")
            assert s["source"] == ("strong" if s["action"] == "regenerate" else "weak")
        assert r["strong_tokens"] == sum(s.get("strong_tokens", 0) for s in steps)
    long = sorted(n for n in n_steps.values() if n > 30)
    print("steps per problem:", dict(sorted(n_steps.items())))
    assert long, f"no problem took more than 30 steps: {n_steps}"
