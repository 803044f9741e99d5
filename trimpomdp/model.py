"""The fitted TRIM model: observation distributions, step accuracies and termination hazard.

A :class:`TrimModel` is everything needed to build the TRIM POMDP for any λ. It is a value
(frozen dataclass) saved as versioned JSON; ``models/`` ships the release's Qwen2.5-1.5B -> 7B one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trimpomdp._io import check_envelope, envelope, read_json, write_json
from trimpomdp._validate import stochastic_rows, unit_float
from trimpomdp.errors import InputError
from trimpomdp.observation.grid import grid_size, obs_table
from trimpomdp.observation.transform import ScoreTransform
from trimpomdp.resources import default_model_path

KIND = "trim_model"


@dataclass(frozen=True, kw_only=True, eq=False)
class TrimModel:
    """Parameters of the TRIM POMDP except λ.

    ``obs_probs[c, o]`` is P(observation bin o | class c) (classes S0, S1, S2; bins row-major over
    (min previous score, current score)); ``hazard[k]`` = P(solution ends at step k | reached k).
    ``score_transform``: optional monotone map g of raw PRM scores onto the grid's axis (the
    bins are then on g(score)); every density maps observations through it (the table carries
    it: :class:`~trimpomdp.observation.grid.ObsTable`). None (old files): the identity.
    """

    obs_probs: np.ndarray
    bin_size: float = 0.05
    p_weak: float
    p_strong: float
    hazard: np.ndarray
    reward: float = 100.0
    future_tokens: int = 60
    max_steps: int = 30
    discount: float = 1.0 - 1e-6
    name: str = "trim-model"
    provenance: dict[str, Any] = field(default_factory=dict)
    score_transform: ScoreTransform | None = None

    def __post_init__(self) -> None:
        k = grid_size(self.bin_size)
        p = np.asarray(self.obs_probs, dtype=float)
        if p.shape != (3, k * k):
            raise InputError(f"obs_probs must have shape (3, {k * k}). Got {p.shape} instead.",
                             field="obs_probs")
        g = self.score_transform
        if g is not None and not isinstance(g, ScoreTransform):
            g = ScoreTransform.from_dict(g)
            object.__setattr__(self, "score_transform", g)
        object.__setattr__(self, "obs_probs", obs_table(stochastic_rows(p, "obs_probs"), g))
        unit_float(self.p_weak, "p_weak")
        unit_float(self.p_strong, "p_strong")
        h = np.asarray(self.hazard, dtype=float)
        if h.shape != (self.max_steps + 1,) or np.any(h < 0) or np.any(h > 1) \
                or not np.isfinite(h).all():
            raise InputError(f"hazard must hold {self.max_steps + 1} probabilities h(0..max_steps)."
                             f" Got shape {h.shape} instead.", field="hazard")
        if abs(h[-1] - 1.0) > 1e-9:
            raise InputError(f"hazard[{self.max_steps}] must be 1 (every solution ends by the last "
                             f"step). Got {h[-1]!r} instead.", field="hazard")
        object.__setattr__(self, "hazard", h)
        if not (self.reward > 0 and self.future_tokens > 0 and 0 < self.discount <= 1):
            raise InputError("reward and future_tokens must be > 0 and discount in (0, 1].")

    @property
    def n_obs(self) -> int:
        """Number of observation bins."""
        return int(self.obs_probs.shape[1])

    def replace(self, **changes: Any) -> TrimModel:
        """A copy with some fields changed (validated again)."""
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d.update(changes)
        return TrimModel(**d)

    def to_dict(self) -> dict[str, Any]:
        """Versioned JSON-ready form (``score_transform`` only when set: old readers and
        fingerprints of untransformed models are unchanged)."""
        extra = {} if self.score_transform is None else {
            "score_transform": self.score_transform.to_dict()}
        return envelope(KIND, {
            "name": self.name, "provenance": self.provenance, "p_weak": self.p_weak,
            "p_strong": self.p_strong, "reward": self.reward, "future_tokens": self.future_tokens,
            "max_steps": self.max_steps, "discount": self.discount,
            "hazard": self.hazard.tolist(), "bin_size": self.bin_size,
            "obs_probs": {"S0": self.obs_probs[0].tolist(), "S1": self.obs_probs[1].tolist(),
                          "S2": self.obs_probs[2].tolist()}, **extra})

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write as JSON, atomically."""
        write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, doc: Any, path: str | os.PathLike[str] = "<model>") -> TrimModel:
        """Inverse of :meth:`to_dict`; errors name the file and field."""
        doc = check_envelope(doc, KIND, path)
        try:
            obs = doc["obs_probs"]
            probs = [obs["S0"], obs["S1"], obs["S2"]]
            g = doc.get("score_transform")
            g = None if g is None else ScoreTransform.from_dict(g, path)
            return cls(obs_probs=np.asarray(probs, float), bin_size=float(doc["bin_size"]),
                       p_weak=doc["p_weak"], p_strong=doc["p_strong"],
                       hazard=np.asarray(doc["hazard"], float), reward=float(doc["reward"]),
                       future_tokens=int(doc["future_tokens"]), max_steps=int(doc["max_steps"]),
                       discount=float(doc["discount"]), name=str(doc.get("name", "trim-model")),
                       provenance=dict(doc.get("provenance", {})), score_transform=g)
        except KeyError as exc:
            raise InputError("missing required field", path=path, field=str(exc.args[0])) from None
        except (TypeError, ValueError) as exc:
            raise InputError(f"malformed model ({exc})", path=path) from None
        except InputError as exc:
            raise InputError(exc.reason, path=path, field=exc.field) from None


def load_model(path: str | os.PathLike[str] | None = None) -> TrimModel:
    """Load a TRIM model file; ``None`` loads the bundled default model."""
    if path is None:
        path = default_model_path()
    return TrimModel.from_dict(read_json(path), path)


__all__ = ["TrimModel", "load_model"]
