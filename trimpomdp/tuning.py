"""Budgets → λ: the cost per strong token that meets a strong-token share, found by simulation."""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import trimpomdp.sim.calibrated as _calibrated_module
from trimpomdp._validate import unit_float
from trimpomdp._version import __version__
from trimpomdp.belief import BayesFilterUpdater, SingleObservationUpdater
from trimpomdp.errors import InputError
from trimpomdp.model import TrimModel, load_model
from trimpomdp.observation.grid import density_batch
from trimpomdp.policies.trim_policy import TrimPolicy, model_fingerprint
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.resources import resource_path
from trimpomdp.routing.features import book_step
from trimpomdp.routing.pomdp import pomdp_factory
from trimpomdp.sim.calibrated import CalibratedSimulator, load_simulator
from trimpomdp.sim.engine import rollout, simulate
from trimpomdp.sim.naive import NaiveSimulator
from trimpomdp.sim.scenario import Scenario
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver


class VectorisedPomdpRule:
    """A solved TRIM policy as a vectorised rule for :func:`~trimpomdp.sim.engine.rollout`.

    Call it as the rollout's ``act``; :meth:`observe` is the rollout's ``observe`` (a strong
    step's PRM score enters the min of previous scores, as the release's loop and
    ``trimpomdp run``'s default ``--score-strong-steps`` book it). One rule per rollout (it
    keeps the rollout's beliefs).
    """

    def __init__(self, policy: TrimPolicy, *, belief: str = "filter",
                 density: str = "continuous", gate: float | None = 0.4) -> None:
        self.policy = policy
        self.density = density
        model = policy.model
        if belief == "filter":
            self.updater: Any = BayesFilterUpdater.from_model(model, density)
        elif belief == "release":
            self.updater = SingleObservationUpdater.from_model(model, density, gate)
        else:
            raise InputError(f"belief must be 'filter' or 'release'. Got {belief!r} instead.",
                             field="belief")
        self.belief = belief
        self.state: dict[str, np.ndarray] = {}

    def __call__(self, t: int, idx: np.ndarray, score: np.ndarray, tok: np.ndarray,
                 final: np.ndarray) -> np.ndarray:
        model, up, state = self.policy.model, self.updater, self.state
        if t == 0:
            n = int(idx.max()) + 1 if idx.size else 0
            state["b"] = np.zeros((n, 3))
            state["min"] = np.ones(n)
            state["last"] = np.zeros(n, dtype=np.int8)
        b, mn, last = state["b"], state["min"], state["last"]
        lik = density_batch(model.obs_probs, model.bin_size, mn[idx], score, self.density)
        new, _ = up.update_batch(None if t == 0 else b[idx], last[idx], lik)
        b[idx] = new
        ask = up.consult_batch(new) if self.belief == "release" else \
            np.ones(idx.size, dtype=bool)
        a = np.zeros(idx.size, dtype=bool)
        if ask.any():
            q = self.policy.q_values_batch(t, tok[ask], new[ask], final[ask])
            a[ask] = q[:, 1] > q[:, 0]
        mn[idx], _ = book_step(mn[idx], mn[idx], score, a)
        last[idx] = a
        return a

    def observe(self, t: int, idx: np.ndarray, strong_score: np.ndarray) -> None:
        """The strong steps' PRM scores (after step ``t``) enter the min of previous scores."""
        mn = self.state["min"]
        mn[idx] = np.minimum(mn[idx], strong_score)


def pomdp_act(policy: TrimPolicy, *, belief: str = "filter", density: str = "continuous",
              gate: float | None = 0.4) -> VectorisedPomdpRule:
    """A solved TRIM policy as a vectorised rule for :func:`~trimpomdp.sim.engine.rollout`.

    The same beliefs and actions as the per-step router of :func:`pomdp_factory` (batched
    updater, batched densities and Q-values; tested to agree, also with strong scores booked via
    ``rollout(..., observe=rule.observe)``), about 50× faster: budget searches use it. One rule
    per rollout (it keeps the rollout's beliefs).
    """
    return VectorisedPomdpRule(policy, belief=belief, density=density, gate=gate)


