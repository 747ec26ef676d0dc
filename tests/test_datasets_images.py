"""Image datasets: IDX reading, JPEG decoding with a .npy cache, CIFAR-10N alignment, CIFAR-10H."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from crowdlearn.datasets import (
    DatasetNotFoundError,
    load_cifar10h,
    load_cifar10n,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
)
from crowdlearn.datasets import images as images_mod
from crowdlearn.datasets.images import FASHION_SYSTEM_DIR, ImageDataset, cifar10_train_in_original_order, read_idx

PIL = pytest.importorskip("PIL.Image")


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_read_idx(tmp_path: Path, rng: np.random.Generator) -> None:
    x = rng.integers(0, 256, size=(3, 4, 5)).astype(np.uint8)
    (tmp_path / "x.idx.gz").write_bytes(gzip.compress(_idx(x)))
    np.testing.assert_array_equal(read_idx(tmp_path / "x.idx.gz"), x)
    (tmp_path / "short.idx").write_bytes(_idx(x)[:-1])
    with pytest.raises(ValueError, match=r"header says shape \(3, 4, 5\) but holds 59 values"):
        read_idx(tmp_path / "short.idx")
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        read_idx(tmp_path / "bad.idx")


def test_mnist(data_dir: Path) -> None:
    ds = load_mnist(data_dir)
    assert ds.images["train"].shape == (60000, 28, 28) and ds.images["test"].shape == (10000, 28, 28)
    assert ds.images["train"].dtype == np.uint8
    counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    np.testing.assert_array_equal(np.bincount(ds.labels["train"]), counts)
    torch_ds = ds.torch_dataset("test")
    x, y = torch_ds[0]
    assert len(torch_ds) == 10000 and tuple(x.shape) == (1, 28, 28) and y == int(ds.labels["test"][0])
    assert float(x.max()) <= 1.0 and float(x.max()) > 0.5
    with pytest.raises(KeyError, match="no split 'valid'"):
        ds.torch_dataset("valid")
    with pytest.raises(ValueError, match="no crowd annotations"):
        load_dataset("mnist", root=data_dir)


def test_fashion_mnist() -> None:
    if not FASHION_SYSTEM_DIR.is_dir():
        pytest.skip(f"{FASHION_SYSTEM_DIR} absent (apt-get install dataset-fashion-mnist)")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("CROWDLEARN_DATA", raising=False)
        mp.setenv("CROWDLEARN_CACHE", "/nonexistent-crowdlearn-cache")
        ds = load_fashion_mnist()
    assert ds.images["train"].shape == (60000, 28, 28) and ds.images["test"].shape == (10000, 28, 28)
    np.testing.assert_array_equal(np.bincount(ds.labels["test"]), [1000] * 10)
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"


def test_fashion_mnist_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)


def _jpeg(value: int) -> bytes:
    buf = io.BytesIO()
    PIL.new("RGB", (4, 4), (value, value, value)).save(buf, format="JPEG", quality=100)
    return buf.getvalue()


def test_decode_image_zip_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    classes = ("a", "b")
    path = tmp_path / "toy.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for c, cls in enumerate(classes):
            for k in range(3):
                zf.writestr(f"train/{cls}/{k:04d}.jpg", _jpeg(40 * (3 * c + k)))
        zf.writestr("test/a/0000.jpg", _jpeg(7))
        zf.writestr("test/b/0000.jpg", _jpeg(9))
    x, y = images_mod.decode_image_zip(path, "train", classes, cache=tmp_path / "cache")
    assert x.shape == (6, 4, 4, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(y, [0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(x.mean(axis=(1, 2, 3)), [0, 40, 80, 120, 160, 200], atol=2)
    cached = sorted(p.name for p in (tmp_path / "cache" / "images").iterdir())
    assert len(cached) == 2 and all(n.endswith(".npy") and "-train-" in n for n in cached)

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded again instead of using the cache")

    monkeypatch.setattr(images_mod, "_decode_jpegs", no_decoding)
    x2, y2 = images_mod.decode_image_zip(path, "train", classes, cache=tmp_path / "cache")
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)

    gap = tmp_path / "gap.zip"
    with zipfile.ZipFile(gap, "w") as zf:
        zf.writestr("train/a/0000.jpg", _jpeg(1))
        zf.writestr("train/a/0002.jpg", _jpeg(1))
        zf.writestr("train/b/0000.jpg", _jpeg(1))
    with pytest.raises(ValueError, match=r"train/a/ must hold files 0000\.jpg \.\. consecutively"):
        images_mod.decode_image_zip(gap, "train", classes, cache=tmp_path / "cache")


def test_original_order_rule() -> None:
    x = np.arange(5, dtype=np.uint8).reshape(5, 1, 1, 1)
    jpeg = ImageDataset("t", {"train": x}, {"train": np.array([0, 0, 0, 1, 1])}, ("a", "b"), "", "")
    clean = np.array([1, 0, 0, 1, 0])
    out = cifar10_train_in_original_order(jpeg, clean)
    np.testing.assert_array_equal(out.ravel(), [3, 0, 1, 4, 2])
    with pytest.raises(ValueError, match="class 0: 2 images by clean_label but 3 JPEG files"):
        cifar10_train_in_original_order(jpeg, np.array([1, 0, 1, 1, 0]))


def test_cifar10n_with_images(data_dir: Path) -> None:
    ds = load_cifar10n(data_dir, images=True)
    x, xt = ds.features["train"], ds.features["test"]
    assert x.shape == (50000, 32, 32, 3) and xt.shape == (10000, 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(ds.targets["test"]), [1000] * 10)
    # per-channel means stated in CIFAR-10-jpeg/SOURCE.md
    np.testing.assert_allclose(x.reshape(-1, 3).mean(axis=0), [125.27, 122.93, 113.86], atol=0.01)
    # the alignment rule: the k-th file of class c is the k-th image of class c in the original order
    with zipfile.ZipFile(data_dir / "CIFAR-10-jpeg" / "cifar10_jpg.zip") as zf:
        for c, k in [(3, 0), (3, 4321), (9, 4999)]:
            with PIL.open(io.BytesIO(zf.read(f"train/{ds.classes[c]}/{k:04d}.jpg"))) as im:
                expected = np.asarray(im.convert("RGB"))
            np.testing.assert_array_equal(x[np.flatnonzero(ds.truth == c)[k]], expected)


def test_cifar10h(data_dir: Path) -> None:
    soft = load_cifar10h(data_dir)
    assert soft.counts.shape == (10000, 10) and soft.counts.dtype == np.int64
    per_image = soft.counts.sum(axis=1)
    assert per_image.min() == 47 and per_image.max() == 63 and per_image.mean() == pytest.approx(51.1, abs=0.05)
    np.testing.assert_allclose(soft.probs, soft.counts / per_image[:, None])
    assert soft.classes[0] == "airplane"
