"""Every registered head's training step follows the batch's annotators: a lazy step leaves the
parameters of annotators absent from the batch exactly as they were."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crowdlearn import Annotations  # noqa: E402
from crowdlearn.estimators import CrowdClassifier  # noqa: E402
from crowdlearn.nn import available_methods, get_method  # noqa: E402
from crowdlearn.nn.registry import TargetsContext  # noqa: E402
from crowdlearn.train import Inputs, Trainer, make_batch  # noqa: E402
from crowdlearn.train.optim import AdamWithSparse  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

M, K, N = 12, 3, 96  # M differs from every other size of the heads' parameters
#: the methods whose heads learn per-annotator parameters (the two-stage ones keep theirs fixed)
LEARNED = [m for m in available_methods(entry_points=False) if m not in ("ce", "mv-train", "ds-train", "mbem")]


def _crowd() -> tuple[np.ndarray, Annotations, Annotations]:
    rng = np.random.default_rng(4)
    y = rng.integers(0, K, N)
    x = (rng.normal(size=(N, 6)) + 2.0 * np.eye(K, 6)[y]).astype(np.float32)
    items = np.repeat(np.arange(N), 3)
    every = np.concatenate([rng.choice(M, size=3, replace=False) for _ in range(N)])
    labels = np.where(rng.random(items.size) < 0.8, y[items], rng.integers(0, K, items.size))
    crowd = Annotations(items, every, labels, n_annotators=M, n_classes=K)
    few = Annotations(items, np.tile([0, 1, 2], N), labels, n_annotators=M, n_classes=K)  # annotators 0-2 only
    return x, crowd, few


@pytest.mark.parametrize("method", LEARNED)
def test_a_step_leaves_absent_annotators_untouched(method: str) -> None:
    x, crowd, few = _crowd()
    clf = CrowdClassifier(method=method, epochs=1, batch_size=32, validation="none", random_state=0).fit(x, crowd)
    model = clf.model_.train()
    trainer = Trainer(model, clf._make_criterion(), transform=clf._make_transform(), lr=0.05, device="cpu")
    assert isinstance(trainer.optimizer, AdamWithSparse), f"{method}: the head has no sparse group"
    rows = {n: p for n, p in model.head.named_parameters() if p.requires_grad and p.shape[:1] == (M,)}
    assert rows, f"{method}: no per-annotator parameter"
    batch = make_batch(Inputs(x), few, np.arange(32, dtype=np.int64))
    spec = get_method(method)
    if spec.targets is not None:  # pragma: no cover - the learned heads take the crowd labels
        targets = spec.targets(TargetsContext(few, clf._method_params(), 0, None, 0))
        assert targets is not None
        batch = batch.replace(targets=torch.as_tensor(targets.targets, dtype=torch.float32))
    before = {n: p.detach().clone() for n, p in rows.items()}
    for step in range(2):  # the second step: Adam's moments of the absent rows are not moved either
        trainer.train_step(batch, 0, step)
    for name, p in rows.items():
        assert p.grad is not None and p.grad.is_sparse, f"{method}: {name} has a dense gradient"
        torch.testing.assert_close(p.detach()[3:], before[name][3:], rtol=0, atol=0, msg=f"{method}: {name}")
        assert not torch.equal(p.detach()[:3], before[name][:3]), f"{method}: {name} did not move"


@pytest.mark.parametrize("method", LEARNED)
def test_dense_formulation_stays_available(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from crowdlearn.nn import confusion

    monkeypatch.setattr(confusion, "SPARSE_BY_DEFAULT", False)
    x, crowd, _ = _crowd()
    clf = CrowdClassifier(method=method, epochs=1, batch_size=32, validation="none", random_state=0).fit(x, crowd)
    assert not getattr(clf.model_.head, "sparse", False)
    trainer = Trainer(clf.model_, clf._make_criterion(), transform=clf._make_transform(), device="cpu")
    assert isinstance(trainer.optimizer, torch.optim.Adam)
