"""Diagnostics on simulated designs where the right answer is known."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from crowdlearn import Annotations
from crowdlearn.cli import app
from crowdlearn.diagnose import diagnose, scatter_proxy
from crowdlearn.simulate import class_specialist_confusions, simulate_crowd, simulate_design


def test_specialist_for_every_class_means_ccem_suffices() -> None:
    A = class_specialist_confusions(8, 4, random_state=0)
    crowd = simulate_crowd(A, n_items=400, p=0.2, random_state=0)
    report = diagnose(crowd.annotations, confusions=A, posteriors=crowd.true_posteriors, n_directions=16)
    assert "CCEM suffices" in report.recommendation
    assert report.missing_specialists == [] and report.missing_anchors == []
    # annotators k and k + 4 are the exact specialists of class k
    assert [int(c.best_specialist or -1) % 4 for c in report.classes] == [0, 1, 2, 3]
    assert all(c.specialist_closeness == 1.0 and c.anchor_closeness == 1.0 for c in report.classes)
    assert report.w_scatter.min_radius == pytest.approx(1.0)
    assert report.n_components == 1
    json.dumps(report.to_dict())  # serialisable
    assert "recommendation: every class has a near-specialist" in str(report)


def test_missing_specialist_is_named_and_geocrowdnet_advised() -> None:
    A = class_specialist_confusions(8, 4, specialist_classes=[0, 1, 3], random_state=0)
    crowd = simulate_crowd(A, n_items=400, p=0.2, random_state=0)
    report = diagnose(crowd.annotations, confusions=A, n_directions=16)
    assert report.missing_specialists == [2]
    assert "no near-specialist for class 2 " in report.recommendation
    assert "GeoCrowdNet(W) or (F) is advised" in report.recommendation
    assert "CCEM suffices" not in report.recommendation


@pytest.mark.parametrize(("design", "favoured"), [("f-ssc", "GeoCrowdNet(F) first"), ("w-ssc", "GeoCrowdNet(W) first")])
def test_ssc_designs_favour_the_matching_regulariser(design: str, favoured: str) -> None:
    crowd = simulate_design(design, n_items=300, n_annotators=8, n_classes=4, p=0.2, random_state=1)
    report = diagnose(crowd.annotations, confusions=crowd.confusions, posteriors=crowd.true_posteriors, n_directions=16)
    assert report.missing_specialists == [0, 1, 2, 3]
    assert favoured in report.recommendation


def test_scatter_proxy_hand_cases() -> None:
    # the vertices cover the whole simplex; the centre alone covers nothing beyond itself
    full = scatter_proxy(np.eye(3), n_directions=8)
    assert full.min_radius == pytest.approx(1.0) and full.coverage == 1.0
    centre = scatter_proxy(np.full((2, 3), 1 / 3), n_directions=8)
    assert centre.min_radius == pytest.approx(0.0, abs=1e-9)
    # edge midpoints only (every item 50/50 between two classes): the medial triangle, whose
    # inscribed circle has half the radius of the cone's cross-section
    mids = scatter_proxy(np.array([[0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]), n_directions=32)
    assert 0.5 - 1e-6 <= mids.min_radius < 0.6
    # items spread along the edges (pairs ambiguous with varied weights) cover it
    t = np.linspace(0.05, 0.95, 19)[:, None]
    z = np.zeros_like(t)
    edges = np.vstack([np.hstack([t, 1 - t, z]), np.hstack([t, z, 1 - t]), np.hstack([z, t, 1 - t])])
    assert scatter_proxy(edges, n_directions=32).min_radius == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="non-negative"):
        scatter_proxy(-np.eye(3))


def test_graph_components_and_few_labels() -> None:
    # items 0,1 with annotators 0,1 ; item 2 with annotator 2 only -> 2 components
    ann = Annotations([0, 0, 1, 1, 2], [0, 1, 0, 1, 2], [0, 1, 1, 0, 1], n_items=4, n_classes=2)
    A = np.tile(np.eye(2), (3, 1, 1))
    report = diagnose(ann, confusions=A, min_labels=2, n_directions=4)
    assert report.n_components == 2
    assert report.largest_component_share == pytest.approx(0.8)
    assert report.few_label_annotators == {"2": 1}
    assert report.n_items_without_labels == 1
    # every annotator said each class at most once: no specialist candidate at the default 5
    assert all(c.best_specialist is None for c in report.classes)
    assert report.missing_specialists == [0, 1]
    assert "2 components" in report.recommendation


def test_diagnose_errors() -> None:
    ann = Annotations([0, 1], [0, 1], [0, 1])
    with pytest.raises(ValueError, match=r"confusions must have shape \(2, 2, 2\)"):
        diagnose(ann, confusions=np.ones((1, 2, 2)))
    with pytest.raises(ValueError, match=r"posteriors must have shape \(2, 2\)"):
        diagnose(ann, confusions=np.tile(np.eye(2), (2, 1, 1)), posteriors=np.ones((3, 2)))
    with pytest.raises(ValueError, match="min_class_labels must be >= 0"):
        diagnose(ann, confusions=np.tile(np.eye(2), (2, 1, 1)), min_class_labels=-1)
    with pytest.raises(ValueError, match="specialist_threshold must be in"):
        diagnose(ann, confusions=np.tile(np.eye(2), (2, 1, 1)), specialist_threshold=0)


def test_diagnose_with_dawid_skene_estimate() -> None:
    pytest.importorskip("crowdlearn.aggregate")
    A = class_specialist_confusions(6, 3, random_state=2)
    crowd = simulate_crowd(A, n_items=600, p=0.5, random_state=2)
    report = diagnose(crowd.annotations, n_directions=8)
    assert report.confusions_source == "dawid-skene"
    # annotators k and k + 3 are the exact specialists of class k
    assert [int(c.best_specialist or -1) % 3 for c in report.classes] == [0, 1, 2]
    assert all(c.specialist_closeness > 0.9 for c in report.classes)
    assert "CCEM suffices" in report.recommendation


def test_cli_diagnose(tmp_path: object) -> None:
    pytest.importorskip("crowdlearn.aggregate")
    from pathlib import Path

    crowd = simulate_crowd(class_specialist_confusions(6, 3, random_state=3), n_items=300, p=0.5, random_state=3)
    path = Path(str(tmp_path)) / "labels.csv"
    crowd.annotations.to_frame().to_csv(path, index=False)
    result = CliRunner().invoke(app, ["diagnose", str(path), "--json", "--directions", "8"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["confusions_source"] == "dawid-skene"
    result = CliRunner().invoke(app, ["diagnose", str(path)])
    assert "recommendation:" in result.output
