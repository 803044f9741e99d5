"""Task profiles (issue 15 item 3) in ``serve`` and ``run``: the prompts that reach the models,
the end rule, the separator, chat-template switches, re-grading, and profile files."""
from __future__ import annotations

import json

import pytest

from trimpomdp.errors import InputError
from trimpomdp.tasks import BUILTIN, load_profile
from trimpomdp.tasks.apply import regrade, rewrite

LOOP_MSGS = [{"role": "user", "content": BUILTIN["math"].user_message("What is 2+3?")},
             {"role": "assistant", "content": "Solution: a\n\nb\n\n"}]


def test_builtins_and_rewrite():
    assert set(BUILTIN) == {"math", "general", "thinking"}
    assert BUILTIN["thinking"].max_steps == 128
    assert BUILTIN["thinking"].chat_template_kwargs == {"enable_thinking": True}
    g = rewrite(BUILTIN["general"], LOOP_MSGS)
    assert g == [{"role": "user", "content": "What is 2+3?"},
                 {"role": "assistant", "content": "a\n\nb\n\n"}]
    p = load_profile(BUILTIN["general"])
    import dataclasses

    custom = dataclasses.replace(p, system="Be brief.", step_separator="\n",
                                 solution_prefix="Answer: ", user_template="Q: {question} {x}")
    out = rewrite(custom, [{"role": "system", "content": "Client says hi."}, *LOOP_MSGS])
    assert out[0] == {"role": "system", "content": "Be brief.\n\nClient says hi."}
    assert out[-2]["content"] == "Q: What is 2+3? {x}"  # only {question} is substituted
    assert out[-1]["content"] == "Answer: a\nb\n"


def test_end_rules_extraction_and_grading():
    g, m = BUILTIN["general"], BUILTIN["math"]
    assert not g.is_final("\\boxed{5}", True) and g.is_final("x", False)
    assert m.is_final("so \\boxed{5}", True)
    r = load_profile(BUILTIN["general"])
    import dataclasses

    rx = dataclasses.replace(r, final_rule="regex:^Final:", answer_extraction="regex:Final: (.*)",
                             grader="exact")
    assert rx.is_final("Final: 7", True) and not rx.is_final("not Final: 7", True)
    rec = {"status": "ok", "gold": "7", "steps": [{"text": "think"}, {"text": "Final: 7"}],
           "answer": None, "correct": False}
    out = regrade(rx, rec)
    assert out["answer"] == "7" and out["correct"] is True and out["solution"] == "think\n\nFinal: 7"
    assert regrade(g, rec)["correct"] is None  # no grader
    assert regrade(m, rec) is rec  # the release's profile: the loop's own grading stands


@pytest.mark.parametrize("text,field", [
    ('user_template = "no placeholder"\n', "user_template"),
    ('final_rule = "sometimes"\n', "final_rule"),
    ('final_rule = "regex:("\n', "final_rule"),
    ('grader = "llm"\n', "grader"),
    ('max_steps = 0\n', "max_steps"),
    ('max_steps = "60"\n', "max_steps"),
    ('colour = "red"\n', "colour"),
    ('base = "poetry"\n', "base"),
    ('step_separator = ""\n', "step_separator"),
])
def test_profile_file_errors_name_file_and_field(tmp_path, text, field):
    f = tmp_path / "p.toml"
    f.write_text(text)
    with pytest.raises(InputError) as ei:
        load_profile(str(f))
    assert ei.value.field == field and ei.value.path == str(f), ei.value


def test_profile_file_loads_over_a_base(tmp_path):
    f = tmp_path / "support.toml"
    f.write_text('base = "general"\nsystem = "You are support."\nmax_steps = 60\n'
                 'final_rule = "regex:^Answer:"\n[chat_template_kwargs]\nenable_thinking = false\n')
    p = load_profile(str(f))
    assert (p.name, p.system, p.max_steps, p.final_rule, dict(p.chat_template_kwargs)) == (
        "support", "You are support.", 60, "regex:^Answer:", {"enable_thinking": False})
    with pytest.raises(InputError, match="task must be one of"):
        load_profile("nonsense")


aiohttp = pytest.importorskip("aiohttp", reason="the stub upstreams need aiohttp")
httpx = pytest.importorskip("httpx", reason="the upstream clients need httpx")

from serve_harness import ServerThread, config, stubs


