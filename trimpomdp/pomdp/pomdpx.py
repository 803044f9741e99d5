"""Read POMDPX files (APPL's XML format, flat or factored) into a flat :class:`TabularPOMDP`.

Factored models (several ``<StateVar>``, ``<ObsVar>``) are flattened: a flat state is one value
of every state variable (the first declared variable varies slowest), a flat observation one
value of every observation variable. Flattening needs the product of the state-variable sizes
to be at most :data:`MAX_STATES` and every table to fit in memory; larger models are refused
with an :class:`InputError` naming the file and the element. Only ``TBL`` parameters are read
(``DD`` decision diagrams are refused); transitions may depend on the action and the previous
state variables, observations on the action and the current state variables, rewards on the
action and the previous state variables. Several reward functions add up.
"""
from __future__ import annotations

import gzip
import math
import os
import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from trimpomdp.errors import InputError
from trimpomdp.pomdp.tabular import MAX_DENSE_ENTRIES, MAX_STATES, TabularPOMDP

__all__ = ["MAX_STATES", "MAX_TABLE_ENTRIES", "parse_pomdpx", "read_pomdpx"]

#: entries of one dense conditional table (parents × variable) that a file may declare.
MAX_TABLE_ENTRIES = 1 << 26
#: non-zero flat transition probabilities (all actions) that flattening may create.
MAX_TRANSITIONS = 1 << 26


@dataclass
class _El:
    """An XML element with the line it starts on."""

    tag: str
    attrib: dict[str, str]
    line: int
    children: list[_El] = field(default_factory=list)
    text: str = ""

    def find(self, tag: str) -> _El | None:
        return next((c for c in self.children if c.tag == tag), None)

    def findall(self, tag: str) -> list[_El]:
        return [c for c in self.children if c.tag == tag]


def _parse_xml(data: bytes, path: str) -> _El:
    """A tree of :class:`_El` from XML bytes (expat; every element keeps its line)."""
    parser = xml.parsers.expat.ParserCreate()
    root: list[_El] = []
    stack: list[_El] = []
    chunks: list[list[str]] = []

    def start(tag: str, attrib: dict[str, str]) -> None:
        el = _El(tag, dict(attrib), parser.CurrentLineNumber)
        if stack:
            stack[-1].children.append(el)
        else:
            root.append(el)
        stack.append(el)
        chunks.append([])

    def end(tag: str) -> None:
        el = stack.pop()
        el.text = "".join(chunks.pop()).strip()

    def chars(text: str) -> None:
        if chunks:
            chunks[-1].append(text)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as exc:
        raise InputError(f"not well-formed XML ({xml.parsers.expat.ErrorString(exc.code)}); "
                         "expected a POMDPX file", path=path, line=exc.lineno) from None
    if not root or root[0].tag != "pomdpx":
        raise InputError(f"the root element must be <pomdpx>. Got "
                         f"{'<' + root[0].tag + '>' if root else 'no element'} instead.",
                         path=path, line=root[0].line if root else 1)
    return root[0]


@dataclass
class _Var:
    """One POMDPX variable: its names in the file and its value names."""

    kind: str              # "state", "obs", "action"
    names: tuple[str, ...]  # (prev, curr) for state variables, (vname,) otherwise
    values: tuple[str, ...]
    index: dict[str, int]
    line: int

    @property
    def size(self) -> int:
        return len(self.values)


