"""Many classes and annotators: the confusion budget, one-coin on the triples, clustered confusions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _agg_sim import random_confusions, simulate
from crowdlearn.aggregate import ClusteredDawidSkene, ConfusionBudgetError, DawidSkene, OneCoinDawidSkene
from crowdlearn.aggregate.dawid_skene import one_coin_confusions, one_coin_log_lik
from crowdlearn.annotations import Annotations

K_MANY, M_MANY = 1000, 100_000


@pytest.fixture(scope="module")
def many() -> tuple[Annotations, np.ndarray]:
    """K = 1,000 classes, 100,000 annotators (most without labels), 1,000 items x 5 labels."""
    rng = np.random.default_rng(11)
    n_items = 1000
    truth = rng.integers(0, K_MANY, n_items)
    annotators = rng.choice(M_MANY, size=(n_items, 5), replace=False).reshape(-1)
    skill = rng.uniform(0.4, 0.9, M_MANY)
    items = np.repeat(np.arange(n_items), 5)
    right = rng.random(len(items)) < skill[annotators]
    labels = np.where(right, truth[items], rng.integers(0, K_MANY, len(items)))
    ann = Annotations(items, annotators, labels, n_items=n_items, n_annotators=M_MANY, n_classes=K_MANY)
    return ann, truth


def test_budget_error_names_sizes_and_alternatives(many: tuple[Annotations, np.ndarray]) -> None:
    ann, _ = many
    with pytest.raises(ConfusionBudgetError) as info:
        DawidSkene().fit(ann)  # raised before any (M, K, K) allocation (800 GB)
    msg = str(info.value)
    assert "DawidSkene confusions need 100000 annotators x 1000 classes x 1000 classes float64 = 800.0 GB" in msg
    assert "(800000000000 bytes), over max_confusion_bytes=1073741824 (1.1 GB)" in msg
    assert "use OneCoinDawidSkene (one accuracy per annotator: 800.0 kB)" in msg
    assert "ClusteredDawidSkene(n_clusters=C) (C x 1000 x 1000 shared confusions: 8.0 MB per cluster)" in msg
    assert isinstance(info.value, MemoryError) and isinstance(info.value, ValueError)  # CLI: one line, exit 1
    small = Annotations([0, 0], [0, 1], [0, 1])
    with pytest.raises(ConfusionBudgetError, match="2 annotators x 2 classes x 2 classes float64 = 64 bytes"):
        DawidSkene(max_confusion_bytes=63).fit(small)
    assert DawidSkene(max_confusion_bytes=None).fit(small).confusions_.shape == (2, 2, 2)
    with pytest.raises(ValueError, match="'max_confusion_bytes' parameter of DawidSkene"):
        DawidSkene(max_confusion_bytes=0).fit(small)


def test_one_coin_at_1000_classes_and_100k_annotators(many: tuple[Annotations, np.ndarray]) -> None:
    ann, truth = many
    oc = OneCoinDawidSkene(n_iter=8).fit(ann)
    mv_acc = float((ann.vote_counts().argmax(axis=1) == truth).mean())
    acc = float((oc.labels_ == truth).mean())
    assert oc.skills_.shape == (M_MANY,) and oc.probas_.shape == (1000, K_MANY)
    assert acc > 0.9 and acc >= mv_acc - 0.02  # as good as the vote, which errors spread over 999 classes favour
    assert np.isfinite(oc.log_likelihood_).all()
    with pytest.raises(ConfusionBudgetError, match="OneCoinDawidSkene confusions_ need 100000 annotators"):
        _ = oc.confusions_


def test_clustered_at_1000_classes_and_100k_annotators(many: tuple[Annotations, np.ndarray]) -> None:
    ann, truth = many
    # 1e6 cells per cluster from 5,000 labels: a pseudo-count keeps EM from overfitting the
    # error cells (near maximum likelihood, smoothing=1e-6, falls to 0.74 accuracy here)
    cl = ClusteredDawidSkene(n_clusters=4, n_iter=5, smoothing=0.01).fit(ann)
    assert cl.cluster_confusions_.shape == (4, K_MANY, K_MANY)
    assert cl.clusters_.shape == (M_MANY,) and set(np.unique(cl.clusters_)) == {0, 1, 2, 3}
    np.testing.assert_allclose(cl.cluster_confusions_.sum(axis=1), 1.0)
    assert float((cl.labels_ == truth).mean()) > 0.92
    assert cl.skills_.shape == (M_MANY,)
    with pytest.raises(ConfusionBudgetError, match="ClusteredDawidSkene confusions_ need 100000 annotators"):
        _ = cl.confusions_
    with pytest.raises(ConfusionBudgetError, match="need 200 clusters x 1000 classes"):
        ClusteredDawidSkene(n_clusters=200, max_confusion_bytes=10**8).fit(ann)


def test_clustered_with_one_annotator_per_cluster_is_dawid_skene() -> None:
    rng = np.random.default_rng(4)
    ann, _ = simulate(400, random_confusions(rng, 8, 3), 3, seed=2)
    ds = DawidSkene(n_iter=15, tol=0).fit(ann)
    cl = ClusteredDawidSkene(clusters=np.arange(8), n_iter=15, tol=0).fit(ann)
    np.testing.assert_allclose(cl.probas_, ds.probas_, atol=1e-12)
    np.testing.assert_allclose(cl.confusions_, ds.confusions_, atol=1e-12)
    np.testing.assert_allclose(cl.log_likelihood_, ds.log_likelihood_, rtol=1e-12)
    # one shared cluster: the pooled counts, columns normalised
    pooled = ClusteredDawidSkene(clusters={a: 0 for a in range(8)}, n_iter=3).fit(ann)
    assert pooled.cluster_confusions_.shape == (1, 3, 3) and (pooled.clusters_ == 0).all()
    with pytest.raises(ValueError, match="'clusters' parameter must hold cluster indices"):
        ClusteredDawidSkene(clusters=[0, 1, -1, 0, 0, 0, 0, 0]).fit(ann)
    with pytest.raises(ValueError, match=r"'clusters' parameter must have shape \(8,\)"):
        ClusteredDawidSkene(clusters=[0, 1]).fit(ann)


def test_one_coin_log_lik_equals_dense_and_never_nan() -> None:
    rng = np.random.default_rng(0)
    ann, _ = simulate(50, random_confusions(rng, 6, 4), 3, seed=1)
    p = rng.uniform(0.2, 0.95, 6)
    from crowdlearn.aggregate.base import label_matrix, safe_log, spmm

    dense = spmm(label_matrix(ann), safe_log(one_coin_confusions(p, 4)).reshape(24, 4))
    got = one_coin_log_lik(ann.items, ann.annotators, ann.labels, ann.n_items, 4, p)
    np.testing.assert_allclose(got, dense, atol=1e-12)
    # a perfect annotator (p = 1, smoothing 0): other classes impossible, no -inf + inf = NaN
    tiny = Annotations([0, 0, 1], [0, 1, 1], [2, 2, 0], n_classes=3)
    oc = OneCoinDawidSkene(smoothing=0, n_iter=5).fit(tiny)
    assert not np.isnan(oc.probas_).any() and oc.labels_.tolist() == [2, 0]
    ll = one_coin_log_lik(tiny.items, tiny.annotators, tiny.labels, 2, 3, np.array([1.0, 0.5]))
    assert np.isneginf(ll[0, [0, 1]]).all() and np.isfinite(ll[0, 2]) and np.isfinite(ll[1]).all()


def test_cli_clustered_and_budget_error(tmp_path: Path) -> None:
    import pandas as pd
    from typer.testing import CliRunner

    from crowdlearn.cli import app

    runner = CliRunner()
    small = tmp_path / "small.csv"
    pd.DataFrame({"item": [0, 0, 1, 1, 2], "annotator": ["a", "b", "a", "b", "a"], "label": [0, 0, 1, 1, 1]}).to_csv(
        small, index=False
    )
    res = runner.invoke(app, ["aggregate", str(small), "-m", "clustered-ds", "--confusions", str(tmp_path / "c.json")])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0] == "item,label,confidence"
    # 1,000 classes from 200 annotators: 1.6 GB of confusions, refused in one line
    many = tmp_path / "many.csv"
    n = 1000
    pd.DataFrame({"item": np.arange(n), "annotator": np.arange(n) % 200, "label": np.arange(n)}).to_csv(
        many, index=False
    )
    res = runner.invoke(app, ["aggregate", str(many), "-m", "ds"])
    assert res.exit_code == 1
    assert "DawidSkene confusions need 200 annotators x 1000 classes x 1000 classes float64 = 1.6 GB" in res.output
    assert "Traceback" not in res.output