def test_serve_general_profile_prompts_and_end_rule(tmp_path):
    f = tmp_path / "stop1.toml"
    f.write_text('base = "general"\nsystem = "Profile system."\nfinal_rule = "regex:Step 1"\n'
                 '[chat_template_kwargs]\nenable_thinking = false\n')
    with stubs() as up, ServerThread(config(up, task=str(f))) as srv:
        r = httpx.post(srv.url + "/v1/chat/completions", timeout=30, json={
            "model": "trimpomdp", "messages": [{"role": "system", "content": "Client system."},
                                               {"role": "user", "content": "What is 2+3?"}]})
        body = up["weak"].bodies["/v1/chat/completions"][-1]
        chunks = httpx.post(srv.url + "/v1/chat/completions", timeout=30, json={
            "model": "trimpomdp", "stream": True,
            "messages": [{"role": "user", "content": "What is 2+3?"}]}).text
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["choices"][0]["message"]["content"] == ("Step 0 of weak (good).\n\n"
                                                       "Step 1 of weak (good).")
    assert doc["trim"]["task"] == "stop1"
    msgs = body["messages"]
    assert msgs[0] == {"role": "system", "content": "Profile system.\n\nClient system."}
    assert msgs[1] == {"role": "user", "content": "What is 2+3?"}  # no math instruction
    assert msgs[2]["content"].startswith("Step 0 of weak")  # no "Solution: " prefix
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert '"content": "\\n\\nStep 1 of weak (good)."' in chunks


def test_run_general_profile_records_no_grade(tmp_path, capsys):
    from trimpomdp.cli.main import main

    probs = tmp_path / "p.jsonl"
    probs.write_text("".join(json.dumps({"problem_id": f"g{i}", "problem": f"Tell me {i}.",
                                         "answer": "x"}) + "\n" for i in range(2)))
    with stubs() as up:
        args = ["run", "--weak", up["weak"].url, "--strong", up["strong"].url, "--prm",
                up["prm"].url, "--dataset", str(probs), "--policy", "thr:0.5", "--api", "chat",
                "--task", "general", "--out", str(tmp_path / "run")]
        assert main(args) == 0
        sent = up["weak"].bodies["/v1/chat/completions"][0]["messages"]
        assert main([*args[:-1], str(tmp_path / "run"), "--task", "math"]) == 2  # no mixing
    assert "task='general'" in capsys.readouterr().err
    recs = [json.loads(ln) for ln in (tmp_path / "run" / "runlog.jsonl").read_text().splitlines()]
    assert all(r["status"] == "ok" and r["correct"] is None and r["task"] == "general"
               for r in recs)
    assert sent[0] == {"role": "user", "content": "Tell me 0."}
    assert json.loads((tmp_path / "run" / "run.json").read_text())["task"] == "general"


def test_a_model_free_rule_takes_the_profile_horizon_as_run_does():
    # thr:0.5 needs no model: its horizon is the server's step limit (128 for 'thinking')
    with stubs() as up, ServerThread(config(up, task="thinking")) as srv:
        assert srv.server.max_steps == 128
        body = {"model": "trimpomdp", "messages": [{"role": "user", "content": "hi"}]}
        r = httpx.post(srv.url + "/v1/chat/completions", json=body, timeout=30)
        assert r.status_code == 200 and r.json()["trim"]["task"] == "thinking"
        sent = up["weak"].bodies["/v1/chat/completions"][-1]
        assert sent["chat_template_kwargs"] == {"enable_thinking": True}
    with stubs() as up, ServerThread(config(up, task="thinking", max_steps=60)) as srv:
        assert srv.server.max_steps == 60


def test_a_profile_horizon_beyond_the_policy_is_clipped_with_a_warning(caplog):
    import logging

    with stubs() as up:
        with caplog.at_level(logging.WARNING, logger="trimpomdp"), \
                ServerThread(config(up, task="thinking", policy="pomdp:0.5")) as srv:
            assert srv.server.max_steps == 30  # the bundled TRIM model's 30-step horizon
            body = {"model": "trimpomdp", "messages": [{"role": "user", "content": "hi"}]}
            r = httpx.post(srv.url + "/v1/chat/completions", json=body, timeout=30)
            assert r.status_code == 200 and r.json()["trim"]["task"] == "thinking"
        assert any("128 steps" in rec.getMessage() for rec in caplog.records)
        with pytest.raises(InputError) as ei, ServerThread(config(up, policy="pomdp:0.5",
                                                                  max_steps=60)):
            pass
        assert ei.value.field == "max_steps" and "horizon" in ei.value.reason


def test_run_general_profile_needs_no_gold_answers(tmp_path, capsys):
    from trimpomdp.cli.main import main

    probs = tmp_path / "p.jsonl"
    probs.write_text("".join(json.dumps({"problem_id": f"g{i}", "problem": f"Tell me {i}."})
                             + "\n" for i in range(2)))
    with stubs() as up:
        base = ["run", "--weak", up["weak"].url, "--strong", up["strong"].url, "--prm",
                up["prm"].url, "--dataset", str(probs), "--policy", "thr:0.5", "--api", "chat"]
        # math grades answers: a prompt without one is refused up front, naming file and line
        assert main([*base, "--task", "math", "--out", str(tmp_path / "m")]) == 2
        err = capsys.readouterr().err
        assert "p.jsonl:1:" in err and "gold answer" in err and len(err.strip().splitlines()) == 1
        assert main([*base, "--task", "general", "--out", str(tmp_path / "g")]) == 0
    recs = [json.loads(ln) for ln in (tmp_path / "g" / "runlog.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and all(r["status"] == "ok" and r["correct"] is None for r in recs)
