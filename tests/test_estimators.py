"""crowdlearn.estimators.CrowdClassifier: sklearn surface, errors, persistence, recovery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from crowdlearn import Annotations
from crowdlearn.estimators import CrowdClassifier, NotFittedError
from crowdlearn.metrics import confusion_estimation_error

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def control_design(seed: int = 0, n: int = 1000, k: int = 3, m: int = 5, d: int = 6, p: float = 0.5):
    """The control design (docs/model.md): a near-specialist annotator (I + 0.05 U, column-normalised)
    and anchors.

    Gaussian classes with well-separated means give items with f(x) close to e_k (anchors); the
    other annotators are diagonally dominant (0.5 I + 0.5 random columns). Each item gets a label
    from each annotator with probability p, and from at least one.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = 3.0 * np.eye(k, d)[y] + rng.normal(size=(n, d))
    conf = np.empty((m, k, k))
    conf[0] = np.eye(k) + 0.05 * rng.random((k, k))
    for j in range(1, m):
        conf[j] = 0.5 * np.eye(k) + 0.5 * rng.dirichlet(np.ones(k), size=k).T
    conf /= conf.sum(axis=1, keepdims=True)
    items, anns = [], []
    for i in range(n):
        chosen = np.flatnonzero(rng.random(m) < p)
        if chosen.size == 0:
            chosen = rng.integers(0, m, 1)
        items += [i] * len(chosen)
        anns += chosen.tolist()
    it, an = np.asarray(items), np.asarray(anns)
    u = rng.random(len(it))
    cdf = np.cumsum(conf[an, :, y[it]], axis=1)
    lab = (u[:, None] > cdf).sum(axis=1)
    return x, y, Annotations(it, an, lab, n_items=n, n_annotators=m, n_classes=k), conf


@pytest.fixture(scope="module")
def small():
    x, y, ann, conf = control_design(seed=1, n=200, k=3, m=4)
    return x, y, ann, conf


@pytest.mark.parametrize("method", ["ccem", "geocrowdnet-f", "geocrowdnet-w"])
def test_control_design_recovers_confusions(method: str) -> None:
    x, y, ann, conf = control_design()
    clf = CrowdClassifier(method=method, epochs=30, lr=1e-2, lam=0.01, validation="none").fit(x, ann)
    assert confusion_estimation_error(clf.confusions_, conf) < 0.15
    assert clf.score(x, y) > 0.9


def test_fit_predict_surface(small) -> None:
    x, y, ann, _ = small
    clf = CrowdClassifier(method="tracereg", epochs=3, lr=1e-2, batch_size=64)
    assert clf.fit(x, ann) is clf
    proba = clf.predict_proba(x)
    assert proba.shape == (200, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert set(clf.predict(x).tolist()) <= {0, 1, 2}
    assert clf.confusions_.shape == (4, 3, 3)
    np.testing.assert_allclose(clf.confusions_.sum(axis=1), 1.0, rtol=1e-5)
    assert len(clf.history_) == 3 and clf.best_epoch_ is not None  # holdout selection by default
    assert "valid_loss" in clf.history_[0]
    rep = clf.annotator_report()
    assert isinstance(rep, pd.DataFrame)
    assert list(rep.columns) == ["n_labels", "accuracy", "spammer_score"]
    assert rep["n_labels"].tolist() == ann.annotator_counts.tolist()
    assert ((rep["accuracy"] > 0) & (rep["accuracy"] <= 1)).all()
    clf2 = CrowdClassifier(method="ccem", epochs=2, batch_size=64).fit(
        x[:150], ann.subset_items(np.arange(150)), x[150:], y[150:]
    )
    assert clf2.history_[:, "valid_acc_best"][0] is True


def test_sklearn_clone_and_params() -> None:
    from sklearn.base import clone

    backbone = torch.nn.Linear(6, 3)
    clf = CrowdClassifier(method="ccem", lam=0.1, backbone=backbone, init=np.full((2, 3, 3), 1 / 3))
    c2 = clone(clf)
    assert c2.get_params()["lam"] == 0.1 and c2.method == "ccem"
    assert c2.backbone is not backbone and isinstance(c2.backbone, torch.nn.Linear)
    assert clf.set_params(lam=0.5) is clf and clf.lam == 0.5
    with pytest.raises(ValueError, match="Invalid parameter 'lamda' for CrowdClassifier"):
        clf.set_params(lamda=1)
    assert repr(CrowdClassifier(lam=0.5)) == "CrowdClassifier(lam=0.5)"
    with pytest.raises(TypeError):
        CrowdClassifier("ccem")  # type: ignore[misc]


def test_parameter_and_input_errors(small) -> None:
    x, _y, ann, _ = small
    with pytest.raises(ValueError, match=r"The 'method' parameter of CrowdClassifier must be one of .*, got 'em'"):
        CrowdClassifier(method="em").fit(x, ann)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="The 'lam' parameter of CrowdClassifier must be a float >= 0, got -1"):
        CrowdClassifier(lam=-1).fit(x, ann)
    with pytest.raises(ValueError, match="X has 199 rows but the annotations have 200 items"):
        CrowdClassifier(epochs=1).fit(x[:-1], ann)
    with pytest.raises(ValueError, match="pass both X_val and y_val"):
        CrowdClassifier(epochs=1).fit(x, ann, X_val=x)
    with pytest.raises(ValueError, match=r"y_val\[0\] = 7 is not one of the classes"):
        CrowdClassifier(epochs=1).fit(x, ann, x[:3], np.array([7, 0, 1]))
    with pytest.raises(ValueError, match=r"backbone outputs shape \(2, 2\).* 3 classes \(labels 0..2\)"):
        CrowdClassifier(epochs=1, backbone=torch.nn.Linear(6, 2)).fit(x, ann)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        CrowdClassifier().predict(x)
    clf = CrowdClassifier(epochs=1, validation="none").fit(x, ann)
    with pytest.raises(ValueError, match="X has 5 features, but CrowdClassifier is expecting 6 features as input"):
        clf.predict(x[:, :5])
    with pytest.raises(ValueError, match="needs a 2-d feature array"):
        CrowdClassifier(epochs=1).fit(np.zeros((200, 2, 3)), ann)


