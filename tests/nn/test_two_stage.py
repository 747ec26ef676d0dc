"""mv-train, ds-train and MBEM: per-item targets from an aggregator (and, for MBEM, the model)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crowdlearn import Annotations  # noqa: E402
from crowdlearn.aggregate import DawidSkene, MajorityVote  # noqa: E402
from crowdlearn.estimators import CrowdClassifier  # noqa: E402
from crowdlearn.nn import get_method  # noqa: E402
from crowdlearn.nn.heads.two_stage import FixedConfusions, SoftTargetCrossEntropy  # noqa: E402
from crowdlearn.nn.methods.mbem import mbem_step  # noqa: E402
from crowdlearn.nn.registry import TargetsContext  # noqa: E402
from crowdlearn.train import Batch  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def crowd(n: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray, Annotations]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = (rng.normal(size=(n, 5)) + 2.5 * np.eye(3, 5)[y]).astype(np.float32)
    items, anns, labels = [], [], []
    skill = [0.9, 0.75, 0.6, 0.4]
    for i in range(n):
        for a in rng.choice(4, size=3, replace=False):
            items.append(i)
            anns.append(int(a))
            labels.append(int(y[i]) if rng.random() < skill[a] else int(rng.integers(0, 3)))
    return x, y, Annotations(np.asarray(items), np.asarray(anns), np.asarray(labels))


def test_soft_target_cross_entropy_against_loops() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, generator=g)
    targets = torch.rand(4, 3, generator=g)
    targets /= targets.sum(1, keepdim=True)
    empty = torch.zeros(0, dtype=torch.int64)
    out = SoftTargetCrossEntropy()(None, logits, Batch(np.arange(4), logits, empty, empty, empty, targets))  # type: ignore[arg-type]
    expected = 0.0
    for r in range(4):
        z = sum(np.exp(float(v)) for v in logits[r])
        expected -= sum(float(targets[r, k]) * (float(logits[r, k]) - np.log(z)) for k in range(3)) / 4
    assert float(out["loss"]) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="needs per-item targets"):
        SoftTargetCrossEntropy()(None, logits, Batch(np.arange(4), logits, empty, empty, empty))  # type: ignore[arg-type]


@pytest.mark.parametrize(("method", "soft"), [("mv-train", 0), ("mv-train", 1), ("ds-train", 0), ("ds-train", 1)])
def test_two_stage_targets_and_fixed_confusions_are_the_aggregators(method: str, soft: int) -> None:
    x, _, ann = crowd()
    spec = get_method(method)
    assert spec.targets is not None
    got = spec.targets(TargetsContext(ann, {"soft": soft}, 0, None, 0))
    assert got is not None and spec.targets(TargetsContext(ann, {"soft": soft}, 1, got.targets, 0)) is None
    agg = MajorityVote(random_state=0) if method == "mv-train" else DawidSkene(smoothing=0.01, shrinkage="pooled")
    agg.fit(ann)
    expected = agg.probas_ if soft else np.eye(3)[agg.labels_]
    np.testing.assert_allclose(got.targets, expected)
    clf = CrowdClassifier(method=method, method_params={"soft": soft}, epochs=3, validation="none").fit(x, ann)
    assert isinstance(clf.model_.head, FixedConfusions)
    assert not any(p.requires_grad for p in clf.model_.head.parameters())
    np.testing.assert_allclose(clf.confusions_, agg.confusions_, rtol=1e-5, atol=1e-8)  # not trained
    assert clf.rounds_ == 1


def test_hard_two_stage_is_cross_entropy_on_the_aggregated_labels() -> None:
    """mv-train (hard) trains exactly as ``ce`` on one label per item: the vote."""
    x, _, ann = crowd()
    vote = MajorityVote(random_state=4).fit(ann).labels_  # ties broken with the estimator's seed
    one = Annotations(np.arange(ann.n_items), np.zeros(ann.n_items, dtype=np.int64), vote, n_classes=3)
    a = CrowdClassifier(method="mv-train", epochs=3, validation="none", random_state=4).fit(x, ann)
    # the same training values: mv-train's recipe (ce has none)
    same = {k: v for k, v in a.training_params_.items() if k in ("lr", "batch_size", "weight_decay", "schedule")}
    b = CrowdClassifier(method="ce", epochs=3, validation="none", random_state=4, **same).fit(x, one)
    np.testing.assert_allclose(a.predict_proba(x), b.predict_proba(x), rtol=1e-5, atol=1e-6)


def test_soft_must_be_zero_or_one_and_init_stays_identity() -> None:
    x, _, ann = crowd()
    with pytest.raises(
        ValueError, match=r"method_params\['soft'\] of method 'mv-train' must be an integer >= 0 and <= 1"
    ):
        CrowdClassifier(method="mv-train", method_params={"soft": 2}).fit(x, ann)
    with pytest.raises(ValueError, match="init.*'identity' with method='ds-train'"):
        CrowdClassifier(method="ds-train", init="ds").fit(x, ann)


def test_mbem_step_against_loops() -> None:
    _, _, ann = crowd(n=30)
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.ones(3), size=ann.n_items)
    got = mbem_step(proba, TargetsContext(ann, {"rounds": 2}, 1, proba, 0))
    t = proba.argmax(1)
    conf = np.full((4, 3, 3), 0.01)
    for n, m, s in zip(ann.items, ann.annotators, ann.labels, strict=True):
        conf[m, s, t[n]] += 1
    conf /= conf.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got.confusions, conf, rtol=1e-10)
    labelled = np.unique(ann.items)
    rho = np.array([np.sum(t[labelled] == k) for k in range(3)]) + 0.01
    rho /= rho.sum()
    for n in range(ann.n_items):
        q = rho.copy()
        for m, s in zip(ann.annotators[ann.items == n], ann.labels[ann.items == n], strict=True):
            q = q * conf[m, s]
        np.testing.assert_allclose(got.targets[n], q / q.sum(), rtol=1e-8)


def test_mbem_trains_rounds_times_and_learns() -> None:
    x, y, ann = crowd(n=150, seed=3)
    clf = CrowdClassifier(method="mbem", method_params={"rounds": 3}, epochs=20, lr=1e-2, validation="none")
    clf.fit(x, ann)
    assert clf.rounds_ == 3
    assert clf.score(x, y) > 0.85
    # the kept confusions are the last round's estimate: annotator 0 (90% right) above annotator 3 (40%)
    diag = np.einsum("mjj->mj", clf.confusions_).mean(axis=1)
    assert diag[0] > 0.8 > diag[3]
