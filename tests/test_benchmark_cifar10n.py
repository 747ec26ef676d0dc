"""benchmarks/cifar10n.py: task order, the table renderer, the carry copy and the GPU estimate.

No training and no real data: records and files are made by hand.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cifar10n.py"


@pytest.fixture(scope="module")
def bench() -> Any:
    spec = importlib.util.spec_from_file_location("benchmarks_cifar10n", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks_cifar10n"] = module
    spec.loader.exec_module(module)
    return module


def _profile(bench: Any) -> dict[str, dict[str, Any]]:
    base = {**bench.CPU, "training": dict(bench.CPU_TRAINING)}
    return {p: dict(base) for p in bench.PROTOCOLS}


def test_tasks_are_seed_major_with_one_truth_run_per_profile(bench: Any) -> None:
    tasks = bench.build_tasks(["a", "b"], ["ccem", "mv-train"], [0, 1], _profile(bench))
    assert [t.seed for t in tasks] == [0] * 5 + [1] * 5
    assert [(t.dataset, t.method) for t in tasks[:5]] == [
        ("cifar10n-a", "ccem"),
        ("cifar10n-a", "mv-train"),
        ("cifar10n-b", "ccem"),
        ("cifar10n-b", "mv-train"),
        ("cifar10n-clean", "truth"),
    ]
    assert len({t.key for t in tasks}) == len(tasks)


def test_table_shows_finished_rows_and_anchors(bench: Any) -> None:
    tasks = bench.build_tasks(["b"], ["ccem", "geocrowdnet-f"], [0, 1], _profile(bench))
    done = [t for t in tasks if not (t.method == "geocrowdnet-f" and t.seed == 1)]
    cache = {t.key: {"test_acc": [0.2, 0.5 + 0.1 * t.seed], "seconds": 10.0, "diverged": None} for t in done}
    text = bench.render_table("b", ["ccem", "geocrowdnet-f"], tasks, cache)
    assert "| ccem | 55.0 ± 7.1 | 2/2 | 10 | - |" in text
    assert "| geocrowdnet-f | 50.0 | 1/2 | 10 | 80.5 / 81.9 (Annot-Mix, R18) |" in text
    assert "| truth (clean labels) | 55.0 ± 7.1 | 2/2 | 10 | 94.0 / 94.0 (Annot-Mix, R18) |" in text


def test_subset_and_image_tensor(bench: Any) -> None:
    idx = bench.subset(100, 10, 14)
    assert len(idx) == 10 and np.all(np.diff(idx) > 0) and np.array_equal(idx, bench.subset(100, 10, 14))
    assert np.array_equal(bench.subset(5, 10, 14), np.arange(5))
    nhwc = np.arange(2 * 4 * 3 * 3, dtype=np.uint8).reshape(2, 4, 3, 3)
    x = bench.image_tensor(nhwc)
    assert x.shape == (2, 3, 4, 3) and x.dtype == torch.uint8 and x[1, 2, 3, 1] == nhwc[1, 3, 1, 2]


def test_prepare_carry_copies_the_data_root(bench: Any, tmp_path: Path) -> None:
    root = tmp_path / "data"
    for folder, name in bench.CARRY_FILES:
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / name).write_bytes(name.encode())
    out = bench.prepare_carry(str(root), str(tmp_path / "carry"))
    assert [p.read_bytes() for p in out] == [name.encode() for _, name in bench.CARRY_FILES]
    assert not list((tmp_path / "carry").rglob("*.part"))
    (root / "CIFAR-10N" / "side_info_cifar10N.csv").unlink()
    with pytest.raises(SystemExit, match="side_info_cifar10N.csv not found"):
        bench.prepare_carry(str(root), str(tmp_path / "carry2"))


def test_gpu_estimate_is_labelled_an_estimate(bench: Any) -> None:
    text = bench.gpu_estimate(bench.GPU_EPOCHS, 6, 1)
    assert "estimate" in text and "resnet34" in text and "total ~" in text
