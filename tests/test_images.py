"""The image path: batched seeded augmentation, image backbones, every method on an image batch,
log-determinants in float32 under autocast, the CIFAR-10N protocols."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from crowdlearn import Annotations
from crowdlearn.estimators import CrowdClassifier
from crowdlearn.nn import (
    CifarResNet,
    ImageBackbone,
    ImageNormalize,
    LeNet,
    LogDetVolumeF,
    LogDetVolumeW,
    SmallResNet,
    available_methods,
    resnet18,
    resnet34,
)
from crowdlearn.nn import functional as CF
from crowdlearn.train import Compose, InputMixup, RandomCropFlip, random_crop_flip
from crowdlearn.train.batching import Batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _images(n: int = 6, c: int = 3, h: int = 5, w: int = 7, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (n, c, h, w), generator=g, dtype=torch.int64).to(torch.uint8)


# ------------------------------------------------------------------ augmentation
def test_crop_flip_is_seeded() -> None:
    x = _images(16)
    a = random_crop_flip(x, torch.Generator().manual_seed(3))
    b = random_crop_flip(x, torch.Generator().manual_seed(3))
    c = random_crop_flip(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == torch.uint8


def test_crop_flip_matches_per_image_reference() -> None:
    """Each output is the drawn window of the zero-padded image, flipped when drawn so."""
    x = _images(12)
    pad = 2
    out = random_crop_flip(x, torch.Generator().manual_seed(7), padding=pad)
    g = torch.Generator().manual_seed(7)  # the same draws, in the documented order
    dy = torch.randint(0, 2 * pad + 1, (12,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (12,), generator=g)
    fl = torch.rand(12, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (pad,) * 4)
    h, w = x.shape[2:]
    assert 0 < int(fl.sum()) < 12  # both cases are exercised
    for b in range(12):
        window = padded[b, :, dy[b] : dy[b] + h, dx[b] : dx[b] + w]
        want = window.flip(2) if fl[b] else window
        assert torch.equal(out[b], want)
        # crop bounds: a window never leaves the padded image, so non-zero pixels are x's own
        assert set(out[b][out[b] > 0].tolist()) <= set(x[b].flatten().tolist())


def test_flip_only_and_no_augmentation() -> None:
    x = _images(10)
    out = random_crop_flip(x, torch.Generator().manual_seed(1), padding=0)
    for b in range(10):
        assert torch.equal(out[b], x[b]) or torch.equal(out[b], x[b].flip(2))
    same = random_crop_flip(x, torch.Generator().manual_seed(1), padding=0, flip=False)
    assert torch.equal(same, x)


def test_crop_flip_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        random_crop_flip(torch.zeros(3, 4, 4), torch.Generator())
    with pytest.raises(ValueError, match="padding must be an int >= 0, got -1"):
        RandomCropFlip(-1)


def _batch(x: torch.Tensor) -> Batch:
    n = x.shape[0]
    rows = torch.arange(n)
    return Batch(np.arange(n), x, rows, torch.zeros(n, dtype=torch.int64), torch.zeros(n, dtype=torch.int64))


def test_compose_augments_then_mixes() -> None:
    x = _images(8)
    t = Compose([RandomCropFlip(), InputMixup(0.4)])
    fed, views = t(_batch(x), torch.Generator().manual_seed(0))
    assert fed.shape == x.shape and fed.is_floating_point()
    assert len(views) == 2 and abs(sum(w for w, _ in views) - 1.0) < 1e-12
    with pytest.raises(TypeError, match="must come last"):
        Compose([InputMixup(0.4), RandomCropFlip()])
    aug, (view,) = RandomCropFlip()(_batch(x), torch.Generator().manual_seed(0))
    assert view[0] == 1.0 and view[1].x is aug


# ------------------------------------------------------------------ backbones
@pytest.mark.parametrize(("make", "n_params"), [(resnet18, 11_173_962), (resnet34, 21_282_122)])
def test_cifar_resnets(make: object, n_params: int) -> None:
    torch.manual_seed(0)
    net = make(10)  # type: ignore[operator]
    assert isinstance(net, CifarResNet)
    assert sum(p.numel() for p in net.parameters()) == n_params
    assert isinstance(net.stem[0], torch.nn.Conv2d) and net.stem[0].kernel_size == (3, 3)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    net.eval()
    with torch.no_grad():
        x = torch.randn(2, 3, 32, 32)
        logits, rep = net.forward_features(x)
        assert torch.allclose(logits, net(x))
    assert logits.shape == (2, 10) and rep.shape == (2, 512)


def test_image_backbone_normalises_raw_pixels() -> None:
    torch.manual_seed(0)
    net = ImageBackbone(SmallResNet(4, width=4)).eval()
    x = _images(3, h=8, w=8)
    with torch.no_grad():
        a, rep = net.forward_features(x)
        b = net(x.float())
    assert torch.allclose(a, b) and rep.shape == (3, 16)
    norm = ImageNormalize(mean=(0.5,), std=(0.25,))
    assert torch.allclose(norm(torch.full((1, 1, 2, 2), 255.0)), torch.full((1, 1, 2, 2), 2.0))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\), got \(1, 3, 2, 2\)"):
        norm(torch.zeros(1, 3, 2, 2))


# ------------------------------------------------------------------ every method, one step on images
def _image_crowd(n: int = 12, m: int = 4, k: int = 3) -> tuple[torch.Tensor, Annotations]:
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8))
    items = np.repeat(np.arange(n), 2)
    annotators = np.concatenate([rng.choice(m, 2, replace=False) for _ in range(n)])
    labels = (items + rng.integers(0, 2, 2 * n)) % k  # mostly the item's class (n mod k), some noise
    ann = Annotations(items, annotators, labels, n_items=n, n_annotators=m, n_classes=k)
    return x, ann


@pytest.mark.parametrize("method", available_methods(entry_points=False))
def test_every_method_trains_on_an_image_batch(method: str) -> None:
    x, ann = _image_crowd()
    torch.manual_seed(0)
    clf = CrowdClassifier(
        method=method,
        backbone=ImageBackbone(SmallResNet(ann.n_classes, width=4)),
        augment="crop-flip",
        epochs=1,
        batch_size=12,
        validation="none",
        device="cpu",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(x, ann)
    proba = clf.predict_proba(x)
    assert proba.shape == (12, ann.n_classes) and np.isfinite(proba).all()
    assert all(np.isfinite(e["train_loss"]) for e in clf.history_.epochs)


def test_builtin_image_backbone_and_save_load(tmp_path: Path) -> None:
    x, ann = _image_crowd()
    clf = CrowdClassifier(
        method="ccem", backbone="small-resnet", augment="crop-flip", mixup=0.2, epochs=1, validation="none"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch on 12 random images: a collapsed model is expected
        clf.fit(x, ann)
    path = tmp_path / "model"
    clf.save(path)
    again = CrowdClassifier.load(path)
    assert np.allclose(again.predict_proba(x), clf.predict_proba(x), atol=1e-6)
    with pytest.raises(ValueError, match=r"needs images X of shape \(n, C, H, W\)"):
        CrowdClassifier(backbone="resnet18", epochs=1, validation="none").fit(np.zeros((12, 5)), ann)
    with pytest.raises(ValueError, match="augment"):
        CrowdClassifier(augment="rotate", epochs=1, validation="none").fit(x, ann)


# ------------------------------------------------------------------ log-determinants under autocast
def _logdet_terms(device: str, dtype: torch.dtype) -> list[torch.Tensor]:
    torch.manual_seed(0)
    logits = torch.randn(16, 4, device=device)
    conf = torch.softmax(torch.randn(3, 4, 4, device=device), dim=1)
    with torch.autocast(device_type=device, dtype=dtype):
        low = logits @ torch.eye(4, device=device)  # a half-precision activation, as a backbone gives
        assert low.dtype == dtype
        return [
            CF.logdet_volume_f(low.softmax(dim=1)),
            CF.logdet_volume_w(conf),
            CF.logdet_volume_f(logits.softmax(dim=1)),
        ]


def test_logdets_stay_float32_under_cpu_autocast() -> None:
    values = _logdet_terms("cpu", torch.bfloat16)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in values)
    exact = CF.logdet_volume_f(torch.randn(16, 4, generator=torch.Generator().manual_seed(0)).softmax(1))
    assert exact.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_logdets_stay_float32_under_cuda_bf16_autocast() -> None:
    values = _logdet_terms("cuda", torch.bfloat16)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in values)
    from crowdlearn.nn import ConfusionMatrices, CrowdModel

    model = CrowdModel(LeNet(4, in_channels=3), ConfusionMatrices(3, 4)).cuda()
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        logits = model(torch.randn(8, 3, 32, 32, device="cuda"))
        for reg in (LogDetVolumeF(), LogDetVolumeW()):
            assert reg(model, logits).dtype == torch.float32


# ------------------------------------------------------------------ CIFAR-10N protocols
def test_cifar10n_protocols(data_dir: Path) -> None:
    from crowdlearn.datasets import load_cifar10n

    all_ = load_cifar10n(data_dir, annotators="workers")
    assert all_.annotations.n_annotators == 747 and all_.annotations.n_labels == 150000
    worse = load_cifar10n(data_dir, annotators="workers", labels="worse")
    assert worse.annotations.n_labels == 50000 and worse.annotations.n_annotators == 747
    assert np.isclose((worse.annotations.labels == worse.truth).mean(), 0.59792)
    aggre = load_cifar10n(data_dir, labels="aggre")
    assert aggre.annotations.n_annotators == 1
    assert np.isclose((aggre.annotations.labels == aggre.truth).mean(), 0.9099)
    with pytest.raises(ValueError, match="labels must be one of"):
        load_cifar10n(data_dir, labels="best")  # type: ignore[arg-type]
