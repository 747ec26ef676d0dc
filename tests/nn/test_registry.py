"""The method registry: specs, lookup, parameters, entry points, and a toy method from outside the package."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from torch import Tensor, nn  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from crowdlearn import Annotations  # noqa: E402
from crowdlearn.cli import app  # noqa: E402
from crowdlearn.estimators import METHODS, CrowdClassifier  # noqa: E402
from crowdlearn.nn import (  # noqa: E402
    CROWDLAYER_KINDS,
    CrowdModel,
    HeadContext,
    MethodParam,
    MethodSpec,
    Regularizer,
    available_methods,
    get_method,
    register_method,
    unregister_method,
)
from crowdlearn.nn import registry as reg  # noqa: E402
from crowdlearn.nn.functional import DEFAULT_RIDGE  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()


# ---------------------------------------------------------------- a method defined outside the package
class SharedConfusion(nn.Module):
    """One confusion matrix shared by every annotator: ``log (A f(x))``; its own learning rate."""

    def __init__(self, n_annotators: int, n_classes: int, lr_scale: float) -> None:
        super().__init__()
        self.n_annotators, self.n_classes, self.lr_scale = n_annotators, n_classes, lr_scale
        self.logits = nn.Parameter(2.0 * torch.eye(n_classes))

    def forward(self, log_probs: Tensor, annotators: Tensor) -> Tensor:
        log_a = self.logits.log_softmax(dim=0)  # columns sum to 1
        return torch.logsumexp(log_a.unsqueeze(0) + log_probs.unsqueeze(1), dim=2)

    def confusions(self) -> Tensor:
        return self.logits.softmax(dim=0).expand(self.n_annotators, -1, -1)

    def param_groups(self, confusion_lr: float) -> list[dict[str, Any]]:
        return [{"params": [self.logits], "lr": confusion_lr * self.lr_scale, "weight_decay": 0.0}]


class OffDiagonal(Regularizer):
    """``sum of the off-diagonal mass`` of the shared matrix (a term to add)."""

    name = "offdiag"
    weight_name = "beta"

    def __call__(self, model: CrowdModel, logits: Tensor) -> Tensor:
        a = model.head.confusions()[0]
        return a.sum() - a.diagonal().sum()


def _toy_head(ctx: HeadContext) -> nn.Module:
    return SharedConfusion(ctx.n_annotators, ctx.n_classes, ctx.params["lr_scale"])


def _toy_reg(params: Mapping[str, Any]) -> Regularizer:
    return OffDiagonal(params["beta"])


TOY = MethodSpec(
    "toy",
    "one confusion matrix shared by every annotator",
    _toy_head,
    regularizers=(_toy_reg,),
    params=(
        MethodParam("beta", 0.1, "weight of the off-diagonal mass", low=0.0),
        MethodParam("lr_scale", 2.0, "head learning rate / confusion_lr", low=0.0, strict=True),
    ),
    inits=("identity",),
    citation="a test",
)


@pytest.fixture
def toy() -> Iterator[MethodSpec]:
    register_method(TOY)
    yield TOY
    unregister_method("toy")


def _crowd() -> tuple[np.ndarray, Annotations]:
    rng = np.random.default_rng(3)
    n, k = 60, 3
    y = rng.integers(0, k, n)
    X = (rng.normal(size=(n, 4)) + 2.0 * np.eye(k, 4)[y]).astype(np.float32)
    items = np.repeat(np.arange(n), 3)
    annotators = np.tile([0, 1, 2], n)
    labels = np.where(rng.random(3 * n) < 0.75, np.repeat(y, 3), rng.integers(0, k, 3 * n))
    return X, Annotations(items, annotators, labels)


def test_toy_method_trains_through_the_estimator_and_round_trips(toy: MethodSpec, tmp_path: Path) -> None:
    X, ann = _crowd()
    clf = CrowdClassifier(method="toy", method_params={"beta": 0.3}, epochs=3, validation="none", random_state=0)
    clf.fit(X, ann)
    assert isinstance(clf.model_.head, SharedConfusion)
    crit = clf._make_criterion()
    assert [type(r) for r in crit.regularizers] == [OffDiagonal] and crit.regularizers[0].weight == 0.3
    assert "train_offdiag" in clf.history_[-1] and "train_reg" in clf.history_[-1]
    np.testing.assert_allclose(clf.confusions_[0], clf.confusions_[2])  # shared
    np.testing.assert_allclose(clf.confusions_.sum(axis=1), 1.0, rtol=1e-6)
    path = tmp_path / "toy.safetensors"
    clf.save(path)
    back = CrowdClassifier.load(path)
    assert back.method == "toy" and back.method_params == {"beta": 0.3}
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(back.confusions_, clf.confusions_)


def test_a_head_sets_its_own_parameter_groups(toy: MethodSpec) -> None:
    from crowdlearn.train import Trainer

    clf = CrowdClassifier(method="toy", confusion_lr=0.01, epochs=1, validation="none")
    model = CrowdModel(nn.Linear(4, 3), clf._make_head(3, 3, "identity"))
    trainer = Trainer(model, clf._make_criterion(), lr=0.001, confusion_lr=0.01, device="cpu")
    groups = trainer.optimizer.param_groups
    assert [g["lr"] for g in groups] == [0.001, pytest.approx(0.02)]
    assert groups[1]["params"] == [model.head.logits]
    X, ann = _crowd()  # the schedule scales the head's own group from its own learning rate
    sched = Trainer(
        model, clf._make_criterion(), lr=0.001, confusion_lr=0.01, device="cpu", epochs=2, schedule="cosine"
    )
    sched.fit(X, ann)
    assert [g["lr"] for g in sched.optimizer.param_groups] == [pytest.approx(0.0005), pytest.approx(0.01)]


def test_toy_method_trains_through_the_cli(toy: MethodSpec, tmp_path: Path) -> None:
    X, ann = _crowd()
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"item": ann.items, "annotator": ann.annotators, "label": ann.labels}).to_csv(labels, index=False)
    feats = tmp_path / "features.npy"
    np.save(feats, X)
    out, preds = tmp_path / "model.safetensors", tmp_path / "pred.csv"
    args = ["train", str(labels), "--features", str(feats), "--out", str(out), "--epochs", "3"]
    args += ["--method", "toy", "--method-param", "beta=0.2", "--predictions", str(preds), "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    clf = CrowdClassifier.load(out)
    assert clf.method == "toy" and clf.method_params == {"beta": 0.2}
    table = pd.read_csv(preds)
    got = clf.predict(X)
    assert [str(v) for v in table["label"]] == [str(v) for v in got]


def test_cli_method_param_errors_name_the_flag(toy: MethodSpec, tmp_path: Path) -> None:
    X, ann = _crowd()
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"item": ann.items, "annotator": ann.annotators, "label": ann.labels}).to_csv(labels, index=False)
    np.save(tmp_path / "f.npy", X)
    base = ["train", str(labels), "--features", str(tmp_path / "f.npy"), "--out", str(tmp_path / "m.st")]
    for extra, expected in (
        (["--method", "toy", "--method-param", "gamma=1"], "--method-param gamma: not a parameter of --method toy"),
        (["--method", "toy", "--method-param", "beta=-1"], "--method-param beta must be a finite number >= 0"),
        (["--method", "toy", "--method-param", "beta"], "--method-param must be NAME=VALUE"),
        (["--method", "toy", "--init", "ds"], "--init must be identity with --method toy"),
        (["--method", "nope"], "--method must be one of ccem,"),
    ):
        result = runner.invoke(app, base + extra)
        assert result.exit_code == 2, (extra, result.output)
        assert expected in result.output, (extra, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "m.st").exists()


# ---------------------------------------------------------------- the registry itself
def test_builtins_are_registered_with_their_declared_parameters() -> None:
    assert available_methods()[: len(METHODS)] == METHODS
    assert [f"crowdlayer-{k}" for k in CROWDLAYER_KINDS] == [m for m in METHODS if m.startswith("crowdlayer-")]
    assert get_method("geocrowdnet-f").param_names == ("lam", "eps", "pool")
    assert get_method("geocrowdnet-f").params[1].default == DEFAULT_RIDGE
    assert get_method("tracereg").param_names == ("lam", "pool")
    assert get_method("ccem").param_names == ("pool",) and get_method("crowdlayer-vb").inits == ("identity",)
    doc = CrowdClassifier.__doc__ or ""
    assert "{method_table}" not in doc and "{method_choices}" not in doc and "{lam_usage}" not in doc
    for name in METHODS:
        assert get_method(name).citation or name == "ce"
        assert f'    - ``"{name}"``: {get_method(name).summary}' in doc  # the table comes from the specs


def test_duplicate_and_unknown_names_are_errors(toy: MethodSpec) -> None:
    with pytest.raises(ValueError, match="a method named 'toy' is already registered"):
        register_method(TOY)
    with pytest.raises(ValueError, match=r"unknown method 'tooy'; known methods: ccem, geocrowdnet-f, .*toy"):
        get_method("tooy")
    with pytest.raises(TypeError, match="needs a MethodSpec"):
        register_method("toy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"The 'method' parameter of CrowdClassifier must be one of 'ccem'.*'toy'"):
        CrowdClassifier(method="tooy")._validate_params()


def test_method_params_are_checked_by_the_spec(toy: MethodSpec) -> None:
    with pytest.raises(ValueError, match=r"method_params=\{'gamma': \.\.\.\} is not a parameter of method 'toy' "):
        CrowdClassifier(method="toy", method_params={"gamma": 1.0})._validate_params()
    with pytest.raises(ValueError, match=r"method_params\['beta'\] of method 'toy' must be a finite number >= 0"):
        CrowdClassifier(method="toy", method_params={"beta": -1.0})._validate_params()
    with pytest.raises(ValueError, match=r"method_params\['lr_scale'\] .* > 0, got nan"):
        CrowdClassifier(method="toy", method_params={"lr_scale": float("nan")})._validate_params()
    with pytest.raises(ValueError, match="'method_params' parameter of CrowdClassifier must be None or a dict"):
        CrowdClassifier(method="toy", method_params=[("beta", 1)])._validate_params()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'init' parameter of CrowdClassifier must be 'identity' with method='toy'"):
        CrowdClassifier(method="toy", init="ds")._validate_params()


def test_top_level_lam_and_eps_map_onto_the_method_params() -> None:
    clf = CrowdClassifier(method="geocrowdnet-f", lam=0.2, eps=1e-4)
    assert clf._method_params() == {"lam": 0.2, "eps": 1e-4, "pool": 0.0}
    crit = clf._make_criterion()
    assert crit.lam == 0.2 and crit.regularizers[0].weight == 0.2 and crit.regularizers[0].eps == 1e-4
    over = CrowdClassifier(method="geocrowdnet-f", method_params={"lam": 0.3})
    assert over._method_params() == {"lam": 0.3, "eps": DEFAULT_RIDGE, "pool": 0.0}
    with pytest.raises(ValueError, match=r"lam=0.2 and method_params\['lam'\]=0.3 disagree"):
        CrowdClassifier(method="geocrowdnet-f", lam=0.2, method_params={"lam": 0.3})._validate_params()
    with pytest.raises(ValueError, match=r"not a parameter of method 'ccem' \(its parameters: pool\)"):
        CrowdClassifier(method="ccem", method_params={"lam": 0.3})._validate_params()


def test_a_schedule_targets_a_regularizer_by_its_weight_name() -> None:
    from crowdlearn.nn import CrowdLoss, LogDetVolumeF, TraceRegularizer

    both = CrowdLoss(0.1, regularizers=[LogDetVolumeF(0.1), TraceRegularizer(0.1)])
    both.lam = 0.5  # what LambdaSchedule does
    assert [r.weight for r in both.regularizers] == [0.5, 0.5]
    custom = CrowdLoss(regularizers=[OffDiagonal(0.1), TraceRegularizer(0.2)])
    custom.set_weight("beta", 0.7)
    assert [r.weight for r in custom.regularizers] == [0.7, 0.2]
    with pytest.raises(ValueError, match="regularizer names must be distinct"):
        CrowdLoss(regularizers=[TraceRegularizer(0.1), TraceRegularizer(0.2)])


def test_two_regularizers_add_their_weighted_terms() -> None:
    """GeoCrowdNet(F) + TraceReg as a list of two: loss = nll + w1 r1 + w2 r2, each part reported."""
    from crowdlearn.nn import ConfusionMatrices, CrowdLoss, LogDetVolumeF, TraceRegularizer

    torch.manual_seed(0)
    model = CrowdModel(nn.Linear(4, 3), ConfusionMatrices(2, 3))
    logits = torch.randn(5, 3)
    rows, annotators, labels = (
        torch.tensor([0, 1, 2, 3, 4]),
        torch.tensor([0, 1, 0, 1, 0]),
        torch.tensor([0, 1, 2, 0, 1]),
    )
    loss = CrowdLoss(regularizers=[LogDetVolumeF(0.1), TraceRegularizer(0.2)])
    parts = loss(model, logits, rows, annotators, labels)
    f, t = LogDetVolumeF(1.0)(model, logits), TraceRegularizer(1.0)(model, logits)
    torch.testing.assert_close(parts["logdet_f"], f)
    torch.testing.assert_close(parts["trace"], t)
    torch.testing.assert_close(parts["loss"], parts["nll"] + 0.1 * f + 0.2 * t)


class RepresentationShift(nn.Module):
    """An instance-dependent head: ``log softmax(log f(x) + V h(x))`` with ``h`` the representation."""

    def __init__(self, n_annotators: int, n_classes: int, hidden: int = 128) -> None:
        super().__init__()
        self.n_annotators, self.n_classes = n_annotators, n_classes
        self.shift = nn.Linear(hidden, n_classes)
        nn.init.zeros_(self.shift.weight)  # starts as the identity head; training must move it
        self.seen: list[tuple[int, ...]] = []

    def forward(self, log_probs: Tensor, annotators: Tensor, *, rows: Tensor, representation: Tensor) -> Tensor:
        assert rows.shape == annotators.shape and representation.shape[0] == log_probs.shape[0]
        self.seen.append(tuple(representation.shape))
        return torch.log_softmax(log_probs + self.shift(representation), dim=1)


@pytest.fixture
def rep_method() -> Iterator[MethodSpec]:
    spec = MethodSpec(
        "rep-toy", "x", lambda ctx: RepresentationShift(ctx.n_annotators, ctx.n_classes), needs_representation=True
    )
    register_method(spec)
    yield spec
    unregister_method("rep-toy")


def test_a_head_gets_the_item_representation_of_each_label(rep_method: MethodSpec, tmp_path: Path) -> None:
    X, ann = _crowd()
    clf = CrowdClassifier(method="rep-toy", epochs=2, batch_size=16, validation="holdout", mixup=0.4)
    clf.fit(X, ann)
    head = clf.model_.head
    assert head.seen and all(len(s) == 2 and s[1] == 128 for s in head.seen)  # (E, H), H = the MLP's hidden size
    assert head.shift.weight.abs().sum() > 0  # the gradient reached the head through the representation
    np.testing.assert_array_equal(clf.confusions_, np.repeat(np.eye(3)[None], 3, axis=0))  # no confusions()
    path = tmp_path / "rep.safetensors"
    clf.save(path)
    back = CrowdClassifier.load(path)
    assert back.model_.needs_representation
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))


def test_a_backbone_returning_only_logits_is_refused_for_such_a_method(rep_method: MethodSpec) -> None:
    X, ann = _crowd()
    with pytest.raises(
        ValueError,
        match=r"method='rep-toy' needs the item representation, but the backbone Linear "
        r"gives only logits; give it forward_features",
    ):
        CrowdClassifier(method="rep-toy", backbone=nn.Linear(4, 3), epochs=1).fit(X, ann)
    # a method that needs no representation still trains a logits-only module
    CrowdClassifier(method="ccem", backbone=nn.Linear(4, 3), epochs=1, validation="none").fit(X, ann)


def test_the_builtin_backbones_expose_logits_and_representation() -> None:
    from crowdlearn.nn import MLP, LeNet, SmallResNet

    torch.manual_seed(0)
    for net, x, h in (
        (MLP(4, 3, hidden=(8,)), torch.randn(5, 4), 8),
        (LeNet(3), torch.randn(5, 1, 28, 28), 84),
        (SmallResNet(3), torch.randn(5, 3, 16, 16), None),
    ):
        net.eval()
        logits, rep = net.forward_features(x)
        torch.testing.assert_close(logits, net(x), rtol=0, atol=0)
        assert rep.shape[0] == 5 and rep.ndim == 2 and (h is None or rep.shape[1] == h)
    model = CrowdModel(nn.Linear(4, 3), RepresentationShift(2, 3, hidden=4), needs_representation=True)
    with pytest.raises(ValueError, match="needs the item representation, but the backbone Linear returns only logits"):
        model.crowd_log_probs(torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([0, 1]))


def test_spec_fields_are_checked() -> None:
    with pytest.raises(ValueError, match="non-empty string"):
        MethodSpec(" x", "s", _toy_head)
    with pytest.raises(ValueError, match="duplicate parameter names"):
        MethodSpec("x", "s", _toy_head, params=(MethodParam("a", 1.0, "h"), MethodParam("a", 2.0, "h")))
    with pytest.raises(ValueError, match="inits must be a non-empty subset"):
        MethodSpec("x", "s", _toy_head, inits=("nope",))
    with pytest.raises(TypeError, match="make_head must be callable"):
        MethodSpec("x", "s", None)  # type: ignore[arg-type]


# ---------------------------------------------------------------- entry points
class _EP:
    def __init__(self, name: str, target: Any) -> None:
        self.name, self.value, self._target = name, f"plugin_pkg:{name}", target

    def load(self) -> Any:
        if isinstance(self._target, BaseException):
            raise self._target
        return self._target


def _with_entry_points(monkeypatch: pytest.MonkeyPatch, eps: list[_EP]) -> None:
    import importlib.metadata

    def fake(*, group: str) -> list[_EP]:
        assert group == "crowdlearn.methods"
        return eps

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    monkeypatch.setattr(reg, "_ENTRY_POINTS_LOADED", False)


def test_entry_points_are_loaded_lazily_on_first_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = MethodSpec("plugged", "from an entry point", _toy_head, params=TOY.params, inits=("identity",))
    _with_entry_points(monkeypatch, [_EP("plugged", lambda: spec)])
    try:
        assert "plugged" not in available_methods(entry_points=False)
        assert get_method("plugged") is spec
        assert "plugged" in available_methods()
    finally:
        unregister_method("plugged")


def test_a_broken_entry_point_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _with_entry_points(monkeypatch, [_EP("broken", ImportError("No module named 'plugin_pkg'"))])
    with pytest.raises(
        RuntimeError,
        match=r"entry point 'broken' \(plugin_pkg:broken\) of group 'crowdlearn.methods' "
        r"failed to load: ImportError: No module named 'plugin_pkg'",
    ):
        get_method("ccem")
    _with_entry_points(monkeypatch, [_EP("odd", 42)])
    with pytest.raises(RuntimeError, match="entry point 'odd' .* must give a MethodSpec or a list of them, got int"):
        available_methods()
    _with_entry_points(monkeypatch, [_EP("broken", ImportError("No module named 'plugin_pkg'"))])
    X, ann = _crowd()
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"item": ann.items, "annotator": ann.annotators, "label": ann.labels}).to_csv(labels, index=False)
    np.save(tmp_path / "f.npy", X)
    args = ["train", str(labels), "--features", str(tmp_path / "f.npy"), "--out", str(tmp_path / "m.st")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "error: entry point 'broken' (plugin_pkg:broken)" in result.output and "failed to load" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "m.st").exists()
