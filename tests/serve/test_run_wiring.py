"""The live wiring shared by ``trimpomdp run`` and ``serve`` (issue 12 item 5, issue 13 item 1):
a rejected ``run`` writes nothing into its folder, ``--policy oracle`` is refused up front, an
unusable PRM answer is recorded naming the PRM, ``--prm self`` in both commands, and
``--config FILE.toml`` for both.
"""
from __future__ import annotations

import argparse
import json

import pytest

pytest.importorskip("aiohttp", reason="the stub upstreams need aiohttp")
httpx = pytest.importorskip("httpx", reason="the upstream clients need httpx")

from serve_harness import ServerThread, config, stubs

from trimpomdp.cli.main import main
from trimpomdp.errors import InputError


@pytest.fixture(scope="module")
def up():
    with stubs() as u:
        yield u


@pytest.fixture
def probs(tmp_path):
    path = tmp_path / "probs.jsonl"
    path.write_text("".join(json.dumps({"problem_id": f"q{i}", "problem": f"What is {i}+5?",
                                        "answer": "5"}) + "\n" for i in range(3)))
    return path


def _args(up, probs, out, *extra):
    return ["run", "--weak", up["weak"].url, "--strong", up["strong"].url, "--prm",
            up["prm"].url, "--dataset", str(probs), "--policy", "thr:0.5", "--out", str(out),
            "--api", "chat", "--retries", "0", *extra]


