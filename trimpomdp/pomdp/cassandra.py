"""Read and write POMDPs in Cassandra's ``.pomdp`` text format (also ``.pomdp.gz``).

The format of pomdp-solve, SARSOP's ``pomdpsol`` and ZMDP: lets users bring the classic
benchmarks or their own models, and lets anyone check our TRIM instances with external solvers.
Rewards ``R: a : s : s' : o`` are folded into the expected immediate reward
``R[a, s] = sum_{s', o} T[a, s, s'] O[a, s', o] R(a, s, s', o)``.
"""
from __future__ import annotations

import gzip
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from trimpomdp._io import atomic_write
from trimpomdp.errors import InputError
from trimpomdp.pomdp.pomdpx import read_pomdpx
from trimpomdp.pomdp.tabular import _SLACK, MAX_STATES, ROW_ATOL, TabularPOMDP, check_sizes

__all__ = ["parse_cassandra", "read_cassandra", "read_pomdp", "write_cassandra"]

#: models with more than this many dense T entries are stored sparse.
DENSE_LIMIT = 20_000_000

_KEYWORDS = {"discount", "values", "states", "actions", "observations", "start", "T", "O", "R"}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.]*$")


class _Parser:
    """Token-stream parser; every error names ``path:line``."""

    def __init__(self, text: str, path: str) -> None:
        self.path = path
        toks: list[str] = []
        lines: list[int] = []
        for lineno, raw in enumerate(text.splitlines(), start=1):
            hash_ = raw.find("#")
            if hash_ >= 0:
                raw = raw[:hash_]
            if not raw.strip():
                continue
            parts = raw.replace(":", " : ").split()
            toks.extend(parts)
            lines.extend([lineno] * len(parts))
        self.toks = toks
        self.lines = lines
        self.n = len(toks)
        self.pos = 0
        self.last_line = len(text.splitlines()) or 1

    # -- token helpers --------------------------------------------------------------------
    def line(self) -> int:
        return self.lines[self.pos] if self.pos < self.n else self.last_line

    def error(self, msg: str, line: int | None = None) -> InputError:
        return InputError(msg, path=self.path, line=self.line() if line is None else line)

    def peek(self, k: int = 0) -> str | None:
        i = self.pos + k
        return self.toks[i] if i < self.n else None

    def next(self, what: str) -> str:
        if self.pos >= self.n:
            raise self.error(f"expected {what}; the file ends here (truncated?)")
        t = self.toks[self.pos]
        self.pos += 1
        return t

    def expect_colon(self, after: str) -> None:
        t = self.peek()
        if t != ":":
            raise self.error(f"expected ':' after '{after}'. Got {t!r} instead."
                             if t is not None else f"expected ':' after '{after}'; the file "
                             "ends here (truncated?)")
        self.pos += 1

    def at_keyword(self) -> bool:
        t = self.peek()
        if t not in _KEYWORDS:
            return False
        nxt = self.peek(1)
        return nxt == ":" or (t == "start" and nxt in ("include", "exclude"))

    def number(self, what: str) -> float:
        t = self.next(what)
        try:
            v = float(t)
        except ValueError:
            v = math.nan
            t_ok = False
        else:
            t_ok = math.isfinite(v)
        if not t_ok:
            self.pos -= 1
            raise self.error(f"expected {what} (a finite number). Got {t!r} instead.")
        return v

    def numbers(self, count: int, what: str) -> np.ndarray:
        out = np.empty(count)
        for i in range(count):
            if self.pos >= self.n:
                raise self.error(f"expected {count} numbers for {what}; the file ends after "
                                 f"{i} (truncated?)")
            t = self.toks[self.pos]
            try:
                out[i] = float(t)
            except ValueError:
                raise self.error(f"expected {count} numbers for {what}; got {t!r} after {i} "
                                 "numbers") from None
            if not math.isfinite(out[i]):
                raise self.error(f"expected {count} finite numbers for {what}; got {t!r} after "
                                 f"{i} numbers")
            self.pos += 1
        return out