def strong_share(model: TrimModel, lam: float, sc: Scenario, *, belief: str = "filter",
                 strong_only_tokens: float | None = None, solver: Any = None,
                 vectorised: bool = False, observe_regenerated: bool = True) -> dict[str, Any]:
    """Solve the POMDP at ``lam`` and simulate it on ``sc``: summary with ``strong_share``.

    ``vectorised`` runs the batched rule (:func:`pomdp_act`, same decisions) instead of one
    router per problem. ``observe_regenerated`` (default, as ``trimpomdp run`` and the release's
    loop): a strong step's PRM score enters the min of previous scores; off: it counts as 1.0.
    """
    policy = (solver or FiniteHorizonSolver()).solve(TrimPOMDP(model=model, lam=lam))
    if strong_only_tokens is None:
        strong_only_tokens = float(np.mean(np.where(np.arange(sc.horizon)[None, :] < sc.L[:, None],
                                                    sc.n_s, 0).sum(axis=1)))
    if vectorised:
        rule = pomdp_act(policy, belief=belief)
        res = rollout(sc, rule, f"pomdp:{lam:g}",
                      observe=rule.observe if observe_regenerated else None)
    else:
        res = simulate(pomdp_factory(policy, belief=belief, record=False), sc,
                       observe_regenerated=observe_regenerated)
    return res.summary(strong_only_tokens)


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetResult:
    """The λ found for a strong-token share, and how (which simulator, how many evaluations)."""

    lam: float
    share: float
    target: float
    simulator: str
    evaluations: int
    seconds: float
    #: solves at the search's ``solver_tol`` (the others ran at the coarse bracketing tolerance)
    fine_solves: int = 0
    #: where the simulated problems came from: "memory", "disk" or "built"
    scenario_source: str = "built"
    method: str = "fast"
    #: CPU seconds of this process during the search (``seconds`` is wall)
    cpu_seconds: float = 0.0


def simulator_for(model: TrimModel) -> tuple[CalibratedSimulator | NaiveSimulator, str]:
    """The simulator a budget for ``model`` is searched on, and its name.

    The bundled model gets the calibrated MATH-500 simulator (fitted to its pair's measured
    curve); any other model — the user's own pair — gets the simulator built from that model
    itself (its step accuracies, hazard and observation densities: :class:`NaiveSimulator`).
    """
    if _is_bundled(model):
        return load_simulator(), CALIBRATED_NAME
    return NaiveSimulator(model), _naive_name(model)


CALIBRATED_NAME = "calibrated:math500 (bundled model's pair)"
#: the coarse pruning tolerance of bracketing solves (far from the target share)
COARSE_SOLVER_TOL = 1e-2
#: a coarse evaluation closer than this to the target share is redone at ``solver_tol``
#: (coarse and fine shares differ by <= 0.0025 on the bundled model's curve: 8x margin)
FINE_MARGIN = 0.02
#: the refinement bisects once the bracket is this many ``tol`` wide (interpolates before)
BISECT_BELOW = 8
_SCENARIOS: dict[tuple[Any, ...], Scenario] = {}


def _naive_name(model: TrimModel) -> str:
    return f"model:{model.name} (the loaded model as simulator)"


def _is_bundled(model: TrimModel) -> bool:
    return model_fingerprint(model) == _bundled_fingerprint()


def is_bundled(model: TrimModel) -> bool:
    """True when ``model`` is the bundled TRIM model (same fingerprint, whatever its file)."""
    return _is_bundled(model)


@functools.lru_cache(maxsize=1)
def _bundled_fingerprint() -> str:
    return str(model_fingerprint(load_model()))


def cache_dir() -> Path | None:
    """Folder of the on-disk scenario cache (``$TRIMPOMDP_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/trimpomdp`` or ``~/.cache/trimpomdp``); None when
    ``TRIMPOMDP_NO_CACHE`` is set."""
    if os.environ.get("TRIMPOMDP_NO_CACHE"):
        return None
    env = os.environ.get("TRIMPOMDP_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "trimpomdp"


@functools.lru_cache(maxsize=1)
def _calibrated_key() -> str:
    """sha256 of everything the calibrated simulator's draws depend on: the bundled simulator
    data (pools, calibration), the simulator's source files and the package version."""
    h = hashlib.sha256(__version__.encode())
    files = sorted(resource_path("data", "sim").glob("*")) + \
        sorted(Path(_calibrated_module.__file__).parent.glob("*.py"))
    for f in files:
        if f.is_file():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def _save_scenario(sc: Scenario, path: Path) -> None:
    arrays = {f.name: getattr(sc, f.name) for f in dataclasses.fields(sc)
              if isinstance(getattr(sc, f.name), np.ndarray)}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, _seed=np.int64(sc.seed), _source=np.str_(sc.source), **arrays)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _load_scenario(path: Path) -> Scenario:
    with np.load(path, allow_pickle=False) as z:
        kw: dict[str, Any] = {k: z[k] for k in z.files if not k.startswith("_")}
        return Scenario(seed=int(z["_seed"]), source=str(z["_source"]), **kw)


