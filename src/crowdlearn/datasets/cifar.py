"""CIFAR-10N (crowd labels of the CIFAR-10 training set), CIFAR-10H (soft labels of the test set)
and the CIFAR-10 images from a JPEG copy."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from crowdlearn.annotations import Annotations
from crowdlearn.datasets._base import CrowdDataset, DatasetInfo, FileSpec, Source, github_raw, locate, register

#: CIFAR-10 class names in class-index order.
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
N_TRAIN = 50000

_N_REPO = "UCSC-REAL/cifar-10-100n"
_N_COMMIT = "49df7d8a69e355470c77c1c2f2424916325a394b"
CIFAR10N_SOURCE = Source(
    folder="CIFAR-10N",
    files=(
        FileSpec("cifar10n_labels.npz", "6024485a143efa682792c21d7f2adfdef5a374dce699bb2fcd4d62cd55cc4852", 149520),
    ),
    origin=f"github.com/{_N_REPO} @{_N_COMMIT[:7]}",
    manual=(
        "cifar10n_labels.npz is a pickle-free copy of the six arrays of data/CIFAR-10_human.pt in "
        f"{github_raw(_N_REPO, _N_COMMIT, 'data/CIFAR-10_human.pt')} (numpy uint8 arrays clean_label, aggre_label, "
        "worse_label, random_label1, random_label2, random_label3, shape (50000,)); save them with numpy.savez"
    ),
)
CIFAR10N_CITATION = (
    "Wei, Zhu, Cheng, Liu, Niu & Liu, 'Learning with Noisy Labels Revisited: A Study Using Real-World Human "
    "Annotations', ICLR 2022; Krizhevsky, 'Learning Multiple Layers of Features from Tiny Images', 2009."
)
CIFAR10N_LICENSE = "CC BY-NC 4.0 (labels)"
_N_ARRAYS = ("clean_label", "aggre_label", "worse_label", "random_label1", "random_label2", "random_label3")


def _cifar10n_arrays(root: str | os.PathLike[str] | None, verify: bool) -> dict[str, np.ndarray[Any, Any]]:
    folder = locate("cifar10n", CIFAR10N_SOURCE, root, verify=verify)
    path = folder / "cifar10n_labels.npz"
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in _N_ARRAYS if k not in z.files]
        if missing:
            raise ValueError(f"{path} lacks arrays {missing}")
        out = {k: np.asarray(z[k], dtype=np.int64) for k in _N_ARRAYS}
    for k, v in out.items():
        if v.shape != (N_TRAIN,) or v.min() < 0 or v.max() >= len(CLASSES):
            raise ValueError(f"{path}: {k} must have shape ({N_TRAIN},) with values 0..9, got {v.shape}")
    return out


def load_cifar10n(root: str | os.PathLike[str] | None = None, *, verify: bool = True) -> CrowdDataset:
    """CIFAR-10N: three MTurk labels for each of the 50,000 CIFAR-10 training images.

    Items are the training images in the original (python-version / torchvision) order,
    ``item_ids`` 0..49999. The three ``random_label{1,2,3}`` columns are treated as three
    anonymous annotators ``"random_label1"``, ``"random_label2"``, ``"random_label3"`` (the
    release does not establish which MTurk worker gave which column; see its SOURCE.md), so
    every item has 3 labels. ``truth`` is ``clean_label``. Classes: airplane .. truck.

    """
    arrays = _cifar10n_arrays(root, verify)
    n = N_TRAIN
    items = np.tile(np.arange(n, dtype=np.int64), 3)
    annotators = np.repeat(np.arange(3, dtype=np.int64), n)
    labels = np.concatenate([arrays[f"random_label{j}"] for j in (1, 2, 3)])
    ann = Annotations(
        items,
        annotators,
        labels,
        n_items=n,
        n_annotators=3,
        n_classes=len(CLASSES),
        item_ids=np.arange(n),
        annotator_ids=["random_label1", "random_label2", "random_label3"],
        classes=list(CLASSES),
    )
    return CrowdDataset(
        name="cifar10n",
        annotations=ann,
        truth=arrays["clean_label"],
        classes=CLASSES,
        features={},
        targets={},
        citation=CIFAR10N_CITATION,
        license=CIFAR10N_LICENSE,
    )


CIFAR10N_INFO = register(
    DatasetInfo(
        name="cifar10n",
        title="CIFAR-10N (MTurk)",
        task="10 CIFAR-10 classes",
        kind="crowd",
        n_items=N_TRAIN,
        n_annotators=3,
        n_labels=3 * N_TRAIN,
        n_classes=10,
        features="-",
        truth="all 50,000 (clean_label)",
        license=CIFAR10N_LICENSE,
        citation=CIFAR10N_CITATION,
        sources=(CIFAR10N_SOURCE,),
        loader=load_cifar10n,
        aliases=("cifar-10n",),
    )
)
