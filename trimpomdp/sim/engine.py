"""The rollout engine: any router (one decide per step) or a vectorised policy on a scenario.

Both share the dynamics of :mod:`trimpomdp.sim` (tested to agree).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from trimpomdp.routing.router import RouterFactory, StepRouter
from trimpomdp.sim.scenario import RunResult, Scenario
from trimpomdp.types import RouteAction

ActFn = Callable[[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
#: ``observe(t, idx, strong_score)``: the PRM scores of the strong steps just generated
ObserveFn = Callable[[int, np.ndarray, np.ndarray], None]


def rollout(sc: Scenario, act: ActFn, name: str = "vectorised", *,
            observe: ObserveFn | None = None) -> RunResult:
    """Run a vectorised policy: ``act(t, idx, score, tokens, final) -> actions`` per step.

    ``idx`` are the still-running problems; ``score``/``tokens`` their drafted step. The same
    dynamics as :func:`simulate` (tested to agree), for batched policies (PPO training).
    ``observe`` is the vectorised ``simulate(..., observe_regenerated=True)``: after each step
    it gets the simulated PRM scores of the strong steps that replaced drafts (not on a
    problem's last step, as in :func:`simulate`), so a policy can book them as the release does.
    """
    n = sc.n
    ok = np.ones(n, bool)
    st, wk, wd, calls = (np.zeros(n, np.int64) for _ in range(4))
    for t in range(sc.horizon):
        idx = np.nonzero(sc.L > t)[0]
        if idx.size == 0:
            break
        o = ok[idx]
        wok = sc.u_w[idx, t] < sc.p_w[idx]
        score = np.where(o, np.where(wok, sc.sc_ok[idx, t], sc.sc_err[idx, t]), sc.sc_post[idx, t])
        tok = sc.draft_tokens(idx, t, o, wok)
        a = np.asarray(act(t, idx, score, tok, sc.L[idx] == t + 1)).astype(bool)
        sok = sc.u_s[idx, t] < sc.p_s[idx]
        if observe is not None:
            m = a & (sc.L[idx] > t + 1)
            if m.any():
                j = idx[m]
                s2 = np.where(o[m], np.where(sok[m], sc.ss_ok[j, t], sc.ss_err[j, t]),
                              sc.ss_post[j, t])
                observe(t, j, s2)
        ok[idx] = o & np.where(a, sok, wok)
        st[idx] += np.where(a, sc.strong_tokens(idx, t, o, wok), 0)
        calls[idx] += a
        wd[idx] += np.where(a, tok, 0)
        wk[idx] += np.where(a, 0, tok)
    return RunResult(policy=name, correct=ok, strong_tokens=st, weak_kept=wk, weak_discarded=wd,
                     strong_calls=calls, steps=sc.L.copy())


def simulate(router: StepRouter | RouterFactory, sc: Scenario, *, observe_regenerated: bool = True,
             keep_traces: bool = False, progress: bool = False) -> RunResult:
    """Run a router on every problem of ``sc``, one decide() per step.

    ``router`` is a :class:`RouterFactory` (a fresh router per problem) or one
    :class:`StepRouter` (reset per problem).

    ``observe_regenerated`` (default) passes each strong step's simulated PRM score to the
    router, so it enters the min/product of previous scores, as in the release's loop (which
    re-scores the history with the strong step in it; :mod:`trimpomdp.sim.release_rule`) and in
    ``trimpomdp run`` (``--score-strong-steps``, on by default). Off: a regenerated step counts
    as 1.0. ``keep_traces`` keeps every problem's decision trace.
    """
    regen = RouteAction.REGENERATE
    n = sc.n
    wc, sc_ok_all = sc.weak_correct(), sc.strong_correct()
    correct = np.zeros(n, bool)
    st, wk, wd, calls = (np.zeros(n, np.int64) for _ in range(4))
    traces: list[list[dict[str, Any]]] | None = [] if keep_traces else None
    L, pw, ps = sc.L.tolist(), sc.p_w.tolist(), sc.p_s.tolist()
    by_class = any(getattr(sc, k) is not None for k in ("n_w_err", "n_w_post", "n_s_err",
                                                          "n_s_post"))
    make = router if isinstance(router, RouterFactory) else None
    r: StepRouter = router if isinstance(router, StepRouter) else router()
    for i in tqdm(range(n), disable=not progress, desc=router.name):
        info = {"weak_correct": bool(wc[i]), "strong_correct": bool(sc_ok_all[i]),
                "seed": int(sc.seed) * 1_000_003 + i}
        if make is not None:
            r = make(info)
        else:
            r.reset(info)
        ok = True
        uw, us = sc.u_w[i].tolist(), sc.u_s[i].tolist()
        nw, ns = sc.n_w[i].tolist(), sc.n_s[i].tolist()
        a_ok, a_err, a_post = sc.sc_ok[i], sc.sc_err[i], sc.sc_post[i]
        Li = L[i]
        for t in range(Li):
            wok = uw[t] < pw[i]
            score = float(a_ok[t] if wok else a_err[t]) if ok else float(a_post[t])
            if by_class:
                nwt = int(sc.draft_tokens(i, t, ok, wok))
                nst = int(sc.strong_tokens(i, t, ok, wok))
            else:
                nwt, nst = nw[t], ns[t]
            d = r.decide(score, nwt, t, t == Li - 1)
            if d.action is regen:
                sok = us[t] < ps[i]
                if observe_regenerated and t < Li - 1:
                    s2 = (sc.ss_ok[i, t] if sok else sc.ss_err[i, t]) if ok else sc.ss_post[i, t]
                    r.observe_regenerated(float(s2))
                ok = ok and sok
                st[i] += nst
                calls[i] += 1
                wd[i] += nwt
            else:
                ok = ok and wok
                wk[i] += nwt
        correct[i] = ok
        if traces is not None:
            traces.append(list(r.trace))
    return RunResult(policy=router.name, correct=correct,
                     strong_tokens=st, weak_kept=wk, weak_discarded=wd, strong_calls=calls,
                     steps=sc.L.copy(), traces=traces)


def step_oracle(sc: Scenario) -> RunResult:
    """The step oracle (simulator only): regenerate exactly the wrong drafts on correct prefixes.

    The limit line of step routing: it pays for the strong step only where a regeneration can
    still make the solution correct.
    """
    n = sc.n
    ok = np.ones(n, bool)
    st, wk, wd, calls = (np.zeros(n, np.int64) for _ in range(4))
    for t in range(sc.horizon):
        idx = np.nonzero(sc.L > t)[0]
        if idx.size == 0:
            break
        o = ok[idx]
        wok = sc.u_w[idx, t] < sc.p_w[idx]
        tok = sc.draft_tokens(idx, t, o, wok)
        a = o & ~wok
        sok = sc.u_s[idx, t] < sc.p_s[idx]
        ok[idx] = o & np.where(a, sok, wok)
        st[idx] += np.where(a, sc.strong_tokens(idx, t, o, wok), 0)
        calls[idx] += a
        wd[idx] += np.where(a, tok, 0)
        wk[idx] += np.where(a, 0, tok)
    return RunResult(policy="step-oracle", correct=ok, strong_tokens=st, weak_kept=wk,
                     weak_discarded=wd, strong_calls=calls, steps=sc.L.copy())


def threshold_act(k: float) -> ActFn:
    """Vectorised TRIM-Thr for :func:`rollout`."""
    return lambda t, idx, score, tok, final: score < k


__all__ = ["ActFn", "ObserveFn", "rollout", "simulate", "step_oracle", "threshold_act"]
