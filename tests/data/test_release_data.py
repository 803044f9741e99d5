"""Release artefacts: next-step accuracy and hazard reproduced; loaders for every shared format."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trimpomdp.data.trim_release import read_hazard, read_step_statistics
from trimpomdp.pomdp.transition_stats import hazard_from_lengths, hazard_from_pmf

BUNDLED = Path(__file__).resolve().parents[2] / "data" / "trim_release"


def test_next_step_accuracy_reproduced():
    pw = read_step_statistics(BUNDLED / "steps_qwen2.5-1.5b-instruct_math-train.json")
    ps = read_step_statistics(BUNDLED / "steps_qwen2.5-7b-instruct_math-train.json")
    assert round(pw.next_step_accuracy, 4) == 0.8660
    assert round(ps.next_step_accuracy, 4) == 0.9704
    assert pw.next_step_accuracy == pytest.approx(pw.released_next_step_accuracy, abs=1e-12)


def test_hazard_from_released_pmf():
    doc = json.loads((BUNDLED / "termination_math-train.json").read_text())
    h = hazard_from_pmf(doc["slm"]["pmf"])
    np.testing.assert_allclose(h, read_hazard(BUNDLED / "termination_math-train.json"), atol=1e-3)


def test_kde_hazard_method_matches_its_own_pmf():
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 25, size=2000)
    h = hazard_from_lengths(lengths, method="kde", bandwidth=0.1)
    assert h[0] == h[1] == 0 and h[30] == 1 and np.all((h >= 0) & (h <= 1))
    he = hazard_from_lengths(lengths, method="empirical")
    # survival implied by the hazards agrees between KDE and counting within a few percent
    surv = lambda hz: np.cumprod(1 - hz)
    assert np.max(np.abs(surv(h)[:25] - surv(he)[:25])) < 0.05


def test_default_model_is_the_release_pair(default_model):
    assert default_model.p_weak == pytest.approx(0.8660, abs=5e-5)
    assert default_model.p_strong == pytest.approx(0.9704, abs=5e-5)
    np.testing.assert_allclose(default_model.hazard, read_hazard(BUNDLED / "termination_math-train.json"))


def test_shared_loaders(shared_data):
    from trimpomdp.data import read_problems, read_score_dump
    from trimpomdp.data.prm800k import read_prm800k

    probs = read_problems(shared_data / "math500" / "test.jsonl")
    assert len(probs) == 500 and probs[0].answer
    for b in ("aime24", "aime25", "amc23", "olympiadbench"):
        ps = read_problems(shared_data / "benchmarks" / b / "test.jsonl")
        assert ps and all(p.question and p.answer for p in ps)
    dump = read_score_dump(shared_data / "prm_scores_strictprmbench" /
                           "math500_bon32_prm_step_scores.jsonl.gz", limit=200)
    assert len(dump) == 200 and all(tr.tokens is not None for tr in dump)
    prm = read_prm800k(shared_data / "prm800k" / "phase1_test.stepwise-critic.jsonl.gz", limit=20)
    assert prm and all(tr.labels is not None for tr in prm)
