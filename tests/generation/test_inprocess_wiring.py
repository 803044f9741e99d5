"""``--backend vllm-inprocess`` for ``trimpomdp run`` / ``serve``: the wiring, guards and errors,
with stub engine classes in place of vLLM (the real engines: test_live_vllm.py, marked server)."""
from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import pytest

from trimpomdp.cli.main import main
from trimpomdp.errors import BackendError, InputError
from trimpomdp.generation import wiring
from trimpomdp.generation.prm_incremental import ScoreMemo
from trimpomdp.generation.protocols import StepOutput
from trimpomdp.generation.runlog import read_runlog
from trimpomdp.generation.wiring import GuardedBackend, GuardedPRM, UpstreamSettings
from trimpomdp.tasks import load_profile

BUILT: list = []


class StubEngineBackend:
    """Stands in for VLLMEngineBackend: scripted steps, records how it was built."""

    def __init__(self, model, *, name="model", tokenizer=None, engine=None, engine_args=None,
                 chat_template_kwargs=None):
        self.model, self.name, self.tokenizer_arg = str(model), name, tokenizer
        self.engine_args = dict(engine_args or {})
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.location = f"in-process vLLM engine of {self.model}"
        self.started = self.closed = False
        BUILT.append(self)

    @property
    def engine(self):
        if "fail_start" in self.engine_args:
            raise RuntimeError("no memory for the KV cache")
        self.started = True
        return self

    async def generate_step(self, messages, *, stop, sampling, logprobs=False):
        content = messages[-1]["content"]
        if "EXPLODE" in messages[0]["content"] and self.name == "weak":
            raise RuntimeError("engine died")
        k = content.count("\n\n")
        last = k >= 2
        text = f"Step {k} of {self.name}." + (" So \\boxed{5}." if last else "")
        return StepOutput(text=text, tokens=len(text.split()), stopped_on_stop=not last,
                          finish_reason="stop", stop_reason=None if last else "\n\n")

    async def aclose(self):
        self.closed = True


class StubEnginePRM:
    def __init__(self, model, *, engine_args=None, instruction=None, **kw):
        self.model, self.engine_args, self.instruction = str(model), dict(engine_args), instruction
        self.location = f"in-process vLLM engine of {self.model}"
        self.mode = None
        BUILT.append(self)

    async def resolve_mode(self):
        self.mode = "last"
        return self.mode

    async def score_steps(self, question, steps):
        return [0.2 if "weak" in s else 0.9 for s in steps]

    def session(self, question):
        prm = self

        class S:
            memo = ScoreMemo()

            async def score(self, steps):
                return await prm.score_steps(question, steps)

            async def aclose(self):
                return None
        return S()

    async def aclose(self):
        return None


@pytest.fixture
def stubs(monkeypatch):
    BUILT.clear()
    monkeypatch.setattr(wiring, "_engine_classes", lambda: (StubEngineBackend, StubEnginePRM))
    return BUILT


@pytest.fixture
def folders(tmp_path):
    out = {}
    for name in ("weak", "strong", "prm"):
        d = tmp_path / "models" / name
        d.mkdir(parents=True)
        (d / "config.json").write_text("{}")
        out[name] = d
    probs = tmp_path / "probs.jsonl"
    probs.write_text("".join(json.dumps({"problem_id": f"t{i}", "question": q, "answer": "5"})
                             + "\n" for i, q in enumerate(["What is 2+3?", "And 1+4?",
                                                           "EXPLODE 0+5?"])))
    out["probs"] = probs
    return out


def _args(folders, out, *extra):
    return ["run", "--backend", "vllm-inprocess", "--weak", str(folders["weak"]),
            "--strong", str(folders["strong"]), "--prm", str(folders["prm"]),
            "--policy", "thr:0.5", "--dataset", str(folders["probs"]), "--out", str(out),
            "--max-steps", "4", "--no-progress", *extra]


def test_run_in_process_routes_through_guarded_engines(stubs, folders, tmp_path, capsys):
    out = tmp_path / "run"
    engine_args = {"max_model_len": 1024, "block_size": 32, "prm": {"max_model_len": 4096},
                   "strong": {"gpu_memory_utilization": 0.3}}
    assert main(_args(folders, out, "--engine-args", json.dumps(engine_args))) == 0
    weak, strong, prm = stubs
    assert (weak.name, weak.model, strong.name, prm.model) == (
        "weak", str(folders["weak"]), "strong", str(folders["prm"]))
    assert weak.engine_args == {"enable_prefix_caching": True, "max_model_len": 1024,
                                "block_size": 32}
    assert strong.engine_args == {**weak.engine_args, "gpu_memory_utilization": 0.3}
    assert prm.engine_args == {"max_model_len": 4096, "block_size": 32}
    assert prm.instruction == load_profile("math").prm_instruction
    assert weak.started and strong.started and prm.mode == "last"  # started before problem 1
    assert weak.closed and strong.closed
    recs = {r["problem_id"]: r for r in read_runlog(out)}
    for pid in ("t0", "t1"):
        r = recs[pid]
        assert r["status"] == "ok" and r["n_steps"] == 3
        # the PRM scores weak drafts 0.2 < 0.5: every step is the strong engine's
        assert [s["source"] for s in r["steps"]] == ["strong"] * 3
        assert [s["score"] for s in r["steps"]] == [0.2] * 3
    bad = recs["t2"]  # an engine failure fails that problem, named by the guard
    assert bad["status"] == "failed"
    assert bad["reason"].startswith(f"the weak model (in-process vLLM engine of "
                                    f"{folders['weak']}) sent an unusable answer")
    summary = json.loads(capsys.readouterr().out)
    assert (summary["ok"], summary["failed"]) == (2, 1)
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["backend"] == "vllm-inprocess" and run_json["engine_args"] == engine_args


