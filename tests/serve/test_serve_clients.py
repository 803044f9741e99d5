"""Third-party OpenAI clients against ``trimpomdp serve`` (issue 15): LangChain's ``ChatOpenAI``
(system prompt, history, stream, ``usage_metadata``) and legacy ``OpenAI`` class, LiteLLM's
``completion`` and ``text_completion``. Each test skips when its package is not installed.
"""
from __future__ import annotations

import os

import pytest

pytest.importorskip("aiohttp", reason="trimpomdp serve needs aiohttp (pip install 'trimpomdp[live]')")
pytest.importorskip("httpx", reason="the upstream clients need httpx")

from serve_harness import ServerThread, config, stubs

GOOD = ("Step 0 of weak (good).\n\nStep 1 of weak (good).\n\nStep 2 of weak (good). The answer "
        "is \\boxed{5}.")


@pytest.fixture(scope="module")
def srv():
    with stubs() as up, ServerThread(config(up)) as s:
        yield s


def test_langchain_chat_openai_system_history_stream_usage(srv):
    lc = pytest.importorskip("langchain_openai", reason="langchain-openai is not installed")
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    llm = lc.ChatOpenAI(base_url=srv.url + "/v1", api_key="unused", model="trimpomdp",
                        max_retries=0, timeout=30, temperature=0.7)
    msgs = [SystemMessage("You are a careful tutor."), HumanMessage("What is 1+1?"),
            AIMessage("2"), HumanMessage("What is 2+3?")]
    r = llm.invoke(msgs)
    assert r.content == GOOD
    assert r.usage_metadata["input_tokens"] > 0
    assert r.usage_metadata["output_tokens"] == 19
    assert r.response_metadata["finish_reason"] == "stop"
    chunks = list(llm.stream(msgs, stream_usage=True))
    assert "".join(c.content for c in chunks) == GOOD
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert usage and sum(u["input_tokens"] for u in usage) > 0
    # stop, and a budget through the model name
    r = lc.ChatOpenAI(base_url=srv.url + "/v1", api_key="unused", model="trimpomdp-lambda-100",
                      max_retries=0).invoke("What is 2+3?", stop=["Step 1"])
    assert r.content == "Step 0 of weak (good)."


def test_langchain_legacy_openai_class(srv):
    lc = pytest.importorskip("langchain_openai", reason="langchain-openai is not installed")
    llm = lc.OpenAI(base_url=srv.url + "/v1", api_key="unused", model="trimpomdp",
                    max_retries=0, timeout=30)
    assert llm.invoke("What is 2+3?") == GOOD  # sends logprobs/penalties/n/best_of defaults
    assert "".join(llm.stream("What is 2+3?")) == GOOD


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic notes on litellm's own types
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_litellm_completion_and_text_completion(srv):
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download at import
    litellm = pytest.importorskip("litellm", reason="litellm is not installed")
    r = litellm.completion(model="openai/trimpomdp", api_base=srv.url + "/v1", api_key="unused",
                           messages=[{"role": "system", "content": "Be careful."},
                                     {"role": "user", "content": "What is 2+3?"}],
                           max_retries=0, timeout=30)
    assert r.choices[0].message.content == GOOD
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens == 19
    stream = litellm.completion(model="openai/trimpomdp", api_base=srv.url + "/v1",
                                api_key="unused", stream=True, max_retries=0,
                                messages=[{"role": "user", "content": "What is 2+3?"}])
    assert "".join(c.choices[0].delta.content or "" for c in stream) == GOOD
    t = litellm.text_completion(model="text-completion-openai/trimpomdp",
                                api_base=srv.url + "/v1", api_key="unused",
                                prompt="What is 2+3?", max_retries=0, timeout=30)
    assert t.choices[0].text == GOOD