class _Reader:
    """Builds the flat model from the parsed tree; every error names path, line and element."""

    def __init__(self, root: _El, path: str) -> None:
        self.root = root
        self.path = path
        self.svars: list[_Var] = []
        self.ovars: list[_Var] = []
        self.avar: _Var | None = None
        self.by_name: dict[str, tuple[_Var, str]] = {}  # name -> (var, "prev"|"curr"|"")

    def err(self, msg: str, el: _El | None, element: str | None = None) -> InputError:
        return InputError(msg, path=self.path, line=None if el is None else el.line,
                          field=element or (None if el is None else el.tag))

    def need(self, parent: _El, tag: str) -> _El:
        el = parent.find(tag)
        if el is None:
            raise self.err(f"<{parent.tag}> must contain a <{tag}> element.", parent)
        return el

    # -- variables ------------------------------------------------------------------------
    def _values(self, el: _El) -> tuple[str, ...]:
        enum, num = el.find("ValueEnum"), el.find("NumValues")
        if enum is not None:
            vals = tuple(enum.text.split())
            if not vals or len(set(vals)) != len(vals):
                raise self.err("ValueEnum must list distinct value names. Got "
                               f"{enum.text!r} instead.", enum)
            return vals
        if num is not None:
            try:
                n = int(num.text)
            except ValueError:
                n = -1
            if n < 1:
                raise self.err(f"NumValues must be a positive integer. Got {num.text!r} "
                               "instead.", num)
            if n > MAX_STATES:
                raise self.err(f"NumValues must be at most {MAX_STATES}. Got {n} instead.", num)
            return tuple(f"s{i}" for i in range(n))
        raise self.err(f"<{el.tag}> must contain <ValueEnum> or <NumValues>.", el)

    def variables(self) -> None:
        var = self.need(self.root, "Variable")
        for el in var.children:
            if el.tag == "StateVar":
                prev, curr = el.attrib.get("vnamePrev"), el.attrib.get("vnameCurr")
                if not prev or not curr:
                    raise self.err("StateVar must have vnamePrev and vnameCurr attributes.", el)
                vals = self._values(el)
                v = _Var("state", (prev, curr), vals, {n: i for i, n in enumerate(vals)},
                         el.line)
                self.svars.append(v)
                self._name(prev, v, "prev", el)
                self._name(curr, v, "curr", el)
            elif el.tag in ("ObsVar", "ActionVar"):
                name = el.attrib.get("vname")
                if not name:
                    raise self.err(f"{el.tag} must have a vname attribute.", el)
                vals = self._values(el)
                v = _Var("obs" if el.tag == "ObsVar" else "action", (name,), vals,
                         {n: i for i, n in enumerate(vals)}, el.line)
                if el.tag == "ActionVar":
                    if self.avar is not None:
                        raise self.err("only one ActionVar is supported. Got a second one "
                                       "instead.", el)
                    self.avar = v
                else:
                    self.ovars.append(v)
                self._name(name, v, "", el)
            elif el.tag == "RewardVar":
                name = el.attrib.get("vname")
                if name:
                    self.by_name[name] = (_Var("reward", (name,), (), {}, el.line), "")
            else:
                raise self.err(f"unknown element <{el.tag}> in <Variable>; expected StateVar, "
                               "ObsVar, ActionVar or RewardVar.", el)
        for what, got in (("StateVar", self.svars), ("ObsVar", self.ovars)):
            if not got:
                raise self.err(f"<Variable> must declare at least one {what}.", var)
        if self.avar is None:
            raise self.err("<Variable> must declare an ActionVar.", var)
        n_s = math.prod(v.size for v in self.svars)
        if n_s > MAX_STATES:
            sizes = " × ".join(str(v.size) for v in self.svars)
            raise self.err(f"the flattened state space must have at most {MAX_STATES} states "
                           f"to be read. Got {sizes} = {n_s} states instead.", var, "StateVar")
        n_o = math.prod(v.size for v in self.ovars)
        if n_o * n_s * self.avar.size > MAX_DENSE_ENTRIES:
            raise self.err(f"the flattened observation table (actions × states × observations) "
                           f"must have at most {MAX_DENSE_ENTRIES} entries. Got "
                           f"{self.avar.size} × {n_s} × {n_o} instead.", var, "ObsVar")

    def _name(self, name: str, v: _Var, role: str, el: _El) -> None:
        if name in self.by_name:
            raise self.err(f"variable names must be unique. Got {name!r} twice instead.", el)
        self.by_name[name] = (v, role)

    # -- tables ---------------------------------------------------------------------------
    def table(self, cp: _El, allowed: dict[str, set[str]], value_tag: str,
              ) -> tuple[_Var, str, list[tuple[_Var, str]], np.ndarray]:
        """The dense table of a <CondProb>/<Func>: (var, role, parents, array parents × var)."""
        vel = self.need(cp, "Var")
        names = vel.text.split()
        if len(names) != 1:
            raise self.err(f"<Var> must name exactly one variable. Got {vel.text!r} instead.",
                           vel)
        var, role = self._lookup(names[0], vel)
        pel = self.need(cp, "Parent")
        pnames = [] if pel.text.strip() in ("", "null") else pel.text.split()
        parents = [self._lookup(n, pel) for n in pnames]
        for pv, prole in parents:
            ok = allowed.get(pv.kind, set())
            if prole not in ok:
                raise self.err(f"parent {pv.names[0 if prole != 'curr' else 1]!r} is not "
                               f"supported here; expected {self._allowed(allowed)}.", pel)
        dims = [pv.size for pv, _ in parents] + ([var.size] if var.kind != "reward" else [])
        n = math.prod(dims)
        if n > MAX_TABLE_ENTRIES:
            raise self.err(f"a table must have at most {MAX_TABLE_ENTRIES} entries to be "
                           f"read. Got {' × '.join(map(str, dims))} = {n} instead.", cp)
        par = self.need(cp, "Parameter")
        kind = par.attrib.get("type", "TBL")
        if kind != "TBL":
            raise self.err(f"Parameter type must be 'TBL' (decision diagrams are not "
                           f"supported). Got {kind!r} instead.", par)
        arr = np.zeros(dims)
        cols = parents + ([(var, role)] if var.kind != "reward" else [])
        for ent in par.findall("Entry"):
            self._entry(ent, arr, cols, value_tag, child=var.kind != "reward")
        return var, role, parents, arr

    @staticmethod
    def _allowed(allowed: dict[str, set[str]]) -> str:
        out = []
        for kind, roles in allowed.items():
            for r in sorted(roles):
                out.append({"action": "the action", "state": f"{r} state variables",
                            "obs": "observation variables"}[kind] if kind != "state"
                           else f"{'previous' if r == 'prev' else 'current'} state variables")
        return " or ".join(out)

    def _lookup(self, name: str, el: _El) -> tuple[_Var, str]:
        if name not in self.by_name:
            raise self.err(f"unknown variable {name!r}; expected one declared in <Variable>.",
                           el)
        return self.by_name[name]

    def _entry(self, ent: _El, arr: np.ndarray, cols: list[tuple[_Var, str]], value_tag: str,
               *, child: bool) -> None:
        inst = self.need(ent, "Instance")
        toks = inst.text.split()
        if len(toks) != len(cols):
            raise self.err(f"<Instance> must have {len(cols)} values (one per parent"
                           f"{' and the variable' if child else ''}). Got {len(toks)} instead.",
                           inst)
        index: list[int | slice] = []
        shape: list[int] = []
        dash_sizes: list[int] = []
        for tok, (v, _) in zip(toks, cols):
            if tok in ("*", "-"):
                index.append(slice(None))
                shape.append(v.size if tok == "-" else 1)
                if tok == "-":
                    dash_sizes.append(v.size)
            elif tok in v.index:
                index.append(v.index[tok])
            else:
                raise self.err(f"unknown value {tok!r} of variable {v.names[-1]!r}; expected "
                               f"one of {list(v.values)[:8]}{'...' if v.size > 8 else ''}, "
                               "'*' or '-'.", inst)
        vel = ent.find(value_tag)
        if vel is None:
            raise self.err(f"<Entry> must contain a <{value_tag}> element.", ent)
        text = vel.text.strip()
        count = math.prod(dash_sizes)
        if text == "uniform" and child:
            vals = np.full(shape, 1.0 / cols[-1][0].size)
        elif text == "identity" and child:
            if len(dash_sizes) != 2 or dash_sizes[0] != dash_sizes[1] or toks[-1] != "-":
                raise self.err("'identity' needs exactly two '-' values of equal size, the "
                               f"last one the variable. Got {inst.text!r} instead.", vel)
            vals = np.eye(dash_sizes[0]).reshape(shape)
        else:
            try:
                nums = np.array([float(x) for x in text.split()])
            except ValueError as exc:
                raise self.err(f"<{value_tag}> must hold numbers"
                               f"{', uniform or identity' if child else ''}. Got "
                               f"{str(exc).split(': ')[-1]} instead.", vel) from None
            if nums.size != count:
                raise self.err(f"<{value_tag}> must have {count} values (the product of the "
                               f"'-' sizes). Got {nums.size} instead.", vel)
            if not np.all(np.isfinite(nums)):
                raise self.err(f"<{value_tag}> values must be finite. Got "
                               f"{nums[~np.isfinite(nums)][0]!r} instead.", vel)
            if child and np.any(nums < 0):
                raise self.err(f"probabilities must be non-negative. Got "
                               f"{nums[nums < 0][0]!r} instead.", vel)
            vals = nums.reshape(shape)
        arr[tuple(index)] = vals

    # -- flattening -----------------------------------------------------------------------
    def digits(self) -> np.ndarray:
        """(S, n_state_vars) values of each flat state (first variable slowest)."""
        sizes = [v.size for v in self.svars]
        return np.stack(np.unravel_index(np.arange(math.prod(sizes)), sizes), axis=1)

    def _gather(self, arr: np.ndarray, parents: list[tuple[_Var, str]], a: int,
                D: np.ndarray) -> np.ndarray:
        """Rows of ``arr`` selected by action ``a`` and each flat state's parent values."""
        idx = tuple(a if pv.kind == "action" else D[:, self._pos(pv)] for pv, _ in parents)
        out = arr[idx] if idx else arr
        if any(pv.kind == "state" for pv, _ in parents):
            return out
        return np.broadcast_to(out, (D.shape[0],) + out.shape)

    def _pos(self, v: _Var) -> int:
        return next(k for k, w in enumerate(self.svars) if w is v)

    def transitions(self, D: np.ndarray) -> tuple[sp.csr_matrix, ...]:
        stf = self.need(self.root, "StateTransitionFunction")
        tables = self._by_var(stf, {"action": {""}, "state": {"prev"}}, "curr", "ProbTable")
        assert self.avar is not None
        S = D.shape[0]
        sizes = [v.size for v in self.svars]
        mats = []
        total = 0
        for a in range(self.avar.size):
            rows = np.arange(S)
            nxt = np.zeros(S, dtype=np.int64)
            prob = np.ones(S)
            for k, v in enumerate(self.svars):
                parents, arr, el = tables[k]
                P = self._gather(arr, parents, a, D[rows])       # (m, size)
                rr, cc = np.nonzero(P > 0)
                rows, prob = rows[rr], prob[rr] * P[rr, cc]
                nxt = nxt[rr] * sizes[k] + cc
                if rows.size > MAX_TRANSITIONS:
                    raise self.err(f"flattening creates more than {MAX_TRANSITIONS} transition "
                                   "probabilities; the model is too large to flatten.", el)
            total += rows.size
            if total > MAX_TRANSITIONS:
                raise self.err(f"flattening creates more than {MAX_TRANSITIONS} transition "
                               "probabilities; the model is too large to flatten.", stf)
            m = sp.csr_matrix((prob, (rows, nxt)), shape=(S, S))
            sums = np.asarray(m.sum(axis=1)).ravel()
            bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
            if bad.size:
                s = int(bad[0])
                k, el = self._bad_var(tables, a, D[s])
                raise self.err(f"the transition of {self.svars[k].names[1]!r} for action "
                               f"{self.avar.values[a]!r} and state "
                               f"{self._state_label(D[s])} sums to {self._row_sum(tables[k], a, D[s]):.9g};"
                               " expected 1 (within 1e-06).", el)
            mats.append(m)
        return tuple(mats)

    def _bad_var(self, tables: dict, a: int, d: np.ndarray) -> tuple[int, _El]:
        for k in range(len(self.svars)):
            if abs(self._row_sum(tables[k], a, d) - 1.0) > 1e-6:
                return k, tables[k][2]
        return 0, tables[0][2]

    def _row_sum(self, tab: tuple, a: int, d: np.ndarray) -> float:
        parents, arr, _ = tab
        return float(self._gather(arr, parents, a, d[None, :])[0].sum())

    def _state_label(self, d: np.ndarray) -> str:
        return "(" + ", ".join(f"{v.names[0]}={v.values[int(x)]}"
                               for v, x in zip(self.svars, d)) + ")"

    def _by_var(self, sec: _El, allowed: dict[str, set[str]], role: str,
                value_tag: str) -> dict[int, tuple]:
        kind = "state" if role in ("curr", "prev") else "obs"
        want = self.svars if kind == "state" else self.ovars
        out: dict[int, tuple] = {}
        for cp in sec.findall("CondProb"):
            var, vrole, parents, arr = self.table(cp, allowed, value_tag)
            if var.kind != kind or (kind == "state" and vrole != role):
                raise self.err(f"<Var> of a <CondProb> in <{sec.tag}> must be "
                               f"{'a ' + ('current' if role == 'curr' else 'previous') + ' state variable' if kind == 'state' else 'an observation variable'}."
                               f" Got {var.names[-1 if vrole != 'prev' else 0]!r} instead.",
                               cp.find("Var"))
            k = next(i for i, w in enumerate(want) if w is var)
            if k in out:
                raise self.err(f"variable {var.names[-1]!r} has two <CondProb> in "
                               f"<{sec.tag}>; expected one.", cp)
            out[k] = (var, parents, arr, cp)
        for k, v in enumerate(want):
            if k not in out:
                raise self.err(f"<{sec.tag}> must have a <CondProb> for "
                               f"{v.names[1] if kind == 'state' and role == 'curr' else v.names[0]!r}.",
                               sec)
        return {k: t[1:] for k, t in out.items()}

    def observations(self, D: np.ndarray) -> np.ndarray:
        sec = self.need(self.root, "ObsFunction")
        tables = self._by_var(sec, {"action": {""}, "state": {"curr"}}, "obs", "ProbTable")
        assert self.avar is not None
        S = D.shape[0]
        sizes = [v.size for v in self.ovars]
        nO = math.prod(sizes)
        O = np.empty((self.avar.size, S, nO))
        for a in range(self.avar.size):
            acc = np.ones((S, 1))
            for k in range(len(self.ovars)):
                parents, arr, el = tables[k]
                P = self._gather(arr, parents, a, D)
                sums = P.sum(axis=1)
                bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
                if bad.size:
                    s = int(bad[0])
                    raise self.err(f"the observation probabilities of "
                                   f"{self.ovars[k].names[0]!r} for action "
                                   f"{self.avar.values[a]!r} and next state "
                                   f"{self._state_label(D[s])} sum to {float(sums[s]):.9g}; "
                                   "expected 1 (within 1e-06).", el)
                acc = (acc[:, :, None] * P[:, None, :]).reshape(S, -1)
            O[a] = acc
        return O

    def rewards(self, D: np.ndarray) -> np.ndarray:
        assert self.avar is not None
        R = np.zeros((self.avar.size, D.shape[0]))
        sec = self.root.find("RewardFunction")
        if sec is None:
            return R
        for fn in sec.findall("Func"):
            var, _, parents, arr = self.table(fn, {"action": {""}, "state": {"prev"}},
                                              "ValueTable")
            if var.kind != "reward":
                vel = self.need(fn, "Var")
                raise self.err(f"<Var> of a <Func> must be the RewardVar. Got {vel.text!r} "
                               "instead.", vel)
            for a in range(self.avar.size):
                R[a] += self._gather(arr, parents, a, D)
        return R

    def initial(self, D: np.ndarray) -> np.ndarray:
        sec = self.need(self.root, "InitialStateBelief")
        b = np.ones(D.shape[0])
        seen: set[int] = set()
        for cp in sec.findall("CondProb"):
            var, role, parents, arr = self.table(cp, {"state": {"prev"}}, "ProbTable")
            if var.kind != "state" or role != "prev" or parents:
                raise self.err("each <CondProb> of <InitialStateBelief> must give a previous "
                               "state variable with <Parent>null</Parent>. Got "
                               f"{self.need(cp, 'Var').text!r} instead.", cp)
            k = self._pos(var)
            if abs(arr.sum() - 1.0) > 1e-6:
                raise self.err(f"the start distribution of {var.names[0]!r} must sum to 1 "
                               f"(within 1e-06). Got {float(arr.sum()):.9g} instead.", cp)
            seen.add(k)
            b *= arr[D[:, k]]
        for k, v in enumerate(self.svars):
            if k not in seen:
                raise self.err(f"<InitialStateBelief> must have a <CondProb> for {v.names[0]!r}.",
                               sec)
        return b

    def discount(self) -> float:
        el = self.need(self.root, "Discount")
        try:
            g = float(el.text)
        except ValueError:
            g = math.nan
        if not (0.0 <= g <= 1.0):
            raise self.err(f"Discount must be a number in [0, 1]. Got {el.text!r} instead.", el)
        return g


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    p = Path(path)
    if p.is_dir():
        raise InputError("is a directory; expected a POMDPX file", path=p)
    try:
        if p.suffix == ".gz":
            with gzip.open(p, "rb") as fh:
                return fh.read()
        return p.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", path=p) from None
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read file ({exc}); truncated or not a POMDPX file?",
                         path=p) from None