def test_initializations_are_used(small) -> None:
    x, _, ann, _ = small
    ident = CrowdClassifier(
        method="ccem", epochs=1, confusion_lr=1e-12, validation="none", init="identity", init_scale=2.0
    ).fit(x, ann)
    np.testing.assert_allclose(ident.confusions_[0].diagonal(), np.e**2 / (np.e**2 + 2), rtol=1e-6)
    uni = CrowdClassifier(method="ccem", epochs=1, confusion_lr=1e-12, validation="none", init="uniform").fit(x, ann)
    np.testing.assert_allclose(uni.confusions_, 1 / 3, rtol=1e-6)
    given = np.tile(np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]), (4, 1, 1))
    arr = CrowdClassifier(method="ccem", epochs=1, confusion_lr=1e-12, validation="none", init=given).fit(x, ann)
    np.testing.assert_allclose(arr.confusions_, 0.99 * given + 0.01 / 3, rtol=1e-5)
    ce = CrowdClassifier(method="ce", epochs=1, validation="none").fit(x, ann)
    np.testing.assert_array_equal(ce.confusions_, np.tile(np.eye(3), (4, 1, 1)))


def test_uniform_initialization_is_worse_than_identity() -> None:
    # identity logits break the symmetry between f and A; zero logits start at a saddle where
    # CCEM can settle on a permuted / collapsed solution (the reason the paper uses identity)
    x, _y, ann, conf = control_design(seed=2, n=600, k=4, m=5, d=6, p=0.3)
    errs = {}
    for init in ("identity", "uniform"):
        clf = CrowdClassifier(method="ccem", epochs=15, lr=1e-2, init=init, validation="none").fit(x, ann)
        errs[init] = confusion_estimation_error(clf.confusions_, conf)
    assert errs["identity"] < errs["uniform"]


