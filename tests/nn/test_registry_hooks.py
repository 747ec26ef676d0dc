"""The registry's hooks beyond head + regularizers: batch transforms, a method's own criterion,
per-item targets in rounds, instance-dependent confusions; and CrowdClassifier(callbacks=)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import Tensor, nn  # noqa: E402

from crowdlearn import Annotations  # noqa: E402
from crowdlearn.estimators import CrowdClassifier  # noqa: E402
from crowdlearn.nn import (  # noqa: E402  # noqa: E402
    MLP,
    ConfusionMatrices,
    CrowdLoss,
    CrowdModel,
    MethodParam,
    MethodSpec,
    register_method,
    unregister_method,
)
from crowdlearn.nn.registry import HeadContext, Targets, TargetsContext  # noqa: E402
from crowdlearn.train import Batch, BatchTransform, Callback, InputMixup, Inputs, Trainer, View, make_batch  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def crowd(n: int = 40, seed: int = 0) -> tuple[np.ndarray, Annotations]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = (rng.normal(size=(n, 4)) + 2.0 * np.eye(3, 4)[y]).astype(np.float32)
    items = np.repeat(np.arange(n), 2)
    anns = np.concatenate([rng.choice(4, size=2, replace=False) for _ in range(n)])
    labels = np.where(rng.random(2 * n) < 0.75, np.repeat(y, 2), rng.integers(0, 3, 2 * n))
    return x, Annotations(items, anns, labels, n_annotators=4, n_classes=3)


def model(seed: int = 0) -> CrowdModel:
    torch.manual_seed(seed)
    return CrowdModel(MLP(4, 3, hidden=(8,), dropout=0.0), ConfusionMatrices(4, 3, scale=2.0))


# ------------------------------------------------------------------ transforms
class Halves(BatchTransform):
    """The batch twice, each with weight 1/2: the same loss as no transform."""

    def __call__(self, batch: Batch, generator: torch.Generator) -> tuple[Tensor, list[View]]:
        return batch.x, [(0.5, batch), (0.5, batch)]


def test_a_transform_weights_the_losses_of_its_views() -> None:
    x, ann = crowd()
    plain, halves = model(), model()
    Trainer(plain, CrowdLoss(), epochs=2, batch_size=8, device="cpu").fit(x, ann)
    Trainer(halves, CrowdLoss(), epochs=2, batch_size=8, device="cpu", transform=Halves()).fit(x, ann)
    for a, b in zip(plain.parameters(), halves.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_mixup_is_the_input_mixup_transform() -> None:
    x, ann = crowd()
    a, b = model(), model()
    ta = Trainer(a, CrowdLoss(), epochs=2, batch_size=8, device="cpu", mixup=0.4)
    assert isinstance(ta.transform, InputMixup) and ta.transform.alpha == 0.4
    ta.fit(x, ann)
    Trainer(b, CrowdLoss(), epochs=2, batch_size=8, device="cpu", transform=InputMixup(0.4)).fit(x, ann)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="mixup > 0 or a transform, not both"):
        Trainer(model(), CrowdLoss(), mixup=0.4, transform=InputMixup(0.4))
    with pytest.raises(ValueError, match="alpha must be > 0"):
        InputMixup(0.0)


def test_input_mixup_mixes_rows_and_moves_labels_and_targets_with_them() -> None:
    x, ann = crowd(n=6)
    idx = np.arange(6, dtype=np.int64)
    targets = torch.eye(3)[torch.tensor([0, 1, 2, 0, 1, 2])]
    batch = make_batch(Inputs(x), ann, idx, torch.cat([targets, torch.zeros(0, 3)]))
    gen = torch.Generator().manual_seed(0)
    mixed, views = InputMixup(1.0)(batch, gen)
    (t, own), (s, other) = views
    assert own is batch and t + s == pytest.approx(1.0)
    gen = torch.Generator().manual_seed(0)
    torch.randint(0, 2**62, (1,), generator=gen)
    perm = torch.randperm(6, generator=gen)
    torch.testing.assert_close(mixed, t * batch.x + s * batch.x[perm])
    # label e of item rows[e] now sits on the row r with perm[r] == rows[e]
    assert torch.equal(perm[other.rows], batch.rows)
    assert other.targets is not None and torch.equal(other.targets, targets[perm])


def test_a_criterion_that_cannot_use_targets_is_refused() -> None:
    x, ann = crowd()
    tr = Trainer(model(), CrowdLoss(), epochs=1, device="cpu")
    with pytest.raises(TypeError, match="soft targets.*takes_batch"):
        tr.fit(x, ann, targets=np.full((ann.n_items, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"targets must have shape \(n_items, n_classes\) = \(40, 3\)"):
        tr.fit(x, ann, targets=np.ones((3, 3)))


# ------------------------------------------------------------------ targets in rounds, own criterion
class TargetCE(nn.Module):
    takes_batch = True

    def forward(self, model: CrowdModel, logits: Tensor, batch: Batch, rep: Tensor | None = None) -> dict[str, Tensor]:
        assert batch.targets is not None
        loss = -(batch.targets * logits.log_softmax(1)).sum(1).mean()
        return {"loss": loss, "nll": loss}


SEEN: list[TargetsContext] = []


def _rounds(ctx: TargetsContext) -> Targets | None:
    SEEN.append(ctx)
    if ctx.round == int(ctx.params["rounds"]):
        return None
    k = ctx.annotations.n_classes
    soft = np.full((ctx.annotations.n_items, k), 1 / k) if ctx.proba is None else ctx.proba
    return Targets(soft, np.repeat(np.eye(k)[None] * 0.9 + 0.1 / k, ctx.annotations.n_annotators, 0))


ROUNDS = MethodSpec(
    "hook-rounds",
    "a test of the targets hook",
    lambda ctx: ConfusionMatrices(ctx.n_annotators, ctx.n_classes, init=ctx.init, smoothing=1e-10),
    params=(MethodParam("rounds", 2, "trainings", low=1, integer=True, high=5),),
    inits=("identity",),
    make_criterion=lambda params, regs: TargetCE(),
    targets=_rounds,
)


@pytest.fixture
def rounds() -> Iterator[MethodSpec]:
    register_method(ROUNDS)
    SEEN.clear()
    yield ROUNDS
    unregister_method(ROUNDS.name)


def test_targets_hook_trains_in_rounds_on_the_previous_predictions(rounds: MethodSpec) -> None:
    x, ann = crowd()
    clf = CrowdClassifier(method="hook-rounds", method_params={"rounds": 3}, epochs=2, validation="none").fit(x, ann)
    assert clf.rounds_ == 3 and [c.round for c in SEEN] == [0, 1, 2, 3]
    assert SEEN[0].proba is None and all(c.proba is not None and c.proba.shape == (40, 3) for c in SEEN[1:])
    # the head was initialised with the targets' confusions
    np.testing.assert_allclose(clf.confusions_, np.eye(3)[None].repeat(4, 0) * 0.9 + 0.1 / 3, rtol=1e-4)
    with pytest.raises(ValueError, match=r"<= 5, got 6"):
        CrowdClassifier(method="hook-rounds", method_params={"rounds": 6}).fit(x, ann)
    with pytest.raises(ValueError, match="resume=True is not supported"):
        CrowdClassifier(method="hook-rounds", checkpoint_dir="unused").fit(x, ann, resume=True)


# ------------------------------------------------------------------ instance-dependent confusions
class ByFeature(nn.Module):
    """``A(x, m) = softmax over rows of (W_m + x_0 * V)``: instance-dependent confusions."""

    needs_representation = True

    def __init__(self, m: int, k: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(m, k, k))
        self.v = nn.Parameter(torch.randn(k, k))

    def pair_confusions(self, annotators: Tensor, representation: Tensor | None) -> Tensor:
        assert representation is not None
        logits = self.w.index_select(0, annotators) + representation[:, :1, None] * self.v
        return logits.softmax(dim=1)

    def forward(self, log_probs: Tensor, annotators: Tensor, *, rows: Tensor, representation: Tensor) -> Tensor:
        conf = self.pair_confusions(annotators, representation)
        return torch.logsumexp(conf.log() + log_probs[:, None, :], dim=2)


INSTANCE = MethodSpec(
    "hook-instance",
    "a test of instance-dependent confusions",
    lambda ctx: ByFeature(ctx.n_annotators, ctx.n_classes),
    inits=("identity",),
    needs_representation=True,
    instance_dependent=True,
)


@pytest.fixture
def instance() -> Iterator[MethodSpec]:
    register_method(INSTANCE)
    yield INSTANCE
    unregister_method(INSTANCE.name)


def test_instance_dependent_confusions_are_means_over_each_annotators_pairs(
    instance: MethodSpec, tmp_path: Path
) -> None:
    x, ann = crowd()
    clf = CrowdClassifier(method="hook-instance", epochs=2, validation="none").fit(x, ann)
    per_pair = clf.predict_confusions(x[ann.items], clf.annotator_ids_[ann.annotators])
    assert per_pair.shape == (ann.n_labels, 3, 3)
    np.testing.assert_allclose(per_pair.sum(axis=1), 1.0, rtol=1e-5)
    for m in range(4):  # a dense loop over the labels
        expected = per_pair[ann.annotators == m].mean(axis=0)
        np.testing.assert_allclose(clf.confusions_[m], expected, rtol=1e-5, atol=1e-7)
    two = clf.predict_confusions(x[:2], [0, 0])
    assert not np.allclose(two[0], two[1])  # they depend on the item
    clf.save(tmp_path / "m.safetensors")
    back = CrowdClassifier.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(back.confusions_, clf.confusions_)
    np.testing.assert_array_equal(
        back.predict_confusions(x[:5], [0, 1, 2, 3, 0]), clf.predict_confusions(x[:5], [0, 1, 2, 3, 0])
    )
    with pytest.raises(ValueError, match=r"annotators\[1\] = 9 is not an annotator"):
        clf.predict_confusions(x[:2], [0, 9])
    with pytest.raises(ValueError, match="one id per row of X"):
        clf.predict_confusions(x[:2], [0])


def test_class_conditional_predict_confusions_index_confusions() -> None:
    x, ann = crowd()
    clf = CrowdClassifier(method="ccem", epochs=1, validation="none").fit(x, ann)
    np.testing.assert_array_equal(clf.predict_confusions(x[:3], [2, 0, 2]), clf.confusions_[[2, 0, 2]])


def test_head_context_carries_the_training_annotations() -> None:
    seen: list[HeadContext] = []

    def make(ctx: HeadContext) -> nn.Module:
        seen.append(ctx)
        return ConfusionMatrices(ctx.n_annotators, ctx.n_classes)

    register_method(MethodSpec("hook-ctx", "records its context", make))
    try:
        x, ann = crowd()
        CrowdClassifier(method="hook-ctx", epochs=1, validation="holdout", holdout_fraction=0.25).fit(x, ann)
    finally:
        unregister_method("hook-ctx")
    got = seen[0].annotations
    assert got is not None and 0 < got.n_labels < ann.n_labels  # the training part of the holdout split


# ------------------------------------------------------------------ callbacks=
class Epochs(Callback):
    def __init__(self) -> None:
        self.epochs: list[int] = []

    def on_epoch_end(self, trainer: Any, epoch: int) -> None:
        self.epochs.append(epoch)


def test_extra_callbacks_are_called_and_checked(tmp_path: Path) -> None:
    x, ann = crowd()
    cb = Epochs()
    clf = CrowdClassifier(method="ccem", epochs=3, validation="none", callbacks=[cb]).fit(x, ann)
    assert cb.epochs == [0, 1, 2]
    clf.save(tmp_path / "m.safetensors")  # callbacks are not saved
    assert CrowdClassifier.load(tmp_path / "m.safetensors").callbacks is None
    with pytest.raises(ValueError, match="callbacks.* must be None or a list of crowdlearn.train.Callback"):
        CrowdClassifier(callbacks=[print]).fit(x, ann)  # type: ignore[list-item]


# ------------------------------------------------------------------ annotator features
class FeatureHead(nn.Module):
    """Annotator m's confusion logits ``2 I + feature_m[0] * U``: a head built from annotator features."""

    def __init__(self, features: np.ndarray, k: int) -> None:
        super().__init__()
        self.register_buffer("features", torch.as_tensor(features))
        self.u = nn.Parameter(torch.zeros(k, k))
        self.n_annotators, self.n_classes = features.shape[0], k

    def confusions(self) -> Tensor:
        logits = 2.0 * torch.eye(self.n_classes) + self.features[:, :1, None] * self.u
        return logits.softmax(dim=1)

    def forward(self, log_probs: Tensor, annotators: Tensor) -> Tensor:
        conf = self.confusions().index_select(0, annotators)
        return torch.logsumexp(conf.log() + log_probs[:, None, :], dim=2)


