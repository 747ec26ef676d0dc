"""Post-fit checks (crowdlearn.sanity): collapse and latent-class flip, in fit, the CLI and the report."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crowdlearn import Annotations
from crowdlearn.cli import UNTRUSTED_MODEL_EXIT, app
from crowdlearn.estimators import (
    CollapsedModelWarning,
    CrowdClassifier,
    FlippedClassesWarning,
    UntrustedModelError,
    UntrustedModelWarning,
)
from crowdlearn.sanity import ModelCheck, check_model, majority_votes
from crowdlearn.simulate import diagonally_dominant_confusions, simulate_crowd

pytestmark = pytest.mark.usefixtures("one_torch_thread")

runner = CliRunner()


# ---------------------------------------------------------------------------- data
def _binary(n: int = 300, m: int = 60, *, nonneg: bool = False) -> tuple[np.ndarray, Annotations, np.ndarray]:
    """A binary crowd (annotator accuracies in [0.65, 0.95], 3 labels per item) with features."""
    rng = np.random.default_rng(0)
    acc = rng.uniform(0.65, 0.95, m)
    crowd = simulate_crowd(np.stack([[[a, 1 - a], [1 - a, a]] for a in acc]), n_items=n, per_item=3, random_state=1)
    y = crowd.true_labels
    x = rng.normal(size=(n, 30)) + np.outer(2 * y - 1, rng.normal(size=30)) * 0.5
    if nonneg:  # rows of non-negative weights summing to 1, like normalised term frequencies
        x = np.abs(x) / np.abs(x).sum(axis=1, keepdims=True)
    return x.astype(np.float32), crowd.annotations, y


def _three(n: int = 300) -> tuple[np.ndarray, Annotations, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    conf = diagonally_dominant_confusions(8, 3, random_state=rng)
    crowd = simulate_crowd(conf, n_items=n, per_item=3, random_state=rng)
    y = crowd.true_labels
    x = (rng.normal(size=(n, 6)) + 2.0 * np.eye(3, 6)[y]).astype(np.float32)
    return x, crowd.annotations, y, conf


#: TraceReg's weight in the deliberately broken runs: 100 times the default (0.01), since the
#: trace term is averaged over the labels (at lam 0.3 this crowd still trains: 99% right)
BROKEN_LAM = 1.0


def _flip_fit(**params: object) -> CrowdClassifier:
    """TraceReg whose confusions move fast under an over-weighted trace: the penalty drives every
    annotator below the diagonal before the classifier learns, which then learns the flipped classes."""
    x, ann, _ = _binary()
    return CrowdClassifier(method="tracereg", lam=BROKEN_LAM, confusion_lr=0.1, epochs=30, device="cpu", **params).fit(
        x, ann
    )  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- check_model
def test_majority_votes_split_ties_evenly() -> None:
    ann = Annotations([0, 0, 1, 1, 2, 2, 2], [0, 1, 0, 1, 0, 1, 2], [0, 0, 0, 1, 2, 1, 0], n_items=4, n_classes=3)
    np.testing.assert_allclose(majority_votes(ann), [[1, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3], [0, 0, 0]])


def test_check_model_exact_statistics_of_a_correct_a_permuted_and_a_collapsed_model() -> None:
    # 4 items, classes 0 0 1 1 by every vote; two annotators who label all of them correctly
    ann = Annotations(np.repeat(np.arange(4), 2), np.tile([0, 1], 4), np.repeat([0, 0, 1, 1], 2), n_classes=2)
    right = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
    eye = np.stack([np.eye(2), np.eye(2)])
    ok = check_model(ann, right, eye)
    assert (ok.agreement, ok.chance_agreement, ok.top_share, ok.crowd_top_share) == (1.0, 0.5, 0.5, 0.5)
    assert (ok.mean_diagonal, ok.below_diagonal_share, ok.collapsed, ok.flipped) == (1.0, 0.0, False, False)
    assert str(ok) == "no collapse, no flip" and ok.messages() == []

    flipped = check_model(ann, right[:, ::-1], eye[:, ::-1])  # classifier and confusions permuted together
    assert (flipped.agreement, flipped.chance_agreement, flipped.below_diagonal_share) == (0.0, 0.5, 1.0)
    assert flipped.mean_diagonal == 0.0 and flipped.flip_signs == ["agreement", "confusions"]
    assert flipped.flipped and not flipped.collapsed and flipped.untrusted

    one = check_model(ann, np.tile([0.6, 0.4], (4, 1)), eye)
    assert (one.top_class, one.top_share, one.crowd_top_share) == (0, 1.0, 0.5)
    assert one.agreement == one.chance_agreement == 0.5  # one class everywhere agrees exactly as chance
    assert one.collapsed and not one.flipped and one.collapse_signs == ["one class", "chance"]
    assert one.kappa == 0.0 and flipped.kappa == -1.0 and ok.kappa == 1.0
    assert one.messages() == [
        "the model predicts class 0 for every training item while the crowd's majority vote gives it to 50.0% "
        "of them (a collapsed model; try a smaller lr or lam)"
    ]
    assert "--lr" in one.collapse_message(flags=True)


def test_one_class_is_no_collapse_when_the_crowd_says_so_too() -> None:
    labels = np.r_[np.zeros(19, dtype=int), 1]  # 19 of 20 items voted class 0: 95% > crowd_share_max
    ann = Annotations(np.arange(20), np.zeros(20, dtype=int), labels, n_classes=2)
    assert not check_model(ann, np.tile([0.9, 0.1], (20, 1))).collapsed
    assert check_model(ann, np.tile([0.9, 0.1], (20, 1)), crowd_share_max=0.96).collapsed


def test_near_collapse_counts_and_items_without_labels_are_not_checked() -> None:
    n = 100
    ann = Annotations(np.arange(n), np.zeros(n, dtype=int), np.arange(n) % 2, n_items=n + 50, n_classes=2)
    proba = np.tile([0.9, 0.1], (n + 50, 1))
    proba[0] = [0.1, 0.9]  # 99 of the 100 labelled items as class 0; item 0's vote is class 0
    proba[n:] = [0.1, 0.9]  # the unlabelled items are not counted
    res = check_model(ann, proba)
    assert res.n_items == n and res.top_share == 0.99 and res.collapsed
    assert res.agreement == 0.49 and res.chance_agreement == 0.5 and not res.flipped  # kappa -0.02: chance too
    assert res.collapse_signs == ["one class", "chance"]
    assert "for 99.0% of the training items" in res.collapse_message()


def test_check_model_rejects_bad_shapes_and_thresholds() -> None:
    ann = Annotations([0, 1], [0, 1], [0, 1], n_classes=2)
    with pytest.raises(ValueError, match=r"proba must have shape \(2, 2\) to match the annotations, got \(2, 3\)"):
        check_model(ann, np.ones((2, 3)) / 3)
    with pytest.raises(ValueError, match=r"confusions must have shape \(2, 2, 2\)"):
        check_model(ann, np.eye(2), np.ones((1, 2, 2)))
    with pytest.raises(ValueError, match=r"collapse_share must be in \[0, 1\], got 1.5"):
        check_model(ann, np.eye(2), collapse_share=1.5)


def test_model_check_dict_round_trip() -> None:
    ann = Annotations([0, 1], [0, 1], [0, 1], n_classes=2)
    res = check_model(ann, np.eye(2), np.stack([np.eye(2)] * 2))
    assert ModelCheck.from_dict(res.to_dict()) == res
    with pytest.raises(ValueError, match="unknown field 'x'"):
        ModelCheck.from_dict({**res.to_dict(), "x": 1})


# ---------------------------------------------------------------------------- in fit
def test_flipped_classes_warn_and_strict_raises() -> None:
    x, _, y = _binary()
    with pytest.warns(FlippedClassesWarning, match="the model's classes look permuted against the crowd's") as rec:
        clf = _flip_fit()
    assert np.mean(clf.predict(x) == y) < 0.2  # the flip is real: the truth disagrees too
    assert clf.flipped_ is True and clf.collapsed_ is False
    assert clf.findings_ is not None and clf.findings_.flip_signs == ["agreement", "confusions"]
    assert clf.findings_.mean_diagonal is not None and clf.findings_.mean_diagonal < 0.1
    assert "try init='ds', a smaller confusion_lr or lam, or another method" in str(rec[0].message)
    with pytest.raises(UntrustedModelError, match="flipped classes") as info:
        _flip_fit(strict=True)
    assert info.value.findings.flipped


def test_flip_on_tfidf_text_features() -> None:
    pytest.importorskip("sklearn")
    from sklearn.feature_extraction.text import TfidfVectorizer

    _, ann, y = _binary()
    rng = np.random.default_rng(1)
    docs = [
        " ".join(f"w{w}" for w in np.r_[rng.integers(50 * c, 50 * c + 50, 12), rng.integers(100, 1000, 28)]) for c in y
    ]
    tfidf = TfidfVectorizer().fit_transform(docs).toarray().astype(np.float32)
    with pytest.warns(FlippedClassesWarning):
        clf = CrowdClassifier(method="tracereg", lam=BROKEN_LAM, confusion_lr=0.1, epochs=30, device="cpu").fit(
            tfidf, ann
        )
    assert clf.flipped_ and np.mean(clf.predict(tfidf) == y) < 0.2


#: the base training values (the issue's lr=1e6 runs predate the methods' cosine + DS recipes)
BASE = {"schedule": "constant", "init": "identity", "weight_decay": 1e-4, "batch_size": 128, "mixup": 0.0}


def test_lr_1e6_collapse_warns_and_strict_raises() -> None:
    x, ann, _ = _binary(nonneg=True)
    params = dict(method="geocrowdnet-f", lr=1e6, confusion_lr=1e-3, epochs=5, device="cpu", **BASE)
    with pytest.warns(CollapsedModelWarning, match="for every training item while the crowd's majority vote"):
        clf = CrowdClassifier(**params).fit(x, ann)  # type: ignore[arg-type]
    assert clf.collapsed_ is True and len(np.unique(clf.predict(x))) == 1
    with pytest.raises(UntrustedModelError, match="a collapsed model"):
        CrowdClassifier(strict=True, **params).fit(x, ann)  # type: ignore[arg-type]


def test_a_partial_collapse_at_chance_is_a_collapse() -> None:
    x, ann, _ = _binary(nonneg=True)  # lr=1e6 leaves 91% of the items in one class, the rest noise
    with pytest.warns(CollapsedModelWarning, match=r"no better than a guess .* \(a collapsed model, at chance; try a"):
        clf = CrowdClassifier(method="ccem", lr=1e6, confusion_lr=1e-3, epochs=5, device="cpu", **BASE).fit(x, ann)
    assert clf.findings_ is not None and clf.findings_.collapse_signs == ["chance"]
    assert clf.findings_.top_share < 0.98 and abs(clf.findings_.kappa) < 0.1


def test_permuted_initial_confusions_are_detected() -> None:
    x, ann, y, conf = _three()
    perm = np.roll(np.arange(3), 1)  # start CCEM at the truth with its classes relabelled
    with pytest.warns(FlippedClassesWarning):
        clf = CrowdClassifier(method="ccem", init=conf[:, :, perm], epochs=20, validation="none", device="cpu").fit(
            x, ann
        )
    assert np.mean(clf.predict(x) == y) < 0.2
    assert clf.findings_ is not None and "confusions" in clf.findings_.flip_signs


@pytest.mark.parametrize("method", ["ccem", "geocrowdnet-f", "geocrowdnet-w", "tracereg", "ce", "crowdlayer-mw"])
def test_normal_fits_do_not_warn(method: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrustedModelWarning)
        x, ann, _ = _binary()
        binary = CrowdClassifier(method=method, epochs=10, device="cpu", strict=True).fit(x, ann)
        x3, ann3, _, _ = _three()
        three = CrowdClassifier(method=method, epochs=10, device="cpu", strict=True).fit(x3, ann3)
    for clf in (binary, three):
        assert clf.collapsed_ is False and clf.flipped_ is False
        assert clf.findings_ is not None and clf.findings_.agreement > 1.5 * clf.findings_.chance_agreement


def test_strict_must_be_a_bool() -> None:
    x, ann, _ = _binary()
    with pytest.raises(ValueError, match="The 'strict' parameter of CrowdClassifier must be a bool, got 1"):
        CrowdClassifier(strict=1).fit(x, ann)  # type: ignore[arg-type]


def test_findings_survive_save_and_load_and_older_files_load(tmp_path: Path) -> None:
    with pytest.warns(FlippedClassesWarning):
        clf = _flip_fit()
    clf.save(tmp_path / "m.safetensors")
    back = CrowdClassifier.load(tmp_path / "m.safetensors")
    assert back.findings_ == clf.findings_ and back.flipped_ is True and back.collapsed_ is False
    clf.findings_ = None  # what a file written before the checks holds: no "findings" key
    clf.save(tmp_path / "old.safetensors")
    old = CrowdClassifier.load(tmp_path / "old.safetensors")
    assert old.findings_ is None and not hasattr(old, "flipped_")


def test_report_shows_the_findings() -> None:
    from crowdlearn.report import render_html

    x, ann, _ = _binary()
    with pytest.warns(FlippedClassesWarning):
        clf = _flip_fit()
    page = render_html(ann, model=clf)
    assert '<section id="checks">' in page and '<p class="untrusted">the model&#x27;s classes look permuted' in page
    good = CrowdClassifier(method="ccem", epochs=5, device="cpu").fit(x, ann)
    assert "No collapse and no flipped classes found." in render_html(ann, model=good)


# ---------------------------------------------------------------------------- CLI
def _files(tmp_path: Path, x: np.ndarray, ann: Annotations) -> list[str]:
    labels, feats = tmp_path / "labels.csv", tmp_path / "x.npy"
    pd.DataFrame({"item": ann.items, "annotator": ann.annotators, "label": ann.labels}).to_csv(labels, index=False)
    np.save(feats, x)
    return ["train", str(labels), "-x", str(feats), "--out", str(tmp_path / "m.safetensors")]


def test_cli_flipped_model_exits_3_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    x, ann, _ = _binary()
    args = [*_files(tmp_path, x, ann), "--method", "tracereg", "--lam", str(BROKEN_LAM), "--confusion-lr", "0.1"]
    args += ["--epochs", "30"]
    res = runner.invoke(app, [*args, "--predictions", str(tmp_path / "p.csv"), "--quiet"])
    assert res.exit_code == UNTRUSTED_MODEL_EXIT == 3, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.output
    assert re.match(r"error: untrusted model: the model's classes look permuted against the crowd's: ", lines[0])
    assert "try --init ds, a smaller --confusion-lr or --lam, or another --method" in lines[0]
    assert lines[0].endswith("Nothing was written; --allow-untrusted writes it anyway")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv", "x.npy"]

    res = runner.invoke(app, [*args, "--allow-untrusted", "--quiet"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("warning: the model's classes look permuted") and "Traceback" not in res.output
    assert CrowdClassifier.load(tmp_path / "m.safetensors").flipped_ is True


@pytest.mark.parametrize("extra", [["--validation", "none"], ["--confusion-lr", "1e-3"]])
def test_cli_lr_1e6_collapse_exits_3(tmp_path: Path, extra: list[str]) -> None:
    x, ann, _ = _binary(nonneg=True)
    args = [*_files(tmp_path, x, ann), "--method", "geocrowdnet-f", "--lr", "1e6", "--epochs", "5", *extra]
    res = runner.invoke(app, [*args, "--quiet"])
    assert res.exit_code == 3, res.output
    assert res.output.count("\n") == 1 and "Traceback" not in res.output
    assert res.output.startswith("error: untrusted model: ")
    assert "(a collapsed model" in res.output or "(flipped classes; " in res.output
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.slow
def test_music_a_normal_fit_passes_and_permuted_confusions_are_caught(data_dir: Path) -> None:
    from crowdlearn.aggregate import DawidSkene
    from crowdlearn.datasets import load_music

    music = load_music(data_dir)
    x, ann = np.asarray(music.features["train"], dtype=np.float32), music.annotations
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrustedModelWarning)
        good = CrowdClassifier(method="ccem", epochs=20, device="cpu").fit(x, ann)
    assert good.findings_ is not None and good.findings_.kappa > 0.5
    ds = np.asarray(DawidSkene(smoothing=0.01).fit(ann).confusions_)
    perm = np.roll(np.arange(ann.n_classes), 1)  # Dawid-Skene's confusions with the classes relabelled
    with pytest.warns(FlippedClassesWarning):
        bad = CrowdClassifier(method="ccem", init=ds[:, :, perm], epochs=20, device="cpu").fit(x, ann)
    assert np.mean(bad.predict(x) == ann.classes[music.truth]) < 0.2