def test_save_load_identical_predictions(tmp_path: Path, small) -> None:
    x, _, ann, _ = small
    ann = Annotations.from_ids(
        [f"i{i}" for i in ann.items], [f"w{a}" for a in ann.annotators], [["a", "b", "c"][c] for c in ann.labels]
    )
    clf = CrowdClassifier(method="geocrowdnet-w", epochs=2, batch_size=64).fit(x, ann)
    clf.save(tmp_path / "m.safetensors")
    back = CrowdClassifier.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(back.predict_proba(x), clf.predict_proba(x))
    assert back.predict(x).tolist() == clf.predict(x).tolist()
    assert list(back.classes_) == ["a", "b", "c"] and list(back.annotator_ids_) == list(clf.annotator_ids_)
    np.testing.assert_array_equal(back.confusions_, clf.confusions_)
    assert back.history_ == clf.history_.without_batches()  # the file keeps the per-epoch values
    assert back.get_params()["method"] == "geocrowdnet-w"
    assert clf.score(x, clf.predict(x)) == 1.0

    user = CrowdClassifier(method="ccem", epochs=1, backbone=torch.nn.Linear(6, 3), validation="none").fit(x, ann)
    user.save(tmp_path / "u.safetensors")
    with pytest.raises(ValueError, match=r"fitted with a user backbone \(Linear\); pass backbone="):
        CrowdClassifier.load(tmp_path / "u.safetensors")
    back_u = CrowdClassifier.load(tmp_path / "u.safetensors", backbone=torch.nn.Linear(6, 3))
    np.testing.assert_array_equal(back_u.predict_proba(x), user.predict_proba(x))