def read_pomdpx(path: str | os.PathLike[str], *, name: str | None = None) -> TabularPOMDP:
    """Read a POMDPX file (``.pomdpx`` or ``.pomdpx.gz``), flattened, as a TabularPOMDP."""
    data = _read_bytes(path)
    if name is None:
        name = Path(path).name
        for suf in (".gz", ".pomdpx"):
            name = name.removesuffix(suf)
    return parse_pomdpx(data, path=str(path), name=name)


def parse_pomdpx(data: bytes | str, *, path: str = "<string>",
                 name: str = "pomdp") -> TabularPOMDP:
    """Parse POMDPX text (see :func:`read_pomdpx`)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if b"\x00" in raw[:4096]:
        raise InputError("binary data (NUL bytes); expected a POMDPX XML file", path=path)
    rd = _Reader(_parse_xml(raw, path), path)
    rd.variables()
    g = rd.discount()
    D = rd.digits()
    T = rd.transitions(D)
    O = rd.observations(D)
    R = rd.rewards(D)
    b0 = rd.initial(D)
    assert rd.avar is not None
    snames = tuple("_".join(v.values[int(x)] for v, x in zip(rd.svars, d)) for d in D) \
        if D.shape[0] <= 100_000 else ()
    onames = tuple("_".join(t) for t in np.array(np.meshgrid(
        *[list(v.values) for v in rd.ovars], indexing="ij")).reshape(len(rd.ovars), -1).T) \
        if len(rd.ovars) > 1 else rd.ovars[0].values
    try:
        return TabularPOMDP(T=T, O=O, R=R, discount=g, b0=b0,
                            state_names=snames if len(set(snames)) == len(snames) else (),
                            action_names=rd.avar.values, observation_names=onames, name=name,
                            meta={"source": path, "format": "pomdpx",
                                  "state_vars": [v.names[0] for v in rd.svars],
                                  "state_sizes": [v.size for v in rd.svars]})
    except InputError as exc:
        raise InputError(exc.reason, path=path, field=exc.field) from None