def budget_scenario(model: TrimModel, n: int = 800, seed: int = 0, *, cache: bool = True
                    ) -> tuple[Scenario, str, str]:
    """The simulated problems a budget for ``model`` is searched on: (scenario, simulator name,
    where it came from: "memory", "disk" or "built").

    The same draws as ``simulator_for(model)[0].scenario(n, seed)``. The bundled model's
    calibrated simulator takes about a second to fit, so its scenario is kept in memory and on
    disk (:func:`cache_dir`, keyed by the sha256 of the simulator's data and code); a loaded
    model's own simulator is built in milliseconds and kept in memory only.
    """
    bundled = _is_bundled(model)
    key = (("calibrated", _calibrated_key()) if bundled else ("model", model_fingerprint(model))) \
        + (int(n), int(seed))
    name = CALIBRATED_NAME if bundled else _naive_name(model)
    if cache and key in _SCENARIOS:
        return _SCENARIOS[key], name, "memory"
    where = "built"
    folder = cache_dir() if cache and bundled else None
    path = None if folder is None else folder / f"budget_scenario_{key[1][:20]}_{n}_{seed}.npz"
    sc: Scenario | None = None
    if path is not None and path.is_file():
        try:
            sc, where = _load_scenario(path), "disk"
        except (OSError, ValueError, KeyError, TypeError, InputError):
            sc = None  # a stale or damaged cache file: rebuilt below
    if sc is None:
        sim = load_simulator() if bundled else NaiveSimulator(model)
        sc = sim.scenario(n, seed)
        if path is not None:
            with contextlib.suppress(OSError):
                _save_scenario(sc, path)
    if cache:
        _SCENARIOS[key] = sc
    return sc, name, where


def search_budget(model: TrimModel, budget_share: float, *,
                  simulator: CalibratedSimulator | NaiveSimulator | None = None,
                  belief: str = "filter", n: int = 800, seed: int = 0, lam_max: float = 5.0,
                  tol: float = 2e-3, solver_tol: float = 1e-3,
                  progress: Callable[[str], None] | None = None, method: str = "fast",
                  cache: bool = True, observe_regenerated: bool = True) -> BudgetResult:
    """Smallest λ whose simulated strong-token share (C̄ / C̄ strong-only) is ≤ ``budget_share``.

    The share falls as λ grows; it is simulated on one scenario (``n`` problems, ``seed``:
    common random numbers for every λ) with policies solved at pruning tolerance
    ``solver_tol``; the result is within ``tol`` of the crossing point. Returns λ = 0 if it
    already meets the budget; raises InputError if even ``lam_max`` overspends. ``progress``
    gets one line per evaluation, naming the simulator. The simulated loop books each strong
    step's PRM score into the min of previous scores (``observe_regenerated``, as ``trimpomdp
    run`` does by default and the release's loop does).

    ``method="fast"`` (default): the scenario from :func:`budget_scenario` (cached), geometric
    bracketing from λ = 0.25 with coarse solves (``COARSE_SOLVER_TOL``; any evaluation within
    ``FINE_MARGIN`` of the target is redone at ``solver_tol``, so every bracket decision is the
    fine one; after the first such evaluation all are fine), then interpolation in log λ while
    the bracket is wider than ``BISECT_BELOW`` × tol (bisection when a step does not halve
    it) and bisection below. ``method="bisect"``: the former search
    (simulator built afresh, every solve at ``solver_tol``, bracketing down from ``lam_max``,
    bisection) — same crossing, kept for ``benchmarks/budget_speed.py``.
    """
    b = unit_float(budget_share, "budget_share")
    if method not in ("fast", "bisect"):
        raise InputError(f"method must be 'fast' or 'bisect'. Got {method!r} instead.",
                         field="method")
    t0, c0 = time.perf_counter(), time.process_time()
    where = "built"
    if simulator is not None:
        sim: CalibratedSimulator | NaiveSimulator | None = simulator
        name = type(simulator).__name__
        sc = simulator.scenario(n, seed)
    elif method == "bisect":
        sim, name = simulator_for(model)
        sc = sim.scenario(n, seed)
    else:
        sc, name, where = budget_scenario(model, n, seed, cache=cache)
    so = float(np.mean(np.where(np.arange(sc.horizon)[None, :] < sc.L[:, None], sc.n_s, 0)
                       .sum(axis=1)))
    fine = FiniteHorizonSolver(tol=solver_tol)
    coarse = FiniteHorizonSolver(tol=max(float(solver_tol), COARSE_SOLVER_TOL)) \
        if method == "fast" else fine
    evals = n_fine = 0
    #: once an evaluation lands within FINE_MARGIN of the target, the later ones (inside the
    #: bracket it narrows) go straight to the fine solve
    near = [False]

    def run(lam: float, solver: FiniteHorizonSolver) -> float:
        return float(strong_share(model, lam, sc, belief=belief, strong_only_tokens=so,
                                  solver=solver, vectorised=True,
                                  observe_regenerated=observe_regenerated)["strong_share"])

    def share(lam: float) -> float:
        nonlocal evals, n_fine
        evals += 1
        v = None if coarse is fine or near[0] else run(lam, coarse)
        if v is None or abs(v - b) < FINE_MARGIN:
            n_fine += 1
            v = run(lam, fine)
        near[0] = near[0] or abs(v - b) < FINE_MARGIN
        if progress is not None:
            progress(f"budget search [{name}]: λ={lam:.4g} → share {v:.3f} (target {b:g})")
        return v

    def done(lam: float, v: float) -> BudgetResult:
        return BudgetResult(lam=lam, share=v, target=b, simulator=name, evaluations=evals,
                            seconds=time.perf_counter() - t0, fine_solves=n_fine,
                            scenario_source=where, method=method,
                            cpu_seconds=time.process_time() - c0)

    s0 = share(0.0)
    if s0 <= b:
        return done(0.0, s0)
    if method == "bisect":
        return done(*_bisect(share, b, float(lam_max), tol, name))
    return done(*_bracket_and_refine(share, s0, b, float(lam_max), tol, name))


