"""Package surface: version, lazy top-level exports, import cost."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import crowdlearn


def test_version_matches_pyproject() -> None:
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    match = re.search(r'^version = "([^"]+)"', text, flags=re.M)
    assert match is not None
    assert crowdlearn.__version__ == match.group(1) == "0.1.0"


def test_import_does_not_pull_torch() -> None:
    code = "import sys, crowdlearn; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", [n for n in crowdlearn.__all__ if n != "__version__"])
def test_every_exported_name_resolves(name: str) -> None:
    assert getattr(crowdlearn, name) is not None


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = crowdlearn.nope  # type: ignore[attr-defined]


def test_py_typed_marker_ships() -> None:
    assert (Path(crowdlearn.__file__).parent / "py.typed").exists()


def test_python_dash_m_runs_the_cli() -> None:
    out = subprocess.run([sys.executable, "-m", "crowdlearn", "--version"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(crowdlearn.__version__)
