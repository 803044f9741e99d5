"""Punctuation-only drafts: retried with a fresh seed when sampling, not re-sent when greedy."""
from __future__ import annotations

import asyncio

from trimpomdp.data.problems import Problem
from trimpomdp.generation.loop import LoopConfig, solve_problem
from trimpomdp.generation.protocols import SamplingParams, StepOutput


class ScriptedWeak:
    """Answers '.' (an empty step) ``empties`` times, then a final boxed step."""

    def __init__(self, empties: int) -> None:
        self.empties, self.seeds = empties, []

    async def generate_step(self, messages, *, stop, sampling):
        self.seeds.append(sampling.seed)
        if len(self.seeds) <= self.empties:
            return StepOutput(text=".", tokens=1, stopped_on_stop=True)
        return StepOutput(text="So the answer is $\\boxed{5}$.", tokens=9, stopped_on_stop=False)


def _solve(weak, sampling):
    cfg = LoopConfig(max_steps=5, sampling=sampling)
    problem = Problem(problem_id="p0", question="What is 2+3?", answer="5")
    return asyncio.run(solve_problem(problem, weak, None, None, None, cfg))


def test_sampled_retries_vary_the_seed_and_go_on():
    weak = ScriptedWeak(2)
    rec = _solve(weak, SamplingParams(temperature=0.7, seed=11, max_tokens=16))
    assert weak.seeds == [11, 12, 13]  # same seed would repeat vLLM's draw exactly
    assert rec["empty_drafts"] == 2 and rec["status"] == "ok" and rec["correct"] is True


def test_greedy_empty_draft_is_not_resent():
    weak = ScriptedWeak(5)
    rec = _solve(weak, SamplingParams(temperature=0.0, max_tokens=16))
    assert len(weak.seeds) == 1  # the same greedy request can only give '.' again
    assert rec["end_reason"] == "empty_steps" and rec["empty_drafts"] == 1


def test_sampled_retries_stop_at_the_limit():
    weak = ScriptedWeak(10)
    rec = _solve(weak, SamplingParams(temperature=0.7, max_tokens=16))
    assert len(weak.seeds) == 4 and weak.seeds == [None] * 4  # 1 + max_empty_retries (3)
    assert rec["end_reason"] == "empty_steps"
