"""Argument parsers shared by the TRIM commands (belief, λ lists)."""
from __future__ import annotations

import numpy as np

from trimpomdp._validate import prob_vector
from trimpomdp.errors import InputError


def parse_belief(text: str) -> np.ndarray:
    """'p0,p1,p2' (order S0, S1, S2) summing to 1 within 1e-4 → renormalised array."""
    try:
        vals = [float(x) for x in text.split(",")]
    except ValueError:
        raise InputError(f"--belief must be three comma-separated numbers p0,p1,p2. Got {text!r} "
                         "instead.", field="belief") from None
    if len(vals) != 3:
        raise InputError(f"--belief must have 3 entries (S0, S1, S2). Got {len(vals)} instead.",
                         field="belief")
    return prob_vector(vals, "belief", atol=1e-4)


def parse_lambdas(text: str) -> list[float]:
    """'start:stop:count' (inclusive, evenly spaced) or 'a,b,c' → list of λ ≥ 0."""
    try:
        if ":" in text:
            a, b, n = text.split(":")
            lams = np.linspace(float(a), float(b), int(n)).tolist()
        else:
            lams = [float(x) for x in text.split(",")]
    except ValueError:
        raise InputError(f"--lambdas must be 'start:stop:count' or a comma list. Got {text!r} "
                         "instead.", field="lambdas") from None
    if not lams or any(not np.isfinite(x) or x < 0 for x in lams):
        raise InputError(f"--lambdas must be finite numbers >= 0. Got {text!r} instead.",
                         field="lambdas")
    return lams