class _Names:
    """Declared names of states, actions or observations; resolves names, numbers and '*'."""

    def __init__(self, kind: str, names: list[str] | None, count: int) -> None:
        self.kind = kind
        self.count = count
        self.names = names
        self.index = {n: i for i, n in enumerate(names)} if names else {}

    def resolve(self, tok: str, p: _Parser) -> list[int] | None:
        """Index list of ``tok``; None means '*' (all)."""
        if tok == "*":
            return None
        i = self.index.get(tok)
        if i is not None:
            return [i]
        if tok.isdigit():
            i = int(tok)
            if i < self.count:
                return [i]
        shown = (f"one of the {self.count} declared {self.kind} names"
                 if self.names else f"a {self.kind} number in 0..{self.count - 1}")
        p.pos -= 1
        raise p.error(f"unknown {self.kind} {tok!r}; expected {shown} or '*'")

    def all(self) -> list[int]:
        return list(range(self.count))


class _TStore:
    """T[a, s, s'] being filled in order (later entries override); dense or dict-of-keys."""

    def __init__(self, n_a: int, n_s: int, dense: bool) -> None:
        self.n_a, self.n_s, self.dense = n_a, n_s, dense
        self.arr = np.zeros((n_a, n_s, n_s) if dense else (0, 0, 0))
        self.dok: list[dict[int, float]] = [] if dense else [{} for _ in range(n_a)]

    def set(self, a: list[int], s: list[int], s2: list[int], vals: np.ndarray) -> None:
        if self.dense:
            self.arr[np.ix_(a, s, s2)] = vals
            return
        S = self.n_s
        vals = np.broadcast_to(vals, (len(s), len(s2)))
        for ai in a:
            d = self.dok[ai]
            for i, si in enumerate(s):
                base = si * S
                row = vals[i]
                for j, sj in enumerate(s2):
                    d[base + sj] = float(row[j])

    def set1(self, a: list[int], s: int, s2: int, v: float) -> None:
        if self.dense:
            self.arr[a, s, s2] = v
        else:
            k = s * self.n_s + s2
            for ai in a:
                self.dok[ai][k] = v

    def build(self) -> Any:
        if self.dense:
            return self.arr
        S = self.n_s
        mats = []
        for d in self.dok:
            keys = np.fromiter(d.keys(), dtype=np.int64, count=len(d))
            vals = np.fromiter(d.values(), dtype=float, count=len(d))
            keep = vals != 0
            keys, vals = keys[keep], vals[keep]
            mats.append(sp.csr_matrix((vals, (keys // S, keys % S)), shape=(S, S)))
        return tuple(mats)


def _read_text(path: str | os.PathLike[str]) -> str:
    p = Path(path)
    if p.is_dir():
        raise InputError("is a directory; expected a Cassandra .pomdp file", path=p)
    try:
        if p.suffix == ".gz":
            with gzip.open(p, "rt", encoding="utf-8") as fh:
                text = fh.read()
        else:
            with open(p, encoding="utf-8") as fh:
                text = fh.read()
    except FileNotFoundError:
        raise InputError("file not found", path=p) from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read file ({exc}); truncated or not a text .pomdp file?",
                         path=p) from None
    if "\x00" in text:
        raise InputError("binary data (NUL bytes); expected a text .pomdp file", path=p)
    return text


def read_cassandra(path: str | os.PathLike[str], *, name: str | None = None) -> TabularPOMDP:
    """Read a Cassandra ``.pomdp`` (or ``.pomdp.gz``) file into a :class:`TabularPOMDP`.

    Malformed input raises :class:`InputError` as ``path:line: what was expected``.
    """
    text = _read_text(path)
    if name is None:
        name = Path(path).name
        for suf in (".gz", ".pomdp"):
            name = name.removesuffix(suf)
    return parse_cassandra(text, path=str(path), name=name)


def read_pomdp(path: str | os.PathLike[str]) -> TabularPOMDP:
    """Read a model file by its extension: ``.pomdpx[.gz]`` as POMDPX, otherwise Cassandra."""
    if str(path).lower().removesuffix(".gz").endswith(".pomdpx"):
        return read_pomdpx(path)
    return read_cassandra(path)


def _decl_list(p: _Parser, key: str) -> tuple[int, list[str] | None]:
    """``states: 5`` or ``states: a b c``."""
    line = p.line()
    toks = []
    while p.pos < p.n and not p.at_keyword():
        toks.append(p.next(key))
    if not toks:
        raise p.error(f"expected a count or a list of names after '{key}:'", line)
    if len(toks) == 1 and toks[0].isdigit():
        n = int(toks[0])
        if n <= 0:
            raise p.error(f"the number of {key} must be positive. Got {n} instead.", line)
        if n > MAX_STATES:
            raise InputError(f"the number of {key} must be at most {MAX_STATES}. Got {n} "
                             "instead.", path=p.path, line=line, field=key)
        return n, None
    if len(set(toks)) != len(toks):
        dup = next(t for t in toks if toks.count(t) > 1)
        raise p.error(f"{key} names must be unique. Got {dup!r} twice instead.", line)
    return len(toks), toks


@dataclass
class _Header:
    """The preamble: discount, values, declarations and the raw start declarations."""

    discount: float
    values: str
    S: _Names
    A: _Names
    Ob: _Names
    start_ops: list[tuple[str, int, list[str]]]


def _preamble(p: _Parser) -> _Header:
    """Parse the declarations before the first T:/O:/R: entry; check sizes before allocating."""
    discount: float | None = None
    values = "reward"
    decl: dict[str, tuple[int, list[str] | None]] = {}
    decl_line: dict[str, int] = {}
    start_ops: list[tuple[str, int, list[str]]] = []
    while p.pos < p.n:
        if not p.at_keyword():
            raise p.error(f"expected a declaration ('discount:', 'values:', 'states:', "
                          f"'actions:', 'observations:', 'start:') or an entry ('T:', 'O:', "
                          f"'R:'). Got {p.peek()!r} instead.")
        key = p.peek()
        if key in ("T", "O", "R"):
            break
        line = p.line()
        p.pos += 1
        if key == "start":
            mode = "vector"
            if p.peek() in ("include", "exclude"):
                mode = p.next("include/exclude")
            p.expect_colon("start" if mode == "vector" else f"start {mode}")
            toks = []
            while p.pos < p.n and not p.at_keyword():
                toks.append(p.next("start"))
            if not toks:
                raise p.error("expected a start belief after 'start:'", line)
            start_ops.append((mode, line, toks))
            continue
        p.expect_colon(str(key))
        if key == "discount":
            discount = p.number("a discount factor in [0, 1] after 'discount:'")
            if not (0.0 <= discount <= 1.0):
                raise p.error(f"discount must be in [0, 1]. Got {discount!r} instead.", line)
        elif key == "values":
            v = p.next("'reward' or 'cost' after 'values:'")
            if v not in ("reward", "cost"):
                p.pos -= 1
                raise p.error(f"values must be 'reward' or 'cost'. Got {v!r} instead.")
            values = v
        else:
            decl[str(key)] = _decl_list(p, str(key))
            decl_line[str(key)] = line
    for key in ("states", "actions", "observations"):
        if key not in decl:
            raise InputError(f"missing '{key}:' declaration; expected it in the header before "
                             "the first T:/O:/R: entry", path=p.path, line=p.line())
    if discount is None:
        raise InputError("missing 'discount:' declaration; expected it in the header",
                         path=p.path, line=p.line())
    check_sizes(decl["states"][0], decl["actions"][0], decl["observations"][0], path=p.path,
                line=max(decl_line.values()))
    return _Header(discount, values, _Names("state", decl["states"][1], decl["states"][0]),
                   _Names("action", decl["actions"][1], decl["actions"][0]),
                   _Names("observation", decl["observations"][1], decl["observations"][0]),
                   start_ops)


def _start_belief(h: _Header, path: str) -> np.ndarray:
    """b0 from the start declarations (the last one wins; uniform when there is none)."""
    S = h.S
    nS = S.count
    b0 = np.full(nS, 1.0 / nS)
    for mode, line, toks in h.start_ops:
        if mode == "vector":
            if toks == ["uniform"]:
                b0 = np.full(nS, 1.0 / nS)
            elif len(toks) == nS and all(_is_number(t) for t in toks):
                b0 = np.array([float(t) for t in toks])
                if not np.all(np.isfinite(b0)):
                    raise InputError("start probabilities must be finite. Got "
                                     f"{float(b0[~np.isfinite(b0)][0])!r} instead.", path=path,
                                     line=line)
            elif len(toks) == 1:
                chosen = _resolve_start(S, toks[0], path, line)
                b0 = np.zeros(nS)
                b0[chosen] = 1.0 / len(chosen)
            else:
                raise InputError(f"expected {nS} probabilities, 'uniform' or one state after "
                                 f"'start:'. Got {len(toks)} values instead.", path=path, line=line)
        else:
            chosen = sorted({i for t in toks for i in _resolve_start(S, t, path, line)})
            mask = np.zeros(nS, bool)
            mask[chosen] = True
            if mode == "exclude":
                mask = ~mask
            if not mask.any():
                raise InputError(f"start {mode} leaves no state with positive probability",
                                 path=path, line=line)
            b0 = mask / mask.sum()
    if np.any(b0 < 0) or abs(b0.sum() - 1.0) > ROW_ATOL + _SLACK:
        line = h.start_ops[-1][1] if h.start_ops else 1
        raise InputError(f"the start belief must be non-negative and sum to 1 (within "
                         f"{ROW_ATOL:g}). Got sum {b0.sum():.9g} instead.", path=path, line=line)
    return b0


class _Entries:
    """The T:, O: and R: entries, filled in file order (later entries override earlier ones)."""

    def __init__(self, p: _Parser, h: _Header) -> None:
        self.p, self.h = p, h
        nA, nS, nO = h.A.count, h.S.count, h.Ob.count
        self.T = _TStore(nA, nS, dense=nA * nS * nS <= DENSE_LIMIT)
        self.O = np.zeros((nA, nS, nO))
        self.t_line = np.zeros((nA, nS), dtype=np.int64)
        self.o_line = np.zeros((nA, nS), dtype=np.int64)
        self.r_base = np.zeros((nA, nS))
        self.r_over: dict[tuple[int, int], dict[tuple[int, int], float]] = {}

    def idx(self, names: _Names, tok: str) -> list[int]:
        r = names.resolve(tok, self.p)
        return names.all() if r is None else r

    def parse(self) -> None:
        """Read every entry up to the end of the file."""
        p = self.p
        while p.pos < p.n:
            if not p.at_keyword() or p.peek() not in ("T", "O", "R"):
                t = p.peek()
                if p.at_keyword():
                    raise p.error(f"expected a T:, O: or R: entry; the declaration '{t}:' must "
                                  "come before the first entry")
                raise p.error(f"expected a T:, O: or R: entry. Got {t!r} instead (too many "
                              "numbers in the previous entry?)")
            kind = p.next("entry")
            line = p.line()
            p.pos += 1  # ':'
            a = self.idx(self.h.A, p.next("an action"))
            if kind == "R":
                self.reward(a)
            else:
                self.prob(kind, a, line)

    def prob(self, kind: str, a: list[int], line: int) -> None:
        """``T: a [: s [: s']] ...`` or ``O: a [: s' [: o]] ...``."""
        p, S, Ob = self.p, self.h.S, self.h.Ob
        nS, nO = S.count, Ob.count
        third = S if kind == "T" else Ob
        spec: list[list[int]] = []
        if p.peek() == ":":
            p.pos += 1
            spec.append(self.idx(S, p.next("a state")))
            if p.peek() == ":":
                p.pos += 1
                spec.append(self.idx(third, p.next(
                    "a state" if kind == "T" else "an observation")))
        n3 = third.count
        if len(spec) == 2:
            v = p.number(f"a probability for this {kind}: entry")
            if kind == "T":
                if len(spec[0]) == 1 and len(spec[1]) == 1:
                    self.T.set1(a, spec[0][0], spec[1][0], v)
                else:
                    self.T.set(a, spec[0], spec[1], np.array(v))
                self.t_line[np.ix_(a, spec[0])] = line
            else:
                self.O[np.ix_(a, spec[0], spec[1])] = v
                self.o_line[np.ix_(a, spec[0])] = line
            return
        rows = spec[0] if spec else S.all()
        row_lines: Any = line
        if p.peek() == "uniform":
            p.pos += 1
            vals = np.full((len(rows), n3), 1.0 / n3)
        elif p.peek() == "identity" and not spec:
            p.pos += 1
            if kind == "O" and nO != nS:
                raise p.error(f"'identity' for O: needs as many observations as states "
                              f"({nS}). Got {nO} instead.")
            vals = np.eye(nS, n3)
        else:
            what = (f"the {kind}: row (one value per "
                    f"{'state' if kind == 'T' else 'observation'})" if spec
                    else f"the {kind}: matrix ({len(rows)} x {n3})")
            first = p.pos
            if spec:  # one row, repeated for every state a '*' matches
                vals = np.broadcast_to(p.numbers(n3, what), (len(rows), n3))
                row_lines = np.full(len(rows), p.lines[first])
            else:
                vals = p.numbers(len(rows) * n3, what).reshape(len(rows), n3)
                row_lines = np.asarray(p.lines[first:p.pos:n3])
        if kind == "T":
            self.T.set(a, rows, S.all(), vals)
            self.t_line[np.ix_(a, rows)] = row_lines
        else:
            self.O[np.ix_(a, rows, Ob.all())] = vals
            self.o_line[np.ix_(a, rows)] = row_lines

    def reward(self, a: list[int]) -> None:
        """``R: a : s : s' : o value`` | ``R: a : s : s' row`` | ``R: a : s matrix``."""
        p, S, Ob = self.p, self.h.S, self.h.Ob
        nS, nO = S.count, Ob.count
        specs: list[list[int] | None] = []
        for names in (S, S, Ob):
            if p.peek() != ":":
                break
            p.pos += 1
            specs.append(names.resolve(p.next(f"a {names.kind}"), p))
        if not specs:
            raise p.error("expected ':' and a start state after 'R: action'")
        s_list = S.all() if specs[0] is None else specs[0]
        if len(specs) == 3:
            v = p.number("a reward value for this R: entry")
            if specs[1] is None and specs[2] is None:
                self.r_base[np.ix_(a, s_list)] = v
                if self.r_over:
                    for ai in a:
                        for si in s_list:
                            self.r_over.pop((ai, si), None)
                return
            sp_list = S.all() if specs[1] is None else specs[1]
            o_list = Ob.all() if specs[2] is None else specs[2]
            for ai in a:
                for si in s_list:
                    d = self.r_over.setdefault((ai, si), {})
                    for spi in sp_list:
                        for oi in o_list:
                            d[(spi, oi)] = v
            return
        if len(specs) == 2:
            sp_list = S.all() if specs[1] is None else specs[1]
            vals = p.numbers(nO, "the R: row (one reward per observation)")
            mat = np.broadcast_to(vals, (len(sp_list), nO))
        else:
            sp_list = S.all()
            mat = p.numbers(nS * nO, f"the R: matrix ({nS} x {nO})").reshape(nS, nO)
        for ai in a:
            for si in s_list:
                d = self.r_over.setdefault((ai, si), {})
                for j, spi in enumerate(sp_list):
                    for oi in range(nO):
                        d[(spi, oi)] = float(mat[j, oi])

    def check_rows(self, T: Any) -> None:
        """Every T and O row sums to 1; errors name the line of the entry that last set it."""
        p, A, S = self.p, self.h.A, self.h.S
        if isinstance(T, tuple):
            tsums = np.stack([np.asarray(m.sum(axis=1)).ravel() for m in T])
        else:
            tsums = T.sum(axis=-1)
        for sums, lines, kind in ((tsums, self.t_line, "T"), (self.O.sum(axis=-1), self.o_line,
                                                              "O")):
            bad = np.argwhere(np.abs(sums - 1.0) > ROW_ATOL + _SLACK)
            if bad.size:
                ai, si = (int(x) for x in bad[0])
                what = (f"{kind}: row for action {_label(A, ai)}, "
                        f"{'state' if kind == 'T' else 'next state'} {_label(S, si)}")
                ln = int(lines[ai, si])
                if ln == 0:
                    raise InputError(f"no {kind}: entry gives {what}; expected probabilities "
                                     "that sum to 1", path=p.path, line=p.last_line)
                raise InputError(f"{what} sums to {float(sums[ai, si]):.9g}; expected 1 (within "
                                 f"{ROW_ATOL:g})", path=p.path, line=ln)
        if np.any(self.O < 0) or (not isinstance(T, tuple) and np.any(T < 0)) or (
                isinstance(T, tuple) and any(np.any(m.data < 0) for m in T)):
            raise InputError("probabilities must be non-negative", path=p.path)

    def rewards(self, T: Any) -> np.ndarray:
        """Expected immediate rewards R[a, s] (R(a, s, s', o) folded over T and O)."""
        R = self.r_base.copy()
        for (ai, si), d in self.r_over.items():
            base = self.r_base[ai, si]
            row = T[ai].getrow(si).toarray().ravel() if isinstance(T, tuple) else T[ai, si]
            acc = 0.0
            for (spi, oi), v in d.items():
                acc += row[spi] * self.O[ai, spi, oi] * (v - base)
            R[ai, si] = base + acc
        return -R if self.h.values == "cost" else R


def parse_cassandra(text: str, *, path: str = "<string>", name: str = "pomdp") -> TabularPOMDP:
    """Parse Cassandra ``.pomdp`` text (see :func:`read_cassandra`)."""
    p = _Parser(text, path)
    if p.n == 0:
        raise InputError("the file is empty; expected a Cassandra .pomdp header ('discount:', "
                         "'values:', 'states:', 'actions:', 'observations:')", path=path, line=1)
    h = _preamble(p)
    b0 = _start_belief(h, path)
    ent = _Entries(p, h)
    ent.parse()
    T = ent.T.build()
    ent.check_rows(T)
    R = ent.rewards(T)
    S, A, Ob = h.S, h.A, h.Ob
    return TabularPOMDP(T=T, O=ent.O, R=R, discount=h.discount, b0=b0,
                        state_names=tuple(S.names) if S.names else (),
                        action_names=tuple(A.names) if A.names else (),
                        observation_names=tuple(Ob.names) if Ob.names else (),
                        name=name, meta={"source": path})


def _is_number(t: str) -> bool:
    try:
        float(t)
    except ValueError:
        return False
    return True


def _resolve_start(S: _Names, tok: str, path: str, line: int) -> list[int]:
    if tok == "*":
        return S.all()
    if tok in S.index:
        return [S.index[tok]]
    if tok.isdigit() and int(tok) < S.count:
        return [int(tok)]
    raise InputError(f"unknown state {tok!r} in the start declaration; expected a declared "
                     "state name or number", path=path, line=line)


def _label(names: _Names, i: int) -> str:
    return repr(names.names[i]) if names.names else str(i)


def _token_names(names: tuple[str, ...]) -> bool:
    """True when ``names`` can be written as Cassandra identifiers."""
    return all(_NAME_RE.match(n) and n not in _KEYWORDS and n not in ("uniform", "identity",
                                                                      "include", "exclude")
               for n in names)


def _fmt(x: float) -> str:
    return repr(float(x))


def format_cassandra(pomdp: TabularPOMDP) -> str:
    """The Cassandra text of ``pomdp`` (terminal states written as zero-reward self-loops)."""
    m = pomdp.absorbing()
    out: list[str] = [f"# {m.name}: written by trimpomdp (expected immediate rewards R[a, s])"]
    if m.terminal is not None and m.terminal.any():
        out.append("# terminal states (absorbing, reward 0): "
                   + " ".join(str(i) for i in np.flatnonzero(m.terminal)))
    use_s = _token_names(m.state_names)
    use_a = _token_names(m.action_names)
    use_o = _token_names(m.observation_names)
    sn = list(m.state_names) if use_s else [str(i) for i in range(m.n_states)]
    an = list(m.action_names) if use_a else [str(i) for i in range(m.n_actions)]
    on = list(m.observation_names) if use_o else [str(i) for i in range(m.n_observations)]
    out.append(f"discount: {_fmt(m.discount)}")
    out.append("values: reward")
    out.append("states: " + (" ".join(sn) if use_s else str(m.n_states)))
    out.append("actions: " + (" ".join(an) if use_a else str(m.n_actions)))
    out.append("observations: " + (" ".join(on) if use_o else str(m.n_observations)))
    out.append("start: " + " ".join(_fmt(x) for x in m.b0))
    out.append("")
    for a in range(m.n_actions):
        mat = sp.csr_matrix(m.transition(a))
        coo = mat.tocoo()
        order = np.lexsort((coo.col, coo.row))
        for r, c, v in zip(coo.row[order], coo.col[order], coo.data[order]):
            out.append(f"T: {an[a]} : {sn[r]} : {sn[c]} {_fmt(v)}")
    out.append("")
    for a in range(m.n_actions):
        rs, os_ = np.nonzero(m.O[a])
        for r, o in zip(rs, os_):
            out.append(f"O: {an[a]} : {sn[r]} : {on[o]} {_fmt(m.O[a, r, o])}")
    out.append("")
    for a in range(m.n_actions):
        for s in np.flatnonzero(m.R[a]):
            out.append(f"R: {an[a]} : {sn[s]} : * : * {_fmt(m.R[a, s])}")
    out.append("")
    return "\n".join(out)


def write_cassandra(pomdp: TabularPOMDP, path: str | os.PathLike[str]) -> None:
    """Write ``pomdp`` as a Cassandra ``.pomdp`` file (gzip when the name ends in ``.gz``).

    Written atomically; values are exact (shortest round-trip float repr).
    """
    text = format_cassandra(pomdp)
    if str(path).endswith(".gz"):
        with atomic_write(path, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) as gz:
            gz.write(text.encode("utf-8"))
    else:
        with atomic_write(path) as fh:
            fh.write(text)
