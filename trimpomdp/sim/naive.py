"""The TRIM POMDP itself as a trace generator (DESIGN.md §2 warns against it; kept as reference)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from trimpomdp.sim.scenario import Scenario, check_n_seed

if TYPE_CHECKING:
    from trimpomdp.model import TrimModel


class NaiveSimulator:
    """The TRIM POMDP itself as a trace generator (DESIGN.md §2's warning; for comparison)."""

    def __init__(self, model: TrimModel, *, weak_tokens: int | None = None,
                 strong_tokens: int | None = None) -> None:
        self.model = model
        self.weak_tokens = int(weak_tokens or model.future_tokens)
        self.strong_tokens = int(strong_tokens or model.future_tokens)

    def scenario(self, n: int, seed: int = 0) -> Scenario:
        """Draw ``n`` problems: common p_w/p_s, L from the hazard, scores from P(o | c) (raw
        scores: a model's ``score_transform`` is inverted)."""
        n, seed = check_n_seed(n, seed)
        m = self.model
        rng = np.random.default_rng([seed, 20260124])
        h = m.hazard
        surv = np.concatenate([[1.0], np.cumprod(1.0 - h[1:])])
        pmf = np.array([surv[k - 1] * h[k] if k >= 1 else 0.0 for k in range(len(h))])
        pmf = pmf / pmf.sum()  # P(solution has k steps), k = 0..max_steps
        L = rng.choice(len(pmf), size=n, p=pmf).clip(1, m.max_steps)
        k = round(1.0 / m.bin_size)
        marg = m.obs_probs.reshape(3, k, k).sum(axis=1)  # P(current bin | class)
        shape = (n, int(m.max_steps))

        transform = getattr(m, "score_transform", None)

        def scores(c: int) -> np.ndarray:
            b = rng.choice(k, size=shape, p=marg[c] / marg[c].sum())
            u = np.clip((b + rng.random(shape)) * m.bin_size, 0.0, 1.0)
            # P(o | c) lives on the transformed axis: the router is handed raw PRM scores and
            # transforms them itself, so draws go back through the inverse map
            return u if transform is None else transform.inverse_batch(u)

        arrays = {"u_w": rng.random(shape), "u_s": rng.random(shape),
                  "n_w": np.full(shape, self.weak_tokens), "n_s": np.full(shape, self.strong_tokens)}
        for pre in ("sc", "ss"):
            arrays[f"{pre}_ok"], arrays[f"{pre}_post"], arrays[f"{pre}_err"] = (scores(0),
                                                                               scores(1), scores(2))
        return Scenario(L=L.astype(np.int64), p_w=np.full(n, m.p_weak), p_s=np.full(n, m.p_strong),
                        problem=np.zeros(n, np.int64), seed=seed, source="naive", **arrays)


__all__ = ["NaiveSimulator"]