def _overspends(lam_max: float, b: float, name: str) -> InputError:
    return InputError(f"no λ <= {lam_max:g} keeps the strong-token share <= {b:g} in the "
                      f"simulator ({name}); raise lam_max.", field="budget")


def _bisect(share: Callable[[float], float], b: float, lam_max: float, tol: float, name: str
            ) -> tuple[float, float]:
    """The former search: share(lam_max), geometric steps down by 8, then bisection."""
    hi = lam_max
    s_hi = share(hi)
    if s_hi > b:
        raise _overspends(lam_max, b, name)
    lo = 0.0
    cand = hi / 8.0
    while cand > tol:
        v = share(cand)
        if v <= b:
            hi, s_hi = cand, v
            cand /= 8.0
        else:
            lo = cand
            break
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        v = share(mid)
        if v <= b:
            hi, s_hi = mid, v
        else:
            lo = mid
    return hi, s_hi


def _bracket_and_refine(share: Callable[[float], float], s0: float, b: float,
                          lam_max: float, tol: float, name: str) -> tuple[float, float]:
    """[lo, hi] with share(lo) > b >= share(hi), hi - lo <= tol; returns (hi, share(hi))."""
    lo, s_lo = 0.0, s0
    x = min(0.25, lam_max)
    v = share(x)
    if v <= b:  # the crossing is below x: step down by 4 while still within budget
        hi, s_hi = x, v
        while hi > tol:
            x = hi / 4.0
            v = share(x)
            if v > b:
                lo, s_lo = x, v
                break
            hi, s_hi = x, v
        else:
            return hi, s_hi  # below tol of λ = 0
    else:
        lo, s_lo = x, v
        while True:
            if x >= lam_max:
                raise _overspends(lam_max, b, name)
            x = min(4.0 * x, lam_max)
            v = share(x)
            if v <= b:
                hi, s_hi = x, v
                break
            lo, s_lo = x, v
    widths = [hi - lo]
    while hi - lo > tol:
        w = hi - lo
        stalled = len(widths) >= 3 and widths[-1] > 0.5 * widths[-3]
        if w <= BISECT_BELOW * tol or stalled or s_lo <= s_hi:
            # near the crossing the simulated share is a step function with jitter of the
            # order of its slope times tol: interpolation stops paying, bisection does not
            x = lo + 0.5 * w
            if stalled:
                widths = widths[-1:]
        else:  # interpolate the share in log λ (linear while lo = 0), kept off the ends
            f = (s_lo - b) / (s_lo - s_hi)
            x = float(np.exp(np.log(lo) + f * np.log(hi / lo))) if lo > 0 else lo + f * w
            x = min(max(x, lo + 0.1 * w), hi - 0.1 * w)
        v = share(x)
        if v <= b:
            hi, s_hi = x, v
        else:
            lo, s_lo = x, v
        widths.append(hi - lo)
    return hi, s_hi


def lambda_for_budget(model: TrimModel, budget_share: float, *,
                      simulator: CalibratedSimulator | NaiveSimulator | None = None,
                      belief: str = "filter", n: int = 800, seed: int = 0,
                      lam_max: float = 5.0, tol: float = 2e-3, max_iter: int = 30) -> float:
    """λ of :func:`search_budget` (kept for callers that need the number only).

    >>> from trimpomdp import load_model
    >>> lam = lambda_for_budget(load_model(), 0.2, n=200, tol=0.05)  # doctest: +SKIP
    """
    return search_budget(model, budget_share, simulator=simulator, belief=belief, n=n, seed=seed,
                         lam_max=lam_max, tol=tol).lam


__all__ = ["BudgetResult", "VectorisedPomdpRule", "budget_scenario", "cache_dir",
           "lambda_for_budget", "pomdp_act", "search_budget", "simulator_for", "strong_share"]
