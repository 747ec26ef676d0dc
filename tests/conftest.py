"""Shared fixtures: the real-data folder, seeds, and one torch thread for torch tests."""

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


@pytest.fixture
def one_torch_thread():
    """One intra-op torch thread (tiny models gain nothing from more; the machine is shared).

    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
