"""What every registered method must do, checked for each one through the registry.

Each method's own test file checks its mathematics against a dense reference; this file checks
the contract every method shares: it trains through ``CrowdClassifier`` with mixup and with
held-out-label selection, its gradients reach every trainable parameter, save -> load gives the
same predictions and confusions, and it learns an easy simulated crowd. (Data-parallel training
of every method: tests/train/test_distributed.py.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crowdlearn import Annotations  # noqa: E402
from crowdlearn.estimators import CrowdClassifier  # noqa: E402
from crowdlearn.nn import available_methods, get_method  # noqa: E402
from crowdlearn.nn.registry import TargetsContext  # noqa: E402
from crowdlearn.train import Inputs, Trainer, make_batch  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

METHODS = available_methods(entry_points=False)


def easy_crowd(n: int = 90, m: int = 5, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray, Annotations]:
    """Separable features; 3 labels per item by annotators right 80% of the time."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = (rng.normal(size=(n, 6)) + 3.0 * np.eye(k, 6)[y]).astype(np.float32)
    items, anns, labels = [], [], []
    for i in range(n):
        for a in rng.choice(m, size=3, replace=False):
            items.append(i)
            anns.append(int(a))
            labels.append(int(y[i]) if rng.random() < 0.8 else int(rng.integers(0, k)))
    return x, y, Annotations(np.asarray(items), np.asarray(anns), np.asarray(labels), n_classes=k)


def test_the_builtin_methods_are_all_registered() -> None:
    for name in ("ccem", "geocrowdnet-f", "mv-train", "ds-train", "mbem"):
        assert name in METHODS


@pytest.mark.parametrize("method", METHODS)
def test_trains_with_mixup_and_holdout_selection_and_round_trips(method: str, tmp_path: Path) -> None:
    x, _, ann = easy_crowd()
    clf = CrowdClassifier(
        method=method, epochs=3, batch_size=32, lr=1e-2, mixup=0.4, validation="holdout", random_state=1
    )
    clf.fit(x, ann)
    losses = [e["train_loss"] for e in clf.history_] + [e["valid_loss"] for e in clf.history_]
    assert np.isfinite(losses).all() and clf.best_epoch_ is not None
    proba = clf.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    m, k = ann.n_annotators, ann.n_classes
    assert clf.confusions_.shape == (m, k, k)
    np.testing.assert_allclose(clf.confusions_.sum(axis=1), 1.0, rtol=1e-5)
    annotators = np.arange(len(x)) % m
    pairs = clf.predict_confusions(x, annotators)
    assert pairs.shape == (len(x), k, k)
    np.testing.assert_allclose(pairs.sum(axis=1), 1.0, rtol=1e-5)

    clf.save(tmp_path / "m.safetensors")
    back = CrowdClassifier.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(back.predict_proba(x), proba)
    np.testing.assert_array_equal(back.confusions_, clf.confusions_)
    np.testing.assert_array_equal(back.predict_confusions(x, annotators), pairs)


@pytest.mark.parametrize("method", METHODS)
def test_gradients_reach_every_trainable_parameter(method: str) -> None:
    x, _, ann = easy_crowd()
    clf = CrowdClassifier(method=method, epochs=1, batch_size=32, validation="none", random_state=0).fit(x, ann)
    model = clf.model_.train()
    spec = get_method(method)
    trainer = Trainer(model, clf._make_criterion(), transform=clf._make_transform(), device="cpu")
    batch = make_batch(Inputs(x), ann, np.arange(len(x), dtype=np.int64))
    if spec.targets is not None:
        targets = spec.targets(TargetsContext(ann, clf._method_params(), 0, None, 0))
        assert targets is not None
        batch = batch.replace(targets=torch.as_tensor(targets.targets, dtype=torch.float32))
    parts = trainer.forward_loss(batch.x, lambda logits, rep: trainer.get_loss(logits, batch, rep))
    parts["loss"].backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    for name, p in trainable:
        assert p.grad is not None, f"{method}: no gradient reaches {name}"
        grad = p.grad.to_dense() if p.grad.is_sparse else p.grad  # the sparse heads' gradients
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, f"{method}: zero gradient at {name}"


@pytest.mark.parametrize("method", METHODS)
def test_learns_an_easy_crowd(method: str) -> None:
    x, y, ann = easy_crowd(n=150, seed=2)
    clf = CrowdClassifier(method=method, epochs=30, batch_size=32, lr=1e-2, validation="none", random_state=0)
    clf.fit(x, ann)
    majority = np.bincount(y).max() / len(y)
    assert clf.score(x, y) > max(0.8, majority + 0.3)