def test_toml_config_keys_and_a_table_for_engine_args(stubs, folders, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'backend = "vllm-inprocess"\nweak = "{folders["weak"]}"\n'
                   f'policy = "weak"\nout = "{tmp_path / "out"}"\n'
                   f'dataset = "{folders["probs"]}"\nlimit = 2\nprogress = false\n'
                   '[run.engine_args]\nmax_model_len = 512\n')
    assert main(["run", "--config", str(cfg)]) == 0
    (weak,) = stubs
    assert weak.engine_args["max_model_len"] == 512
    assert len(read_runlog(tmp_path / "out")) == 2


def test_engine_that_does_not_start_fails_before_any_problem(stubs, folders, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(_args(folders, out, "--engine-args", '{"weak": {"fail_start": 1}}'))
    err = capsys.readouterr().err
    assert rc != 0 and "did not start" in err and "no memory for the KV cache" in err
    assert not (out / "runlog.jsonl").exists() or read_runlog(out) == []


@pytest.mark.parametrize("change,needle", [
    (("--weak", "MISSING"), "does not exist"),
    (("--prm", "self"), "needs --backend http"),
    (("--api", "chat"), "always renders with the model's tokenizer"),
    (("--engine-args", "[1]"), "must be a JSON object"),
    (("--engine-args", "{bad"), "not valid JSON"),
    (("--engine-args", '{"prm": 3}'), "engine_args.prm must be a JSON object"),
])
def test_bad_in_process_settings_are_one_line_exit_2(stubs, folders, tmp_path, capsys, change,
                                                      needle):
    args = _args(folders, tmp_path / "run")
    opt, value = change
    if value == "MISSING":
        value = str(tmp_path / "nope")
    if opt in args:
        args[args.index(opt) + 1] = value
    else:
        args += [opt, value]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_a_folder_without_config_json_is_refused(stubs, folders, tmp_path, capsys):
    (folders["strong"] / "config.json").unlink()
    assert main(_args(folders, tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert "config.json" in err and str(folders["strong"]) in err


def test_missing_vllm_is_a_clear_exit_2(folders, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "vllm" else real(name, *a))
    assert main(_args(folders, tmp_path / "run")) == 2
    err = capsys.readouterr().err.strip()
    assert "needs vLLM in this interpreter" in err and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_engine_args_need_the_in_process_backend(tmp_path, capsys):
    assert main(["run", "--weak", "http://127.0.0.1:9", "--policy", "weak", "--out",
                 str(tmp_path / "o"), "--engine-args", "{}"]) == 2
    assert "--backend vllm-inprocess" in capsys.readouterr().err


def test_http_settings_are_unchanged_by_default():
    s = UpstreamSettings(weak_url="http://w")
    assert (s.backend, s.affinity_header, dict(s.engine_args)) == ("http", "X-Session-ID", {})
    with pytest.raises(InputError, match="http"):
        UpstreamSettings(weak_url="/some/folder")  # a folder needs --backend vllm-inprocess
    with pytest.raises(InputError, match="header name"):
        UpstreamSettings(weak_url="http://w", affinity_header="bad header")
    with pytest.raises(InputError, match="backend"):
        UpstreamSettings(weak_url="http://w", backend="grpc")


def test_serve_takes_the_backend_flag(stubs, folders):
    from trimpomdp.cli import serve

    p = argparse.ArgumentParser()
    serve.add_arguments(p)
    args = p.parse_args(["--backend", "vllm-inprocess", "--weak", str(folders["weak"]),
                         "--strong", str(folders["strong"]), "--prm", str(folders["prm"]),
                         "--engine-args", '{"max_model_len": 2048}', "--affinity-header", "",
                         "--task", "general"])
    cfg = serve.config_from_args(args)
    s = cfg.upstream_settings()
    assert (s.backend, s.weak_url, s.prm, s.affinity_header) == (
        "vllm-inprocess", str(folders["weak"]), str(folders["prm"]), None)
    up = wiring.build_upstreams(s, cfg.profile())
    assert isinstance(up.prm, GuardedPRM) and up.prm.inner.instruction == \
        load_profile("general").prm_instruction
    inner = up.weak
    while not isinstance(inner, GuardedBackend):  # the general profile wraps the generators
        inner = inner.inner
    assert inner.inner.engine_args == {"enable_prefix_caching": True, "max_model_len": 2048}
    asyncio.run(up.check())
    http = serve.config_from_args(p.parse_args(["--weak", "http://w", "--policy",
                                                           "weak"])).upstream_settings()
    assert (http.backend, http.affinity_header) == ("http", "X-Session-ID")


def test_guard_names_an_engine_failure_during_scoring(stubs, folders):
    s = UpstreamSettings(weak_url=str(folders["weak"]), prm=str(folders["prm"]),
                         backend="vllm-inprocess")
    up = wiring.build_upstreams(s)

    async def boom(question, steps):
        raise RuntimeError("pooler crashed")
    up.prm.inner.score_steps = boom
    with pytest.raises(BackendError, match=r"in-process vLLM engine of .*pooler crashed"):
        asyncio.run(up.prm.score_steps("Q", ["a"]))
    assert Path(up.prm.inner.model) == folders["prm"]
