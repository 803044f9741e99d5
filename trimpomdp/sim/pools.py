"""Per-problem empirical pools of real PRM scores, step tokens and solution lengths."""
from __future__ import annotations

import gzip
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import ndtri

from trimpomdp._io import atomic_write, check_envelope, envelope, read_json
from trimpomdp.errors import InputError
from trimpomdp.pomdp.dynamics import DEFAULT_MAX_STEPS
from trimpomdp.resources import resource_path

if TYPE_CHECKING:
    from trimpomdp.data.schema import StepTrace

POOLS_KIND = "sim_score_pools"
POOLS_FILE = "sim/math500_qwen2.5-7b_qwen-prm_pools.json.gz"
PAIRED_POOLS_FILE = "sim/math500_qwen2.5-7b_qwen-prm_pools_paired.json.gz"
_POOL_NAMES = ("ok", "err", "post", "step_tokens", "lengths")
# optional: the token count of the very step whose score is values["ok"/"err"/"post"][i]
_PAIRED_NAMES = ("ok_tokens", "err_tokens", "post_tokens")


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ScorePools:
    """Per-problem empirical pools: PRM scores by class, step tokens, solution lengths, outcomes.

    ``values[name]`` concatenates every problem's pool; problem j's pool is
    ``values[name][offsets[name][j] : offsets[name][j] + counts[name][j]]``.

    Optional paired pools ``ok_tokens``, ``err_tokens``, ``post_tokens`` (same counts as the
    score pools) hold the token count of the same real step as each score; with them
    :meth:`draw_paired` draws (score, tokens) jointly (:attr:`paired`).

    ``n_invisible`` (optional, per problem): wrong solutions counted in ``n_total`` that have
    no step error to score (``from_traces(..., unboxed_invisible=True)``: no final ``\boxed{}``
    answer); their steps are in no score pool (lengths and step tokens only).
    """

    problem_ids: tuple[str, ...]
    n_correct: np.ndarray
    n_total: np.ndarray
    values: dict[str, np.ndarray]
    offsets: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]
    provenance: dict[str, Any] = field(default_factory=dict)
    n_invisible: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.problem_ids)
        if n == 0:
            raise InputError("pools must hold at least one problem.", field="problem_ids")
        if self.n_invisible is not None and (
                self.n_invisible.shape != (n,) or np.any(self.n_invisible < 0)
                or np.any(self.n_invisible > self.n_total - self.n_correct)):
            raise InputError("n_invisible must hold one count per problem, at most its wrong "
                             "solutions.", field="n_invisible")
        for name in _POOL_NAMES:
            if self.offsets[name].shape != (n,) or self.counts[name].shape != (n,):
                raise InputError(f"pool '{name}' must have one offset and count per problem.",
                                 field=name)
        for name in _PAIRED_NAMES:
            if name in self.values and not np.array_equal(self.counts[name],
                                                           self.counts[name[:-7]]):
                raise InputError(f"paired pool '{name}' must have the counts of its score pool.",
                                 field=name)
        if np.any(self.counts["lengths"] == 0) or np.any(self.counts["step_tokens"] == 0):
            raise InputError("every problem needs at least one solution length and step.",
                             field="lengths")

    @property
    def n_problems(self) -> int:
        """Number of problems."""
        return len(self.problem_ids)

    @property
    def paired(self) -> bool:
        """Whether every score pool has its paired token pool."""
        return all(k in self.values for k in _PAIRED_NAMES)

    @classmethod
    def from_traces(cls, traces: Sequence[StepTrace], *, error_threshold: float = 0.35,
                    max_steps: int = DEFAULT_MAX_STEPS,
                    unboxed_invisible: bool = False) -> ScorePools:
        """Pools from scored solutions grouped by problem (``problem_id`` before '#').

        ``unboxed_invisible``: a wrong solution whose ``meta["boxed_answer"]`` is None (no final
        boxed answer) is counted in ``n_invisible`` and kept out of the score pools (it has no
        first error to score: see assumption 3b of :mod:`trimpomdp.sim.calibrated`)."""
        groups: dict[str, list[Any]] = {}
        for tr in traces:
            if tr.correct is None or tr.tokens is None:
                raise InputError("every trace needs 'correct' and 'tokens' to build pools.",
                                 field="correct")
            groups.setdefault(tr.problem_id.split("#")[0], []).append(tr)
        ids = tuple(sorted(groups))
        names = _POOL_NAMES + _PAIRED_NAMES
        pools: dict[str, list[list[float]]] = {k: [] for k in names}
        n_corr, n_tot, n_inv = [], [], []
        for pid in ids:
            ok, err, post, tok, lens = [], [], [], [], []
            okt, errt, postt = [], [], []
            inv = 0
            for tr in groups[pid]:
                s, n = list(tr.scores), list(tr.tokens)
                lens.append(min(len(s), max_steps))
                tok.extend(tr.tokens[:max_steps])
                if (unboxed_invisible and not tr.correct and "boxed_answer" in tr.meta
                        and tr.meta["boxed_answer"] is None):
                    inv += 1
                elif tr.correct:
                    ok.extend(s)
                    okt.extend(n)
                else:
                    low = [i for i, v in enumerate(s) if v < error_threshold]
                    e = low[0] if low else int(np.argmin(s))
                    ok.extend(s[:e])
                    okt.extend(n[:e])
                    err.append(s[e])
                    errt.append(n[e])
                    post.extend(s[e + 1:])
                    postt.extend(n[e + 1:])
            for k, v in zip(names, (ok, err, post, tok, lens, okt, errt, postt)):
                pools[k].append(v)
            n_corr.append(sum(bool(tr.correct) for tr in groups[pid]))
            n_tot.append(len(groups[pid]))
            n_inv.append(inv)
        values, offsets, counts = {}, {}, {}
        for k in names:
            cnt = np.array([len(v) for v in pools[k]], dtype=np.int64)
            counts[k] = cnt
            offsets[k] = np.concatenate([[0], np.cumsum(cnt)[:-1]]).astype(np.int64)
            flat = [x for v in pools[k] for x in v]
            values[k] = np.asarray(flat, dtype=float if k in ("ok", "err", "post") else np.int64)
        return cls(problem_ids=ids, n_correct=np.asarray(n_corr), n_total=np.asarray(n_tot),
                   values=values, offsets=offsets, counts=counts,
                   provenance={"error_threshold": error_threshold, "n_solutions": len(traces),
                               "unboxed_invisible": unboxed_invisible},
                   n_invisible=np.asarray(n_inv, dtype=np.int64) if unboxed_invisible else None)

    def draw(self, name: str, problems: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Draw from each problem's pool with uniforms ``u`` (shape (n, m)); empty pools fall back
        to the pool of all problems."""
        vals, off, cnt = self.values[name], self.offsets[name][problems], self.counts[name][problems]
        idx = off[:, None] + np.minimum((u * np.maximum(cnt, 1)[:, None]).astype(np.int64),
                                        np.maximum(cnt, 1)[:, None] - 1)
        glob = (u * len(vals)).astype(np.int64).clip(0, len(vals) - 1)
        return vals[np.where(cnt[:, None] > 0, idx, glob)]

    def draw_paired(self, name: str, problems: np.ndarray, u: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, tokens) of the same real steps of score pool ``name`` (needs :attr:`paired`)."""
        if not self.paired:
            raise InputError("these pools hold no paired token counts (rebuild them with "
                             "ScorePools.from_traces).", field=name)
        return self.draw(name, problems, u), self.draw(f"{name}_tokens", problems, u)

    def to_dict(self) -> dict[str, Any]:
        """Versioned JSON-ready form (scores rounded to 1e-4)."""
        pools = {}
        for k in _POOL_NAMES + (_PAIRED_NAMES if self.paired else ()):
            v = self.values[k]
            pools[k] = {"values": (np.round(v, 4).tolist() if v.dtype.kind == "f" else v.tolist()),
                        "counts": self.counts[k].tolist()}
        doc = {"problem_ids": list(self.problem_ids), "n_correct": self.n_correct.tolist(),
               "n_total": self.n_total.tolist(), "pools": pools, "provenance": self.provenance}
        if self.n_invisible is not None:
            doc["n_invisible"] = self.n_invisible.tolist()
        return envelope(POOLS_KIND, doc)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write as gzipped JSON (atomically)."""
        with atomic_write(path, "wb") as fh:
            fh.write(gzip.compress(json.dumps(self.to_dict()).encode(), mtime=0))

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> ScorePools:
        """Read pools; ``None`` reads the bundled MATH-500 pools."""

        if path is None:
            path = resource_path("data", POOLS_FILE)
        doc = check_envelope(read_json(path), POOLS_KIND, path)
        try:
            values, offsets, counts = {}, {}, {}
            names = _POOL_NAMES + (_PAIRED_NAMES if all(k in doc["pools"] for k in
                                                        _PAIRED_NAMES) else ())
            for k in names:
                cnt = np.asarray(doc["pools"][k]["counts"], dtype=np.int64)
                counts[k] = cnt
                offsets[k] = np.concatenate([[0], np.cumsum(cnt)[:-1]]).astype(np.int64)
                dt = float if k in ("ok", "err", "post") else np.int64
                values[k] = np.asarray(doc["pools"][k]["values"], dtype=dt)
            return cls(problem_ids=tuple(doc["problem_ids"]),
                       n_correct=np.asarray(doc["n_correct"]), n_total=np.asarray(doc["n_total"]),
                       values=values, offsets=offsets, counts=counts,
                       provenance=dict(doc.get("provenance", {})),
                       n_invisible=(np.asarray(doc["n_invisible"], dtype=np.int64)
                                    if "n_invisible" in doc else None))
        except (KeyError, TypeError) as exc:
            raise InputError(f"malformed pools file ({exc})", path=path) from None


def error_score_correlation(traces: Sequence[StepTrace], *, error_threshold: float = 0.35,
                            min_solutions: int = 3) -> dict[str, float]:
    """Within-problem dependence of a wrong solution's scores after its first error.

    Scores are turned into normal scores by their rank within the problem's own err / post pool
    (so differences between problems do not count), then correlated over wrong solutions:
    ``err_post`` (first-error step vs the first later step), ``err_post_mean`` (vs the mean of the
    later steps) and ``post_post`` (first vs second later step). Problems with fewer than
    ``min_solutions`` wrong solutions are skipped. Assumption 7b of
    :mod:`trimpomdp.sim.calibrated` uses these.
    """
    def nscore(v: Sequence[float]) -> np.ndarray:
        a = np.asarray(v, float)
        ranks = np.empty(a.size)
        ranks[np.argsort(a, kind="stable")] = np.arange(a.size)
        return np.asarray(ndtri((ranks + 0.5) / a.size))

    groups: dict[str, list[Any]] = {}
    for tr in traces:
        if tr.correct is False:
            groups.setdefault(tr.problem_id.split("#")[0], []).append(list(tr.scores))
    e1, p1, pm, q1, q2 = [], [], [], [], []
    for sols in groups.values():
        split = []
        for s in sols:
            low = [i for i, v in enumerate(s) if v < error_threshold]
            e = low[0] if low else int(np.argmin(s))
            split.append((s[e], s[e + 1:]))
        posts = [x for _, p in split for x in p]
        if len(split) < min_solutions or len(posts) < 2:
            continue
        ze, zp = nscore([e for e, _ in split]), nscore(posts)
        k = 0
        for j, (_, p) in enumerate(split):
            z = zp[k:k + len(p)]
            k += len(p)
            if len(p) >= 1:
                e1.append(ze[j])
                p1.append(z[0])
                pm.append(z.mean())
            if len(p) >= 2:
                q1.append(z[0])
                q2.append(z[1])
    if len(e1) < 3 or len(q1) < 3:
        raise InputError("too few wrong solutions with post-error steps.", field="traces")
    return {"err_post": float(np.corrcoef(e1, p1)[0, 1]),
            "err_post_mean": float(np.corrcoef(e1, pm)[0, 1]),
            "post_post": float(np.corrcoef(q1, q2)[0, 1]), "n_solutions": float(len(e1))}


__all__ = ["PAIRED_POOLS_FILE", "POOLS_FILE", "POOLS_KIND", "ScorePools",
           "error_score_correlation"]
