"""The report's quality-control section (crowdlearn.quality in crowdlearn.report)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from crowdlearn import Annotations, DawidSkene
from crowdlearn import quality as q
from crowdlearn.report import render_html
from test_report import EVIL, check


@pytest.fixture(scope="module")
def crowd() -> tuple[Annotations, np.ndarray]:
    rng = np.random.default_rng(3)
    n, k = 50, 3
    y = rng.integers(0, k, n)
    X = (rng.normal(size=(n, 4)) + 2.5 * np.eye(k, 4)[y]).astype(np.float32)
    rows = [
        (f"i{i}" if i else EVIL, a, int(y[i]) if rng.random() < 0.8 else int(rng.integers(0, k)))
        for i in range(n)
        for a in ("w0", "w1", "w2", "w3")
        if rng.random() < 0.8
    ]
    it, an, lb = zip(*rows)
    return Annotations.from_ids(it, an, lb), X


def test_agreement_always_scores_with_an_aggregator(crowd: tuple[Annotations, np.ndarray]) -> None:
    ann, _ = crowd
    page = render_html(ann)
    check(page)
    assert '<section id="quality">' in page and "Fleiss&#x27; kappa" in page
    assert "need an aggregator or a model" in page and "relabel-table" not in page
    assert f"{q.fleiss_kappa(ann):.3f}" in page
    ds = DawidSkene().fit(ann)
    page = render_html(ann, aggregator=ds, top=4)
    parsed = check(page)
    cells = parsed.cells["relabel-table"]
    ranked = q.relabel_ranking(q.item_scores(ann, ds.probas_), n=4)
    assert len(cells) == 4 * 6 and cells[1] == str(ranked.index[0])
    assert len(parsed.cells["weak-annotators"]) == 4 * 6
    assert EVIL not in page  # item 0 is named like a script tag: escaped wherever it is shown
    assert '<section id="quality">' not in render_html(ann, aggregator=ds, quality=False)


@pytest.mark.usefixtures("one_torch_thread")
def test_model_with_features_adds_crowdlab_quality(crowd: tuple[Annotations, np.ndarray]) -> None:
    from crowdlearn import CrowdClassifier

    ann, X = crowd
    model: Any = CrowdClassifier(epochs=2, validation="none", random_state=0).fit(X, ann)
    page = render_html(ann, model=model, X=X, top=3)
    parsed = check(page)
    assert "CROWDLAB" in page
    assert len(parsed.cells["relabel-table"]) == 3 * 7  # rank, item, 4 scores, quality
    assert len(parsed.cells["weak-annotators"]) == 3 * 7
