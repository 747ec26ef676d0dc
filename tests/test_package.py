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


def test_the_seed_has_one_name_in_the_public_api() -> None:
    """Every public function, class and method takes its seed as ``random_state``, never ``seed`` or ``rng``."""
    import importlib
    import inspect

    modules = [
        "crowdlearn",
        "crowdlearn.active",
        "crowdlearn.aggregate",
        "crowdlearn.annotations",
        "crowdlearn.datasets",
        "crowdlearn.demo",
        "crowdlearn.diagnose",
        "crowdlearn.estimators",
        "crowdlearn.io",
        "crowdlearn.metrics",
        "crowdlearn.nn",
        "crowdlearn.report",
        "crowdlearn.simulate",
        "crowdlearn.train",
        "crowdlearn.train.distributed",
    ]
    offenders = []
    seen = 0
    for mod_name in modules:
        mod = importlib.import_module(mod_name)
        names = getattr(mod, "__all__", [n for n in dir(mod) if not n.startswith("_")])
        for name in names:
            obj = getattr(mod, name)
            members = [(name, obj)]
            if inspect.isclass(obj) and obj.__module__.startswith("crowdlearn"):
                members = [(f"{name}.__init__", obj.__init__)] + [
                    (f"{name}.{m}", f) for m, f in vars(obj).items() if not m.startswith("_") and callable(f)
                ]
            for label, fn in members:
                if not (inspect.isfunction(fn) or inspect.ismethod(fn)) or not fn.__module__.startswith("crowdlearn"):
                    continue
                seen += 1
                params = inspect.signature(fn).parameters
                offenders += [f"{mod_name}.{label}({p}=)" for p in ("seed", "rng") if p in params]
    assert seen > 100
    assert offenders == []
