"""How a :class:`~trimpomdp.model.TrimModel` is built from fitted parts: the release's artefacts,
an EM fit. Kept apart from the model value so that loading a model never imports scikit-learn.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from trimpomdp.data import trim_release
from trimpomdp.errors import InputError
from trimpomdp.model import TrimModel, load_model
from trimpomdp.observation.binned import BinnedObservationModel
from trimpomdp.observation.em import LatentClassObservationModel


def build_release_model(release_dir: str | os.PathLike[str], *,
                        weak: str = "qwen2.5-1.5b-instruct", strong: str = "qwen2.5-7b-instruct",
                        obs: str = "math-train") -> TrimModel:
    """The release's TRIM model for a (weak, strong) pair from its artefacts folder."""
    d = Path(release_dir)
    om = BinnedObservationModel.from_release_json(d / f"obs_model_{obs}_bin0.05.json")
    pw = trim_release.read_step_statistics(d / f"steps_{weak}_math-train.json").next_step_accuracy
    ps = trim_release.read_step_statistics(d / f"steps_{strong}_math-train.json").next_step_accuracy
    return TrimModel(
        obs_probs=om.probs_, bin_size=om.bin_size, p_weak=pw, p_strong=ps,
        hazard=trim_release.read_hazard(d / "termination_math-train.json", "slm"),
        name=f"{weak}_to_{strong}_{obs}",
        provenance={"source": "TRIM code release (github.com/Vansh28Kapoor/TRIM, commit 5ec6323,"
                              " MIT)", "weak": weak, "strong": strong,
                    "observation_model": f"obs_model_{obs}_bin0.05.json (ProcessBench, "
                                         "Qwen2.5-Math-PRM-7B)",
                    "hazard": "termination_math-train.json slm",
                    "p_weak/p_strong": "next-step accuracy, release formula on MATH train"})


def em_trim_model(est: LatentClassObservationModel, base: TrimModel | None = None, *,
                  role: str = "weak", name: str | None = None, source: str | None = None
                  ) -> TrimModel:
    """Turn an EM fit into a :class:`TrimModel` that ``solve`` accepts like the default model.

    The fitted accuracy becomes ``p_weak`` (``role="weak"``) or ``p_strong`` (``role="strong"``,
    e.g. for traces of the strong model); hazard, reward and the other accuracy come from
    ``base`` (the bundled default model if None).
    """
    est._check_fitted()
    if role not in ("weak", "strong"):
        raise InputError(f"role must be 'weak' or 'strong'. Got {role!r} instead.", field="role")
    base = load_model() if base is None else base
    prov = {**base.provenance,
            "observation_model": f"EM on outcome-labelled traces ({source or 'in memory'}; "
                                 f"{est.n_traces_} traces, {est.n_steps_} steps, m_step="
                                 f"{est.m_step})",
            f"p_{role}": f"EM next-step accuracy {est.p_:.6f}",
            "em_epsilon": est.epsilon_}
    return base.replace(obs_probs=est.probs_.copy(), bin_size=est.bin_size,
                        **{f"p_{role}": est.p_}, name=name or f"em:{source or 'traces'}",
                        provenance=prov)


def observation_model(model: TrimModel) -> BinnedObservationModel:
    """The model's binned observation model P(o | c) as a fitted estimator."""
    return BinnedObservationModel.from_probs(model.obs_probs, model.bin_size)





def fitted_trim_model(est: LatentClassObservationModel, *, hazard: Any, p_strong: float,
                      future_tokens: int, max_steps: int, name: str = "fitted",
                      provenance: dict[str, Any] | None = None, reward: float = 100.0
                      ) -> TrimModel:
    """A whole :class:`TrimModel` from a routed EM fit (P(o | c), p_w) and the other fitted
    parts (hazard over 0..max_steps, p_s, future tokens); nothing comes from a bundled model."""
    est._check_fitted()
    return TrimModel(obs_probs=est.probs_.copy(), bin_size=est.bin_size, p_weak=float(est.p_),
                     p_strong=float(p_strong), hazard=np.asarray(hazard, float),
                     reward=reward, future_tokens=int(future_tokens), max_steps=int(max_steps),
                     name=name, provenance=dict(provenance or {}))


__all__ = ["build_release_model", "em_trim_model", "fitted_trim_model", "observation_model"]