def test_load_maps_the_seed_param_of_files_saved_before_random_state(tmp_path: Path, small) -> None:
    """A model file whose params say "seed" (written before the rename) loads with that random_state."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    x, _, ann, _ = small
    clf = CrowdClassifier(method="ccem", epochs=1, validation="none", random_state=7).fit(x, ann)
    clf.save(tmp_path / "new.safetensors")
    with safe_open(str(tmp_path / "new.safetensors"), framework="pt") as fh:
        meta = json.loads(fh.metadata()["crowdlearn"])
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    assert meta["params"]["random_state"] == 7
    params = dict(meta["params"])
    params["seed"] = params.pop("random_state")
    meta["params"] = params
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata={"crowdlearn": json.dumps(meta)})

    old = CrowdClassifier.load(tmp_path / "old.safetensors")
    assert old.get_params()["random_state"] == 7 and "seed" not in old.get_params()
    np.testing.assert_array_equal(old.predict_proba(x), clf.predict_proba(x))


def test_resume_through_estimator(tmp_path: Path, small) -> None:
    x, _, ann, _ = small
    # a constant schedule: the run is extended from 2 to 4 epochs (a cosine schedule over 2 epochs
    # is another run than one over 4)
    kw = {"method": "ccem", "batch_size": 64, "validation": "none", "lr": 1e-2, "schedule": "constant"}
    straight = CrowdClassifier(epochs=4, **kw).fit(x, ann)  # type: ignore[arg-type]
    part = CrowdClassifier(epochs=2, checkpoint_dir=str(tmp_path / "ck"), **kw).fit(x, ann)  # type: ignore[arg-type]
    assert len(part.history_) == 2
    resumed = part.set_params(epochs=4).fit(x, ann, resume=True)
    assert len(resumed.history_) == 4
    np.testing.assert_allclose(resumed.predict_proba(x), straight.predict_proba(x), rtol=1e-5, atol=1e-6)


def test_dataset_input_with_user_backbone(small) -> None:
    x, y, ann, _ = small
    ds = torch.utils.data.TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y))
    clf = CrowdClassifier(method="ccem", epochs=2, backbone=torch.nn.Linear(6, 3), validation="none").fit(ds, ann)
    assert clf.predict_proba(ds).shape == (200, 3)
    with pytest.raises(ValueError, match="needs a 2-d feature array"):
        CrowdClassifier(epochs=1).fit(ds, ann)


def test_verbose_lines_go_to_sink(small) -> None:
    x, _, ann, _ = small
    lines: list[str] = []
    CrowdClassifier(epochs=2, verbose=2, sink=lines.append, validation="none").fit(x, ann)
    assert [ln.split(" ")[:2] for ln in lines] == [["epoch", "1/2"], ["epoch", "2/2"]]
    bar = CrowdClassifier(epochs=2, verbose=1, validation="none").fit(x, ann)  # rich progress bar
    assert len(bar.history_) == 2


def test_lambda_schedules(small) -> None:
    x, _, ann, _ = small
    clf = CrowdClassifier(method="geocrowdnet-f", lam=0.2, epochs=4, lam_schedule="decay", validation="none")
    lams = clf.fit(x, ann).history_[:, "lam"]
    assert lams == pytest.approx([0.2, 0.15, 0.1, 0.05])
    clf.set_params(lam_schedule="warmup", epochs=20)
    assert clf.fit(x, ann).history_[:, "lam"][:3] == pytest.approx([0.1, 0.2, 0.2])
    with pytest.raises(ValueError, match="The 'lam_schedule' parameter"):
        CrowdClassifier(lam_schedule="cyclic").fit(x, ann)


def test_mixup_reaches_the_trainer_and_is_validated(small) -> None:
    x, _y, ann, _ = small
    plain = CrowdClassifier(method="ccem", epochs=3, validation="none").fit(x, ann)
    mixed = CrowdClassifier(method="ccem", epochs=3, validation="none", mixup=0.5).fit(x, ann)
    again = CrowdClassifier(method="ccem", epochs=3, validation="none", mixup=0.5).fit(x, ann)
    assert mixed.history_[:, "train_loss"] != pytest.approx(plain.history_[:, "train_loss"])
    assert mixed.history_[:, "train_loss"] == again.history_[:, "train_loss"]
    np.testing.assert_array_equal(mixed.predict_proba(x), again.predict_proba(x))
    with pytest.raises(ValueError, match="The 'mixup' parameter of CrowdClassifier must be a float >= 0, got -1"):
        CrowdClassifier(mixup=-1).fit(x, ann)


def test_posterior_confusions_hand_case_and_refine() -> None:
    from crowdlearn.estimators import posterior_confusions

    # two items, certain priors; annotator 0 says 1 for item 0 (class 0) and 1 for item 1 (class 1)
    ann = Annotations([0, 1], [0, 0], [1, 1], n_items=2, n_annotators=1, n_classes=2)
    proba = np.array([[1.0, 0.0], [0.0, 1.0]])
    out = posterior_confusions(proba, ann, np.full((1, 2, 2), 0.5), 1)
    np.testing.assert_allclose(out[0], [[0.0, 0.0], [1.0, 1.0]])
    x, _, ann3, conf = control_design(seed=3, n=400)
    base = CrowdClassifier(method="ccem", epochs=5, lr=1e-2, validation="none").fit(x, ann3)
    refined = CrowdClassifier(method="ccem", epochs=5, lr=1e-2, validation="none", refine_confusions=10).fit(x, ann3)
    np.testing.assert_array_equal(refined.predict_proba(x), base.predict_proba(x))
    assert confusion_estimation_error(refined.confusions_, conf) < confusion_estimation_error(base.confusions_, conf)
    np.testing.assert_allclose(refined.confusions_.sum(axis=1), 1.0, rtol=1e-6)


def test_item_posteriors_hand_case() -> None:
    from crowdlearn.estimators import item_posteriors

    # item 0: uniform prior, one label "1" from an annotator right 80% of the time -> (0.2, 0.8);
    # item 1: prior (0.9, 0.1), no label -> the prior
    ann = Annotations([0], [0], [1], n_items=2, n_annotators=1, n_classes=2)
    conf = np.array([[[0.8, 0.2], [0.2, 0.8]]])
    q = item_posteriors(np.array([[0.5, 0.5], [0.9, 0.1]]), ann, conf)
    np.testing.assert_allclose(q, [[0.2, 0.8], [0.9, 0.1]])


@pytest.mark.parametrize("init", ["mv", "ds"])
def test_initialization_from_aggregators(small, init: str) -> None:
    from crowdlearn.aggregate import DawidSkene, MajorityVote

    x, _, ann, _ = small
    clf = CrowdClassifier(method="ccem", epochs=1, confusion_lr=1e-12, init=init, validation="none").fit(x, ann)
    agg = MajorityVote() if init == "mv" else DawidSkene(smoothing=0.01, shrinkage="pooled")
    expected = 0.99 * agg.fit(ann).confusions_ + 0.01 / 3
    np.testing.assert_allclose(clf.confusions_, expected, rtol=1e-5, atol=1e-7)


def _lam_doc() -> str:
    doc = CrowdClassifier.__doc__ or ""
    return " ".join(doc[doc.index("    lam : float") : doc.index("    epochs : int")].split())


def test_lam_doc_says_which_methods_use_it_and_which_ignore_it() -> None:
    """The ``lam`` docstring lists every method on the side the criterion puts it (CrowdLayer, ce, ccem ignore it)."""
    from crowdlearn.estimators import METHODS

    used_part, _, ignored_part = _lam_doc().partition("ignored by")
    assert ignored_part, "the lam docstring must say which methods ignore it"
    for method in METHODS:
        uses = getattr(CrowdClassifier(method=method, lam=0.5)._make_criterion(), "lam", None) == 0.5  # type: ignore[arg-type]
        assert (f'"{method}"' in used_part) == uses, method
        assert (f'"{method}"' in ignored_part) == (not uses), method