@pytest.mark.parametrize("extra,field", [
    (["--max-steps", "0"], "max_steps"),
    (["--policy", "pomdp:0.3", "--max-steps", "31"], "max_steps"),  # beyond the model horizon
    (["--temperature", "-1"], "temperature"),
    (["--top-p", "nan"], "top_p"),
    (["--max-step-tokens", "0"], "max_step_tokens"),
    (["--policy", "bogus:1"], "policy"),
    (["--policy", "pomdp:/no/such/policy.json"], "policy"),
    (["--policy", "oracle"], "policy"),
    (["--model", "/no/such/model.json"], None),
    (["--concurrency", "0"], "concurrency"),
    (["--timeout", "0"], "timeout"),
    (["--limit", "0"], "limit"),
])
def test_a_rejected_run_leaves_the_folder_clean_and_the_fix_runs(up, probs, tmp_path, capsys,
                                                                 extra, field):
    out = tmp_path / "run"
    assert main(_args(up, probs, out, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    if field is not None:
        assert f"field '{field}'" in err, err
    assert not (out / "run.json").exists() and not (out / "runlog.jsonl").exists()
    assert main(_args(up, probs, out)) == 0  # the corrected command is not refused
    assert json.loads(capsys.readouterr().out)["ok"] == 3


def test_oracle_is_refused_as_simulator_only(up, probs, tmp_path, capsys):
    assert main(_args(up, probs, tmp_path / "o", "--policy", "oracle")) == 2
    assert "simulator-only" in capsys.readouterr().err
    from trimpomdp.serve.config import ServeConfig

    with pytest.raises(InputError, match="simulator-only"):
        ServeConfig(weak_url="http://w", strong_url="http://s", prm_url="http://p",
                    policy="oracle")


def test_a_non_numeric_prm_probability_is_recorded_naming_the_prm(up, probs, tmp_path, capsys):
    up["prm"].inject("/pooling", "nonnumeric")
    out = tmp_path / "bad"
    assert main(_args(up, probs, out, "--concurrency", "1")) == 0
    recs = [json.loads(ln) for ln in (out / "runlog.jsonl").read_text().splitlines()]
    failed = [r for r in recs if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["error_type"] == "BackendError", failed
    assert up["prm"].url in failed[0]["reason"]
    capsys.readouterr()


def test_prm_self_in_run_and_serve(up, probs, tmp_path, capsys):
    from trimpomdp.generation.wiring import UpstreamSettings, build_upstreams
    from trimpomdp.serve.config import ServeConfig

    cfg = ServeConfig(weak_url=up["weak"].url, strong_url=up["strong"].url, prm_url="self",
                      policy="thr:0.5")
    ups = build_upstreams(cfg.upstream_settings())
    assert type(ups.prm.inner).__name__ == "SelfScorePRM" and "self-scoring" in ups.prm.where
    ups2 = build_upstreams(UpstreamSettings(weak_url=up["weak"].url, prm="self"))
    assert "weak model" in ups2.prm.where
    # the stubs have no tokenizer, so self-scoring cannot read log-probabilities: serve says so
    # as a 502 that names self-scoring, run records it
    with ServerThread(config(up, prm_url="self")) as srv:
        r = httpx.post(srv.url + "/v1/chat/completions", timeout=30, json={
            "model": "trimpomdp", "messages": [{"role": "user", "content": "2+3?"}]})
        assert r.status_code == 502 and "/v1/completions" in r.json()["error"]["message"]
    out = tmp_path / "self"
    args = _args(up, probs, out)
    args[args.index("--prm") + 1] = "self"
    assert main(args) == 0
    recs = [json.loads(ln) for ln in (out / "runlog.jsonl").read_text().splitlines()]
    assert all(r["status"] == "failed" and "/v1/completions" in r["reason"] for r in recs)
    capsys.readouterr()


def test_config_toml_for_run(up, probs, tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'weak = "{up["weak"].url}"\nstrong = "{up["strong"].url}"\n'
                   f'prm = "{up["prm"].url}"\ndataset = "{probs}"\npolicy = "thr:0.5"\n'
                   f'out = "{tmp_path / "cfgrun"}"\napi = "chat"\nmax-steps = 2\n'
                   "score_strong_steps = false\n")
    assert main(["run", "--config", str(cfg)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] == 3
    run_json = json.loads((tmp_path / "cfgrun" / "run.json").read_text())
    assert run_json["max_steps"] == 2 and run_json["policy"] == "thr:0.5"
    # the command line wins
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "cli"), "--max-steps",
                 "3"]) == 0
    assert json.loads((tmp_path / "cli" / "run.json").read_text())["max_steps"] == 3
    capsys.readouterr()


@pytest.mark.parametrize("text,needle", [
    ('weak = "http://w"\nmax_stepz = 3\n', "field 'max_stepz': unknown key"),
    ('weak = "http://w"\nmax_steps = "3"\n', "field 'max_steps': must be an integer"),
    ('weak = "http://w"\napi = "grpc"\n', "field 'api': must be one of"),
    ('weak = "http://w"\nskip_upstream_check = 1\n', "must be true or false"),
    ("weak = \n", "not valid TOML"),
])
def test_config_toml_errors_name_file_and_key(tmp_path, capsys, text, needle):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    assert main(["serve", "--config", str(cfg), "--policy", "weak"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(cfg) in err and needle in err and "\n" not in err, err


def test_config_toml_for_serve_every_flag_is_a_key(tmp_path):
    from trimpomdp.cli import serve

    cfg = tmp_path / "serve.toml"
    cfg.write_text('[serve]\nweak = "http://w"\nstrong = "http://s"\nprm = "self"\n'
                   'policy = "thr:0.3"\nport = 0\nallowed_origins = ["http://a", "http://b"]\n'
                   'api_key = "k"\nsse_keepalive = 1.5\nmax_n = 2\nskip_upstream_check = true\n'
                   'served-model-name = "m"\n')
    p = argparse.ArgumentParser()
    serve.add_arguments(p)
    c = serve.config_from_args(p.parse_args(["--config", str(cfg), "--port", "8123"]))
    assert (c.weak_url, c.prm_url, c.policy, c.port, c.allowed_origins, c.api_key,
            c.sse_keepalive, c.max_n, c.check_upstream, c.served_model_name) == (
        "http://w", "self", "thr:0.3", 8123, ("http://a", "http://b"), "k", 1.5, 2, False, "m")
    ref = argparse.ArgumentParser()
    serve.add_arguments(ref)
    dests = {a.dest for a in ref._actions if a.option_strings and a.dest not in ("help",
                                                                                 "config")}
    body = "\n".join(f"{d} = {json.dumps(_sample(ref, d))}" for d in sorted(dests))
    (tmp_path / "all.toml").write_text(body)
    args = p.parse_args(["--config", str(tmp_path / "all.toml")])
    from trimpomdp.cli._config import apply_config_file

    apply_config_file(args, serve.add_arguments, "serve")  # every key is accepted


def _sample(parser: argparse.ArgumentParser, dest: str):
    a = next(x for x in parser._actions if x.dest == dest)
    if a.nargs == 0:
        return True
    if a.choices:
        return list(a.choices)[-1]
    if a.type is int:
        return 3
    if a.type is float:
        return 1.5
    if dest == "allowed_origins":
        return ["http://x"]
    return "http://x" if dest in ("weak", "strong", "prm") else "x"


def test_help_shows_defaults(capsys):
    for cmd in ("serve", "run"):
        assert main([cmd, "--help"]) == 0
        out = capsys.readouterr().out
        assert "(default: " in out and "--config" in out


def test_run_json_holds_the_step_limit_in_force(up, probs, tmp_path, capsys):
    out = tmp_path / "limit"
    assert main(_args(up, probs, out)) == 0
    assert json.loads((out / "run.json").read_text())["max_steps"] == 30  # math's default
    assert main(_args(up, probs, out, "--max-steps", "30")) == 0  # the same run: resumes
    assert main(_args(up, probs, out, "--max-steps", "5")) == 2
    capsys.readouterr()


def test_strong_step_scores_are_booked_by_default_and_a_resume_keeps_the_folders_setting(
        up, probs, tmp_path, capsys):
    """The release's loop books the strong step's PRM score (``score_strong_steps`` on by default);
    a folder started with it off resumes with it off unless the flag says otherwise, and a resume
    that contradicts the folder is refused naming the setting."""
    on, off = tmp_path / "on", tmp_path / "off"
    assert main(_args(up, probs, on, "--max-steps", "2", "--limit", "1")) == 0
    assert json.loads((on / "run.json").read_text())["score_strong_steps"] is True
    assert main(_args(up, probs, off, "--max-steps", "2", "--limit", "1",
                      "--no-score-strong-steps")) == 0
    assert json.loads((off / "run.json").read_text())["score_strong_steps"] is False
    capsys.readouterr()
    # resume (more problems) without the flag: the folder's own setting is kept
    assert main(_args(up, probs, off, "--max-steps", "2")) == 0
    assert json.loads((off / "run.json").read_text())["score_strong_steps"] is False
    assert len((off / "runlog.jsonl").read_text().splitlines()) == 3
    capsys.readouterr()
    assert main(_args(up, probs, off, "--max-steps", "2", "--score-strong-steps")) == 2
    assert "score_strong_steps" in capsys.readouterr().err
