"""trimpomdp: POMDP planning for step-level hybrid LLM inference (TRIM).

Imports only numpy/scipy/scikit-learn at top level; torch and HTTP clients load lazily.
"""
__version__ = "0.1.0"

from trimpomdp.data.schema import Correctness, RouteAction, StepTrace  # noqa: E402
from trimpomdp.errors import (  # noqa: E402
    BackendError,
    InputError,
    NotFittedError,
    SolverError,
    TrimpomdpError,
)
from trimpomdp.model import TrimModel, load_model  # noqa: E402

__all__ = ["BackendError", "Correctness", "InputError", "NotFittedError", "RouteAction", "SolverError",
           "StepTrace", "TrimModel", "TrimpomdpError", "__version__", "load_model"]