def _feature_head(ctx: HeadContext) -> nn.Module:
    assert ctx.annotator_features is not None
    return FeatureHead(ctx.annotator_features, ctx.n_classes)


def test_annotator_features_reach_the_head_and_are_saved(tmp_path: Path) -> None:
    register_method(
        MethodSpec("hook-features", "uses annotator features", _feature_head, needs_annotator_features=True)
    )
    try:
        x, ann = crowd()
        with pytest.raises(ValueError, match=r"needs annotator features: pass fit\(\.\.\., annotator_features="):
            CrowdClassifier(method="hook-features").fit(x, ann)
        with pytest.raises(ValueError, match=r"shape \(n_annotators, F\) = \(4, F\), got shape \(3, 2\)"):
            CrowdClassifier(method="hook-features").fit(x, ann, annotator_features=np.ones((3, 2)))
        bad = np.ones((4, 2))
        bad[2, 1] = np.nan
        with pytest.raises(ValueError, match=r"annotator_features\[2, 1\] is not finite"):
            CrowdClassifier(method="hook-features").fit(x, ann, annotator_features=bad)
        feats = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 0.0], [3.0, 1.0]])
        clf = CrowdClassifier(method="hook-features", epochs=2, validation="none")
        clf.fit(x, ann, annotator_features=feats)
        np.testing.assert_array_equal(clf.annotator_features_, feats.astype(np.float32))
        assert not np.allclose(clf.confusions_[0], clf.confusions_[3])  # the features shape the confusions
        clf.save(tmp_path / "m.safetensors")
        back = CrowdClassifier.load(tmp_path / "m.safetensors")
        np.testing.assert_array_equal(back.annotator_features_, clf.annotator_features_)
        np.testing.assert_array_equal(back.confusions_, clf.confusions_)
        np.testing.assert_array_equal(back.predict_proba(x), clf.predict_proba(x))
    finally:
        unregister_method("hook-features")
