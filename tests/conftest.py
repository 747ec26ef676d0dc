"""Shared fixtures: the real-data folder and seeds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """``CROWDLEARN_DATA`` or ``../shared/data`` from the repository root."""
    env = os.environ.get("CROWDLEARN_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real datasets; skip when absent, fail when CROWDLEARN_REQUIRE_DATA=1."""
    root = data_root()
    if not root.is_dir():
        msg = f"real datasets not found at {root} (set CROWDLEARN_DATA)"
        if os.environ.get("CROWDLEARN_REQUIRE_DATA") == "1":
            pytest.fail(msg + "; CROWDLEARN_REQUIRE_DATA=1 requires them")
        pytest.skip(msg)
    return root


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
