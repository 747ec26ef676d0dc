"""TraceReg's term: each label's annotator's trace averaged over the batch's labels, so its pull on
an annotator is weighed against that annotator's own labels whatever the number of annotators."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crowdlearn.estimators import CrowdClassifier  # noqa: E402
from crowdlearn.metrics import accuracy  # noqa: E402
from crowdlearn.nn import functional as CF  # noqa: E402
from crowdlearn.nn.confusion import ConfusionMatrices  # noqa: E402
from crowdlearn.nn.crowdlayer import CrowdLayer  # noqa: E402
from crowdlearn.nn.losses import CrowdLoss, TraceRegularizer  # noqa: E402
from crowdlearn.nn.model import CrowdModel  # noqa: E402
from crowdlearn.simulate import diagonally_dominant_confusions, simulate_crowd  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _head(m: int, sparse: bool, a: np.ndarray) -> ConfusionMatrices:
    """``m`` annotators whose first ``len(a)`` confusions are ``a`` (the others the identity init)."""
    head = ConfusionMatrices(m, a.shape[1], sparse=sparse)
    with torch.no_grad():
        head.logits[: len(a)] = torch.log(torch.as_tensor(a, dtype=torch.float32))
    return head


def test_the_term_is_each_labels_annotator_trace_averaged_over_the_labels() -> None:
    a = np.array([[[0.9, 0.3], [0.1, 0.7]], [[0.6, 0.5], [0.4, 0.5]]])  # traces 1.6 and 1.1
    for sparse in (True, False):
        head = _head(2, sparse, a)
        model = CrowdModel(torch.nn.Identity(), head)
        head.label_log_probs(torch.log(torch.full((4, 2), 0.5)), torch.tensor([0, 0, 1, 0]), torch.tensor([0, 1, 0, 0]))
        term = TraceRegularizer(1.0)(model, torch.zeros(4, 2))
        assert term.dtype == torch.float32
        assert float(term.detach()) == pytest.approx(0.75 * 1.6 + 0.25 * 1.1, abs=1e-6)
    assert float(CF.trace_regularizer(torch.as_tensor(a), torch.tensor([0.75, 0.25]))) == pytest.approx(1.475)
    assert float(CF.trace_regularizer(torch.as_tensor(a))) == pytest.approx(2.7)
    with pytest.raises(ValueError, match=r"weights must have shape \(2,\), got \(3,\)"):
        CF.trace_regularizer(torch.as_tensor(a), torch.ones(3))


@pytest.mark.parametrize("sparse", [True, False])
def test_the_pull_on_an_annotator_does_not_grow_with_the_number_of_annotators(sparse: bool) -> None:
    """The same batch of annotators 0-2 among 5 or 500: the same loss and the same gradient on them,
    none on the others (a sum over all M gave every annotator the full weight at every M)."""
    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.ones(3), size=(3, 3)).transpose(0, 2, 1)  # (3, K, K) column-stochastic
    log_probs = torch.log_softmax(torch.as_tensor(rng.normal(size=(6, 3)), dtype=torch.float32), dim=1)
    annotators, labels = torch.tensor([0, 1, 2, 0, 0, 1]), torch.tensor([0, 1, 2, 2, 0, 1])
    results = []
    for m in (5, 500):
        head = _head(m, sparse, a)
        model = CrowdModel(torch.nn.Identity(), head)
        parts = CrowdLoss(regularizers=[TraceRegularizer(0.5)])(model, log_probs, torch.arange(6), annotators, labels)
        parts["loss"].backward()
        grad = head.logits.grad.to_dense() if head.logits.grad.is_sparse else head.logits.grad
        assert grad.is_sparse is False and float(grad[3:].abs().sum()) == 0.0
        results.append((float(parts["loss"].detach()), float(parts["trace"].detach()), grad[:3].clone()))
    (loss5, trace5, grad5), (loss500, trace500, grad500) = results
    assert loss5 == pytest.approx(loss500, abs=1e-6) and trace5 == pytest.approx(trace500, abs=1e-6)
    torch.testing.assert_close(grad5, grad500)


def test_a_head_without_batch_confusions_takes_the_mean_of_all_traces() -> None:
    torch.manual_seed(0)
    head = CrowdLayer(4, 3, kind="mw")
    model = CrowdModel(torch.nn.Identity(), head)
    want = torch.diagonal(head.confusions(), dim1=1, dim2=2).sum() / 4
    torch.testing.assert_close(TraceRegularizer(1.0)(model, torch.zeros(2, 3)), want)


def test_tracereg_at_its_defaults_does_not_flip_on_a_sparse_many_annotator_crowd() -> None:
    """The crowd of benchmarks/sparse_effect.py (3,000 items, 300 annotators, 3 labels per item,
    K = 5; about one label per annotator per batch). With the trace summed over all 300
    annotators this fit learned the flipped classes (test accuracy 0.106, mean diagonal 0.029)."""
    k, d, n = 5, 16, 3000
    rng = np.random.default_rng(0)
    conf = diagonally_dominant_confusions(300, k, random_state=rng)
    crowd = simulate_crowd(conf, n_items=n, per_item=3, random_state=rng)
    X = (rng.normal(size=(n, d)) + 2.0 * np.eye(k, d)[crowd.true_labels]).astype(np.float32)
    y_test = rng.integers(0, k, 2000)
    X_test = (rng.normal(size=(2000, d)) + 2.0 * np.eye(k, d)[y_test]).astype(np.float32)
    # the default recipe (lr 1e-2, DS init, mixup 0.2, lam 0.01), 20 epochs, every label trained on
    clf = CrowdClassifier(method="tracereg", epochs=20, validation="none", device="cpu", random_state=0, strict=True)
    clf.fit(X, crowd.annotations)
    assert clf.flipped_ is False and clf.collapsed_ is False
    assert accuracy(y_test, clf.predict(X_test)) > 0.7
    assert np.diagonal(clf.confusions_, axis1=1, axis2=2).mean() > 0.5
