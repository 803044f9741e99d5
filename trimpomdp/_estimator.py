"""The scikit-learn estimator protocol (``get_params`` / ``set_params`` / ``repr``) without
importing scikit-learn.

Everything fitted from data follows scikit-learn's conventions (``__init__`` stores its arguments
unchanged, ``fit`` validates and sets ``attr_``), so ``sklearn.base.clone``, grid searches and
pipelines work on our estimators. Importing ``sklearn.base`` costs about 1.5 CPU seconds (it pulls
in scipy.sparse, joblib and sklearn.utils); the solve, act and budget paths only need the
protocol, so they get it from here and stay fast (``trimpomdp solve --budget`` answers in about
half the time). The behaviour matches ``sklearn.base.BaseEstimator`` for what we use: parameters
are the ``__init__`` arguments, read back from attributes of the same name.
"""
from __future__ import annotations

import inspect
from typing import Any


class BaseEstimator:
    """Base class of trimpomdp's estimators: scikit-learn's parameter protocol, no sklearn import."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        init = cls.__init__  # type: ignore[misc]
        if init is object.__init__:
            return []
        params = inspect.signature(init).parameters.values()
        for p in params:
            if p.kind == p.VAR_POSITIONAL:
                raise RuntimeError(f"{cls.__name__}.__init__ must not take *args: scikit-learn "
                                   "estimators name every parameter.")
        return sorted(p.name for p in params if p.name != "self" and p.kind != p.VAR_KEYWORD)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The ``__init__`` parameters and their values (nested estimators' as ``name__param``)."""
        out: dict[str, Any] = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{k}", v) for k, v in value.get_params().items())
            out[name] = value
        return out

    def set_params(self, **params: Any) -> BaseEstimator:
        """Set ``__init__`` parameters (``name__param`` reaches a nested estimator); returns self."""
        if not params:
            return self
        valid = self.get_params(deep=True)
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, sep, sub = key.partition("__")
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for estimator {self!r}. Valid "
                                 f"parameters are: {sorted(self._get_param_names())!r}.")
            if sep:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
                valid[name] = value
        for name, sub_params in nested.items():
            valid[name].set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        init = type(self).__init__  # type: ignore[misc]
        defaults = {} if init is object.__init__ else {
            p.name: p.default for p in inspect.signature(init).parameters.values()}
        shown = []
        for name, value in self.get_params(deep=False).items():
            default = defaults.get(name, inspect.Parameter.empty)
            try:
                same = default is value or (type(default) is type(value) and bool(default == value))
            except (TypeError, ValueError):  # arrays and values without a plain truth value
                same = False
            if not same:
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"
