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
    assert "| ccem | 55.0 ± 7.1 | 2/2 | 10 | - | 50.0, 60.0 |" in text
    assert "| geocrowdnet-f | 50.0 | 1/2 | 10 | 80.5 / 81.9 (Annot-Mix, R18) | 50.0 |" in text
    assert "| truth (clean labels) | 55.0 ± 7.1 | 2/2 | 10 | 94.0 / 94.0 (Annot-Mix, R18) | 50.0, 60.0 |" in text
    assert "training acc." not in text


def test_table_shows_training_accuracy_when_recorded(bench: Any) -> None:
    tasks = bench.build_tasks(["b"], ["mv-train"], [0, 1], _profile(bench))
    cache = {
        t.key: {
            "seed": t.seed,
            "test_acc": [0.3, 0.4],
            "seconds": 5.0,
            "diverged": None,
            "train_acc_fit": [0.5, 0.7 + 0.1 * t.seed],
            "train_acc_clean": [0.4, 0.5],
        }
        for t in tasks
    }
    text = bench.render_table("b", ["mv-train"], tasks, cache)
    assert "training acc. % on its fit labels / clean labels" in text
    assert "| mv-train | 40.0 ± 0.0 | 2/2 | 5 | 63.8 / 79.1 (Annot-Mix, R18) | 40.0, 40.0 | 75.0 / 50.0 |" in text


class _Trainer:
    """predict_logits of a fixed classifier: class = first pixel value mod 3; 2 epochs."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = [{}]
        self.epochs = 2

    def predict_logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(x[:, 0, 0, 0].long() % 3, 3).float()


def test_fit_recorder_scores_the_training_images_against_both_labels(bench: Any) -> None:
    x_train = torch.tensor([0, 1, 2, 3], dtype=torch.uint8).reshape(4, 1, 1, 1)  # predicted 0, 1, 2, 0
    x_test = torch.tensor([0, 1], dtype=torch.uint8).reshape(2, 1, 1, 1)
    train = (x_train, np.array([0, 1, 2, 1]), np.array([0, 0, 0, 0]))
    rec = bench.FitRecorder(x_test, np.array([0, 0]), train)
    rec.on_train_begin(_Trainer())
    for epoch in range(2):
        rec.on_epoch_end(_Trainer(), epoch)
    assert rec.test_acc_ == [0.5, 0.5] and rec.train_acc_clean_ == [0.75] * 2 and rec.train_acc_fit_ == [0.5] * 2
    last = bench.FitRecorder(x_test, np.array([0, 0]), train, last_only=True)
    last.on_train_begin(_Trainer())
    for epoch in range(2):
        last.on_epoch_end(_Trainer(), epoch)
    assert last.test_acc_ == [0.5] and last.train_acc_fit_ == [0.5]
    plain = bench.FitRecorder(x_test, np.array([0, 0]))
    plain.on_train_begin(_Trainer())
    plain.on_epoch_end(_Trainer(), 0)
    assert plain.test_acc_ == [0.5] and plain.train_acc_fit_ == []
    with pytest.raises(ValueError, match="differ in length"):
        bench.FitRecorder(x_test, np.array([0, 0]), (x_train, np.array([0, 1]), np.array([0, 0, 0, 0])))


def test_vote_labels_is_the_majority_vote(bench: Any) -> None:
    from crowdlearn.annotations import Annotations

    ann = Annotations(
        np.array([0, 0, 0, 1, 1, 1]),
        np.array([0, 1, 2, 0, 1, 2]),
        np.array([2, 2, 1, 0, 0, 0]),
        n_items=2,
        n_annotators=3,
        n_classes=3,
    )
    assert bench.vote_labels(ann, 0).tolist() == [2, 0]


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


def test_profile_overrides_width_and_records_training_accuracy(bench: Any) -> None:
    import argparse

    base = dict(
        full=False,
        recipe=True,
        width=16,
        epochs=5,
        n_train=100,
        n_test=50,
        init="recipe",
        train_acc=True,
        eval_last=True,
        augment=None,
    )
    profile = bench.make_profile(argparse.Namespace(**base))
    b = profile["b"]
    assert (b["width"], b["epochs"], b["n_train"], b["n_test"], b["train_acc"], b["eval_last"]) == (
        16,
        5,
        100,
        50,
        1,
        1,
    )
    assert b["training"] == {**bench.CPU_RECIPE, "init": "recipe"}
    assert bench.profile_point(b).startswith(
        "small-resnet-w16 n=100/50 bs=64"
    ) and "augment" not in bench.profile_point(b)
    plain = bench.make_profile(argparse.Namespace(**{**base, "augment": "none"}))["a"]
    assert plain["augment"] == "none" and bench.profile_point(plain).endswith(" augment=none")
    gpu = bench.make_profile(argparse.Namespace(**{**base, "full": True, "train_acc": False, "n_train": None}))
    assert gpu["b"]["backbone"] == "resnet18" and "width" not in gpu["b"] and "train_acc" not in gpu["b"]
