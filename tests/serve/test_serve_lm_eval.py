"""lm-evaluation-harness's ``local-chat-completions`` against ``trimpomdp serve`` (issue 15): one
small generative task (a local JSONL, no download) with ``--limit 5``; lm-eval sends ``stop``
(its ``until``), ``max_tokens``, ``temperature`` and ``seed`` on every request."""
from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("aiohttp", reason="trimpomdp serve needs aiohttp (pip install 'trimpomdp[live]')")
pytest.importorskip("httpx", reason="the upstream clients need httpx")
pytest.importorskip("lm_eval", reason="lm-eval is not installed")

from serve_harness import ServerThread, config, stubs

TASK = """task: trim_arith
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "What is {{{{a}}}}+{{{{b}}}}?"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n\\n\\n\\n"]
  max_gen_toks: 64
  do_sample: false
filter_list:
  - name: boxed
    filter:
      - function: regex
        regex_pattern: "boxed\\\\{{(.*?)\\\\}}"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_lm_eval_local_chat_completions_limit_5(tmp_path, monkeypatch):
    import lm_eval
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = tmp_path / "arith.jsonl"
    data.write_text("".join(json.dumps({"a": i, "b": 5 - i, "answer": "5"}) + "\n"
                            for i in range(8)))
    (tmp_path / "trim_arith.yaml").write_text(TASK.format(data=data))
    with stubs() as up, ServerThread(config(up)) as srv:
        res = lm_eval.simple_evaluate(
            model="local-chat-completions",
            model_args=(f"model=trimpomdp,base_url={srv.url}/v1/chat/completions,"
                        "num_concurrent=2,max_retries=1,tokenized_requests=False,"
                        "tokenizer_backend=None"),
            tasks=["trim_arith"], limit=5, apply_chat_template=True,
            task_manager=TaskManager(include_path=str(tmp_path)))
        sent = up["weak"].bodies["/v1/chat/completions"]
    r = res["results"]["trim_arith"]
    assert r["sample_len"] == 5 and r["exact_match,boxed"] == 1.0
    assert any("\n\n\n\n" in (b.get("stop") or []) for b in sent)  # lm-eval's `until` went upstream
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
