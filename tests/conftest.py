"""Shared fixtures: the shared research data folder (skips when absent) and the default model."""
from __future__ import annotations

import pytest

from trimpomdp.resources import shared_data_dir


@pytest.fixture(scope="session")
def shared_data():
    """Path of ../shared/data; skips the test when the folder is absent."""
    d = shared_data_dir()
    if d is None:
        pytest.skip("../shared/data is absent (set TRIMPOMDP_SHARED_DATA to run this test)")
    return d


@pytest.fixture(scope="session")
def default_model():
    from trimpomdp import load_model

    return load_model()
